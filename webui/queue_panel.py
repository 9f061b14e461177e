"""The device queue, visible and cancellable from any tab: the job on the device and the jobs waiting."""

from __future__ import annotations

import asyncio
import html
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from engine.core.rundir import QUEUED, RunDir
from engine.core.workspace import Workspace
from engine.jobs import device_queue
from webui import runner
from webui.form import Texts, Translated
from webui.language import LanguageSwitch
from webui.locales import DEFAULT_LANG, t
from webui.shared_reading import SharedReading
from webui.workspaces import workspace_of

REFRESH_S = 2.0
LONG_POLL_S = REFRESH_S  # a refresh waits up to this long for the queue to change (see refresh_tick)
POLL_EVERY_S = 0.5


@dataclass(frozen=True)
class QueueView:
    running: RunDir | None
    waiting: tuple[RunDir, ...]


def _read_queue() -> QueueView:
    runner.reap()
    return QueueView(device_queue.current(), tuple(ticket.run for ticket in device_queue.waiting()))


_queue = SharedReading(_read_queue)  # the device queue is the machine's: one reading for every app of the process


def queue_view(max_age_s: float = 1.0) -> QueueView:
    """The queue as it is now; every browser's refresh within ``max_age_s`` shares one read of the disk."""
    return _queue.get(max_age_s)


def _kind(lang: str, run: RunDir) -> str:
    return t(lang, f"queue_kind_{run.read_status().get('command', 'train')}")


def _waited(lang: str, run: RunDir) -> str:
    minutes = max(0, int((time.time() - float(run.read_status().get("created_at") or time.time())) // 60))
    return t(lang, "queue_waited_min", minutes=minutes)


def queue_markdown(lang: str, view: QueueView, workspace: Workspace = Workspace()) -> str:
    """The job on the device and the waiting ones, in their turn; with logins, other logins' jobs only as such."""
    if view.running is None and not view.waiting:
        return t(lang, "queue_empty")
    rows = [f"| | {t(lang, 'queue_col_run')} | {t(lang, 'queue_col_kind')} | {t(lang, 'queue_col_waited')} |",
            "|---|---|---|---|"]

    def cells(run: RunDir) -> str:
        if not workspace.owns(run.path):
            return f"{t(lang, 'queue_other_user')} | "
        return f"{html.escape(str(run.path))} | {_kind(lang, run)}"

    if view.running is not None:
        rows.append(f"| {t(lang, 'queue_on_device')} | {cells(view.running)} | |")
    for i, run in enumerate(view.waiting, start=1):
        rows.append(f"| {i} | {cells(run)} | {_waited(lang, run)} |")
    return "\n".join(rows)


_texts: dict[tuple[str, str | None], tuple[QueueView, str]] = {}  # texts of _queue's reading: module-level like it


def queue_text(lang: str, request: gr.Request = None) -> str:
    """``queue_markdown`` of the current view, made once per view, language and login for all their pages."""
    view = queue_view()
    workspace = workspace_of(request)
    key = (lang, None if workspace.sees_everything else workspace.user)
    with _queue.lock:
        cached = _texts.get(key)
        if cached is not None and cached[0] is view:
            return cached[1]
    text = queue_markdown(lang, view, workspace)
    with _queue.lock:
        _texts[key] = (view, text)
    return text


def cancel_choices(view: QueueView, workspace: Workspace = Workspace()) -> list[tuple[str, str]]:
    """The waiting jobs ``workspace`` may cancel, by their place in the queue."""
    return [(f"{i}. {run.path.parent.parent.name}/{run.path.parent.name}/{run.name}", str(run.path))
            for i, run in enumerate(view.waiting, start=1) if workspace.owns(run.path)]


def cancel(lang: str, path: str | None, request: gr.Request = None) -> str:
    if not path:
        return t(lang, "queue_pick_one")
    run = RunDir(Path(path))
    if run.live_status().get("state") != QUEUED:
        return t(lang, "queue_not_waiting", path=path)
    if not workspace_of(request).owns(run.path):
        return t(lang, "path_err_other_user", path=path)
    runner.stop(run)
    return t(lang, "queue_cancel_sent", path=path)


@dataclass(eq=False)
class QueuePanel:
    accordion: gr.Accordion
    table: gr.Markdown
    choice: gr.Dropdown
    cancel_btn: gr.Button
    message: gr.Markdown
    translated: list[Translated] = field(default_factory=list)

    def texts(self) -> list:
        return self.translated


def build_queue_panel(language: LanguageSwitch) -> QueuePanel:
    lang = DEFAULT_LANG
    texts = Texts(lang)
    lang_dd = language.dropdown
    with texts.add(gr.Accordion, "queue_title", open=True, elem_id="queue-panel") as accordion:
        table = gr.Markdown(t(lang, "queue_empty"), elem_id="queue-table")  # then the queue (queue_text)
        with gr.Row():
            choice = texts.add(gr.Dropdown, "queue_choice", choices=[], value=None, scale=3, elem_id="queue-choice")
            cancel_btn = texts.add(gr.Button, "queue_cancel", attr="value", variant="stop", scale=1,
                                   elem_id="queue-cancel")
        message = gr.Markdown(elem_id="queue-message")
    timer = gr.Timer(REFRESH_S)

    async def refresh_tick(lang_: str, shown: str | None, request: gr.Request):
        """The table as it is now: waits (without a thread) up to LONG_POLL_S for it to differ from what the
        page shows (its own text, sent along), so a page asks about every two intervals, not every one. Nothing
        new by then: the page keeps its text (a language switch may have rewritten it meanwhile, in the language
        this tick, sent before, does not know)."""
        deadline = time.monotonic() + LONG_POLL_S
        while True:
            text = queue_text(lang_, request)
            if text != shown:
                return text
            if time.monotonic() >= deadline:
                return gr.skip()
            await asyncio.sleep(POLL_EVERY_S)

    def refresh_choices(request: gr.Request):
        # Choices only, never the value: a refresh answered after the user picked a run would otherwise put back
        # the (empty) pick it was sent with. A pick that has left the queue is answered by ``cancel`` itself.
        return gr.update(choices=cancel_choices(queue_view(), workspace_of(request)))

    # Thirty classroom browsers each refresh this, so each refresh is light: queue=False (one HTTP request, not a
    # queue join plus an event stream), and the table text only when it changed: else gr.skip() (Gradio makes a
    # component object on the server for it, a small cost next to showing a language the page has left). The
    # runs that can be removed change only when the table does: its change in the page (a new text) refreshes them.
    timer.tick(refresh_tick, [lang_dd, table], table, show_progress="hidden", queue=False)
    table.change(refresh_choices, None, choice, show_progress="hidden", queue=False)
    language.on(queue_text, [lang_dd], table)
    cancel_btn.click(cancel, [lang_dd, choice], message)
    return QueuePanel(accordion, table, choice, cancel_btn, message, texts.items)
