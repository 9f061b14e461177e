"""The device queue, visible and cancellable from any tab: the job on the device and the jobs waiting."""

from __future__ import annotations

import html
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from engine import device_queue
from engine.rundir import QUEUED, RunDir
from webui import runner
from webui.form import Translated
from webui.locales import DEFAULT_LANG, t

REFRESH_S = 2.0


@dataclass(frozen=True)
class QueueView:
    running: RunDir | None
    waiting: tuple[RunDir, ...]


_cache: tuple[float, QueueView] | None = None
_cache_lock = threading.Lock()


def queue_view(max_age_s: float = 1.0) -> QueueView:
    """The queue as it is now; every browser's refresh within ``max_age_s`` shares one read of the disk."""
    global _cache
    with _cache_lock:
        if _cache is None or time.monotonic() - _cache[0] > max_age_s:
            runner.reap()
            view = QueueView(device_queue.current(), tuple(ticket.run for ticket in device_queue.waiting()))
            _cache = (time.monotonic(), view)
        return _cache[1]


def _kind(lang: str, run: RunDir) -> str:
    return t(lang, f"queue_kind_{run.read_status().get('command', 'train')}")


def _waited(run: RunDir) -> str:
    minutes = max(0, int((time.time() - float(run.read_status().get("created_at") or time.time())) // 60))
    return f"{minutes} min"


def queue_markdown(lang: str, view: QueueView) -> str:
    if view.running is None and not view.waiting:
        return t(lang, "queue_empty")
    rows = [f"| | {t(lang, 'queue_col_run')} | {t(lang, 'queue_col_kind')} | {t(lang, 'queue_col_waited')} |",
            "|---|---|---|---|"]
    if view.running is not None:
        rows.append(f"| {t(lang, 'queue_on_device')} | {html.escape(str(view.running.path))} | "
                    f"{_kind(lang, view.running)} | |")
    for i, run in enumerate(view.waiting, start=1):
        rows.append(f"| {i} | {html.escape(str(run.path))} | {_kind(lang, run)} | {_waited(run)} |")
    return "\n".join(rows)


def cancel_choices(view: QueueView) -> list[tuple[str, str]]:
    return [(f"{i}. {run.path.parent.parent.name}/{run.path.parent.name}/{run.name}", str(run.path))
            for i, run in enumerate(view.waiting, start=1)]


def cancel(lang: str, path: str | None) -> str:
    if not path:
        return t(lang, "queue_pick_one")
    run = RunDir(Path(path))
    if run.live_status().get("state") != QUEUED:
        return t(lang, "queue_not_waiting", path=path)
    runner.stop(run)
    return t(lang, "queue_cancel_sent", path=path)


@dataclass(eq=False)
class QueuePanel:
    accordion: gr.Accordion
    table: gr.Markdown
    choice: gr.Dropdown
    cancel_btn: gr.Button
    message: gr.Markdown

    def texts(self) -> list:
        return [Translated(self.accordion, "queue_title"), Translated(self.choice, "queue_choice"),
                Translated(self.cancel_btn, "queue_cancel", "value")]


def build_queue_panel(lang_dd: gr.Dropdown) -> QueuePanel:
    lang = DEFAULT_LANG
    with gr.Accordion(t(lang, "queue_title"), open=True, elem_id="queue-panel") as accordion:
        table = gr.Markdown(t(lang, "queue_empty"), elem_id="queue-table")
        with gr.Row():
            choice = gr.Dropdown(choices=[], value=None, label=t(lang, "queue_choice"), scale=3,
                                 elem_id="queue-choice")
            cancel_btn = gr.Button(t(lang, "queue_cancel"), variant="stop", scale=1, elem_id="queue-cancel")
        message = gr.Markdown(elem_id="queue-message")
    timer = gr.Timer(REFRESH_S)
    shown = gr.State(None)

    def refresh(lang_: str, last: tuple | None, current_choice: str | None):
        view = queue_view()
        text, choices = queue_markdown(lang_, view), cancel_choices(view)
        # Unchanged views are not re-sent: thirty classroom browsers each refresh this.
        if last is not None and tuple(last) == (text, str(choices)):
            return gr.skip(), gr.skip(), last
        keep = current_choice if current_choice in [path for _, path in choices] else None
        return text, gr.update(choices=choices, value=keep), (text, str(choices))

    timer.tick(refresh, [lang_dd, shown, choice], [table, choice, shown], show_progress="hidden")
    lang_dd.change(lambda lang_, c: refresh(lang_, None, c), [lang_dd, choice], [table, choice, shown])
    cancel_btn.click(cancel, [lang_dd, choice], message)
    return QueuePanel(accordion, table, choice, cancel_btn, message)
