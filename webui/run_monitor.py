"""Watching an engine run from a tab: progress bar, status line, log, and the 1-second timer.

Train, Evaluate and Export all start a subprocess and watch its run directory the
same way; this module is that shared part. Each tab adds its own result views by
passing an ``extra`` callback that turns a snapshot into more outputs.
"""

from __future__ import annotations

import ast
import asyncio
import html
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from engine.core.checkpointing_choice import TURN_OFF
from engine.core.checkpoints import last_complete_checkpoint, resume_plan
from engine.core.config import ConfigError, RunConfig
from engine.core.data import DataError
from engine.core.paths import PathError, confined_data_dir
from engine.core.probe_set import run_probes
from engine.core.reward_model import check_reward_model
from engine.core.rundir import FAILED, FINISHED, QUEUED, RUNNING, STOPPED, RunDir
from engine.core.workspace import AccessError, Workspace, owner_of
from engine.jobs import device_queue
from webui import runner
from webui.errors import error_text, hub_label, recorded_error
from webui.form import Texts, Translated
from webui.locales import DEFAULT_LANG, field_label, t
from webui.workspaces import policy, workspace_of

# A tick waits (without a thread) up to LONG_POLL_S for what its page shows to change, checking every
# POLL_EVERY_S, and answers at once when it has: a page asks again about once per training step instead of
# every second, and sees each step as soon as it is written. The cap bounds how long a page holds a request
# (and how late a language switch reaches the progress line).
LONG_POLL_S = 3.0
POLL_EVERY_S = 0.5


def fmt_seconds(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def human_bytes(n: float) -> str:
    """1234567 -> "1.2 MB" (decimal units, as the hubs show file sizes)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # not reached


def download_text(lang: str, download: dict) -> str:
    """A model download's progress in words: file, bytes done of total, rate, time left."""
    hub = hub_label(lang, download["hub"]) if download.get("hub") else ""
    if not download.get("file"):
        return t(lang, "download_starting", model=download.get("model", ""), hub=hub)
    where = dict(model=download.get("model", ""), hub=hub, file=download["file"],
                 n=min(int(download.get("files_done") or 0) + 1, int(download.get("files_total") or 1)),
                 count=download.get("files_total") or "?", done=human_bytes(download.get("done_bytes") or 0),
                 total=human_bytes(download.get("total_bytes") or 0))
    rate, eta = download.get("rate_bps") or 0, download.get("eta_s")
    if not rate or eta is None:  # the first second of a download: its speed is not known yet
        return t(lang, "download_progress_no_rate", **where)
    return t(lang, "download_progress", rate=human_bytes(rate), eta=fmt_seconds(eta), **where)


def download_html(lang: str, download: dict) -> str:
    """The download's progress bar, its text on it (the run monitors' bar, and Chat's while Load downloads)."""
    total = download.get("total_bytes") or 0
    if total:
        pct = 100.0 * (download.get("done_bytes") or 0) / total
    else:  # sizes unknown before the download (Modelers): count files
        pct = 100.0 * (download.get("files_done") or 0) / max(1, download.get("files_total") or 1)
    return bar_html(pct, download_text(lang, download), label=t(lang, "download_bar"))


def progress_html(lang: str, snap: runner.Snapshot | None) -> str:
    if snap is None or not snap.state:
        return ""
    if snap.state == RUNNING and snap.download:
        return download_html(lang, snap.download)
    total = max(snap.total_steps, 1)
    pct = 100.0 if snap.state == FINISHED else min(100.0, 100.0 * snap.step / total)
    text = t(lang, "progress", step=snap.step, total=snap.total_steps or "?", elapsed=fmt_seconds(snap.elapsed_s),
             remaining=fmt_seconds(snap.remaining_s))
    return bar_html(pct, text)


def bar_html(pct: float, text: str, label: str = "") -> str:
    """A bar filled to ``pct`` percent with ``text`` on it: an ARIA progress bar, named ``label`` if given."""
    pct = max(0.0, min(100.0, pct))
    name = f' aria-label="{html.escape(label)}"' if label else ""
    return (f'<div class="tb-progress" role="progressbar"{name} aria-valuenow="{pct:.0f}" aria-valuemin="0" '
            f'aria-valuemax="100"><div class="tb-progress-fill" style="width:{pct:.1f}%"></div>'
            f'<span class="tb-progress-text">{html.escape(text)}</span></div>')


_STEP_LINE = re.compile(r"^step (\d+)/(\d+)((?: \| [^|]+)*)$")  # engine/train/run.py's line per logged step
_STEP_PARTS = {"loss": "log_loss", "eval_loss": "log_eval_loss", "lr": "log_lr", "reward": "log_reward",
               "reward_std": "log_reward_std", "kl": "log_kl"}
_FIRST_LOSS = " (the first batch, before any update)"


def readable_log(lang: str, text: str) -> str:
    """The log tail with training lines in the progress bar's words in ``lang``: the engine's "step 2/4 | loss
    2.547 | lr 0.0004 | 76 tokens/s" translated, the Trainer's own dicts (the same figures again) left out, and its
    closing summary said in words. Other lines stay as written."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        step = _STEP_LINE.match(stripped)
        if step:
            lines.append(" · ".join([t(lang, "log_step", step=step[1], total=step[2])] +  # the progress bar's "·"
                                    [_step_part(lang, part) for part in step[3].split(" | ")[1:]]))
            continue
        figures = _trainer_dict(stripped)
        if figures is None:
            lines.append(line)
        elif "train_loss" in figures:  # the summary at the end; the per-step dicts repeat the step lines
            lines.append(t(lang, "log_trained", loss=figures["train_loss"],
                           runtime=fmt_seconds(float(figures.get("train_runtime") or 0))))
    return "\n".join(lines)


def _step_part(lang: str, part: str) -> str:
    name, _, value = part.partition(" ")
    if name in _STEP_PARTS:
        if value.endswith(_FIRST_LOSS):
            return t(lang, "log_first_loss", value=value[:-len(_FIRST_LOSS)])
        return t(lang, _STEP_PARTS[name], value=value)
    if value == "tokens/s":
        return t(lang, "log_speed", value=name)
    return part


def _trainer_dict(line: str) -> dict | None:
    """The figures of a line the Trainer prints as a dict ({'loss': '2.889', 'grad_norm': ...}), else None."""
    if not (line.startswith("{'") and line.endswith("}")):
        return None
    try:
        figures = ast.literal_eval(line)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    keys = {"loss", "eval_loss", "train_loss", "train_runtime", "epoch"}
    return figures if isinstance(figures, dict) and keys & set(figures) else None


def status_text(lang: str, kind: str, snap: runner.Snapshot) -> str:
    """The status line for a run of ``kind`` (train, eval, export); empty while it simply runs."""
    if snap.state == FINISHED:
        return t(lang, f"{kind}_finished")
    if snap.state == STOPPED:
        return t(lang, "queue_cancelled") if snap.cancelled else t(lang, f"{kind}_stopped")
    if snap.state == FAILED:
        recorded = recorded_error(snap.error_record)
        first = error_text(lang, recorded) if recorded else (snap.error or "?").strip().splitlines()[0]
        return t(lang, f"{kind}_failed", error=first)
    if snap.state == QUEUED and snap.queue_position:
        return t(lang, "queue_waiting", position=snap.queue_position)
    if snap.state == RUNNING and snap.phase == "downloading":
        return t(lang, "run_downloading")
    if snap.state == QUEUED or (snap.state == RUNNING and snap.phase == "loading"):
        return t(lang, "run_loading")
    if snap.state != RUNNING:
        return ""
    return t(lang, "run_running") + checkpointing_text(lang, snap.checkpointing)


def checkpointing_text(lang: str, choice: dict | None) -> str:
    """Gradient checkpointing as the job chose it by itself on an accelerator (engine.core.checkpointing_choice);
    nothing for an explicit setting or the CPU's default, which say nothing new."""
    if not choice or choice.get("reason") not in ("fits", "tight", "too_big", "unknown"):
        return ""
    key = "ckpt_auto_" + choice["reason"]
    need, have = (f"{(choice.get(k) or 0) / 2 ** 30:.1f} GB" for k in ("need", "have"))  # the memory panel's GB
    return "\n\n" + t(lang, key, need=need, have=have, off=f"`{TURN_OFF}`")


@dataclass(eq=False)
class RunMonitor:
    kind: str
    progress: gr.HTML
    status: gr.Markdown
    log: gr.Textbox
    run_path: gr.State
    shown_events: gr.State
    timer: gr.Timer
    shown_view: gr.State  # (progress, status, log) last sent: what the page shows
    # The run path again, held by the page: a tick sent before the page has applied Start's outputs (the ticks are
    # not queued, so their answers can overtake Start's) sees the old path here and changes nothing.
    watching: gr.Textbox
    watch: runner.RunWatch  # the app's: what the pages watching a run share
    translated: list[Translated] = field(default_factory=list)

    def texts(self) -> list:
        return self.translated

    def started(self, run: RunDir) -> tuple:
        """Outputs for ``start_outputs`` after a successful launch."""
        return str(run.path), gr.Timer(active=True), -1, "", None, str(run.path)

    def start_outputs(self) -> list:
        return [self.run_path, self.timer, self.shown_events, self.log, self.shown_view, self.watching]

    def not_started(self) -> tuple:
        return tuple(gr.update() for _ in self.start_outputs())

    def start(self, lang: str, build: Callable[[], tuple], command: str, started_key: str, second: Any,
              workspace: Workspace, refused: tuple | None = None) -> tuple:
        """Build (config, run dir) in ``workspace`` and launch; outputs ``[status, <second>] + start_outputs()``
        (a tuple ``second``: several outputs). ``refused``: their values when Start is refused (default: kept).

        Bad input, another login's model or checkpoint, a full share of the queue or a busy device becomes a
        warning and a status message naming the problem."""
        seconds = second if isinstance(second, tuple) else (second,)
        kept = refused if refused is not None else tuple(gr.update() for _ in seconds)
        try:
            cfg, run = build()
            workspace.check_owned(run.path)
            workspace.check_readable(cfg.model.model_name_or_path, "model.model_name_or_path")
            workspace.check_readable(cfg.model.adapter_path, "model.adapter_path")
            if command == "train" and cfg.train.stage == "ppo":
                workspace.check_readable(cfg.rlhf.reward_model, "rlhf.reward_model")
                check_reward_model(cfg)
            if command in ("train", "eval"):  # the job checks the machine's rule; a login reads its own data only
                data_dir = confined_data_dir(cfg.data.dataset_dir, workspace.data_roots())
                if command == "train" and cfg.train.probe_dataset.strip():
                    run_probes(cfg, data_dir)  # a probe dataset that cannot give probes is refused here, named
            check_queue_share(workspace)
        except (ConfigError, PathError, DataError) as exc:  # DataError: a registry a form field names (Export)
            message = t(lang, "invalid_value", error=error_text(lang, exc))
            gr.Warning(message)
            return (message, *kept) + self.not_started()
        refusal = launch_checked(lang, run, cfg, command)
        if refusal:
            gr.Warning(refusal)
            return (refusal, *kept) + self.not_started()
        # Checkpoints in a just-launched run's folder mean it resumes (launch_checked allowed that).
        ckpt = last_complete_checkpoint(run.path) if command == "train" else None
        message = t(lang, "training_resumed", checkpoint=ckpt.path.name, path=str(run.path)) if ckpt \
            else t(lang, started_key, path=str(run.path))
        ahead = device_queue.position(run) - 1 + device_queue.device_busy()
        if ahead > 0:
            message += "\n\n" + t(lang, "queue_added", ahead=ahead)
        freed = run.read_status().get("chat_unloaded")
        if freed:  # runner.launch took Chat's model off the device this job needs
            message += "\n\n" + t(lang, "chat_unloaded_for_run", model=freed.get("model", ""),
                                     device=freed.get("device", ""))
        return (message, *seconds) + self.started(run)

    def wire(self, lang_dd, extra_outputs: list | None = None,
             extra: Callable[[str, RunDir, runner.Snapshot, bool], list] | None = None) -> None:
        """Refresh every second while the run is active; ``extra(lang, run, snap, changed)`` adds outputs
        (``changed``: new events arrived or the run just ended)."""
        extra_outputs = extra_outputs or []

        def view_of(lang: str, snap: runner.Snapshot) -> tuple:
            return progress_html(lang, snap), status_text(lang, self.kind, snap), readable_log(lang, snap.log_tail)

        async def on_tick(lang: str, path: str, watching: str, shown: int, last_view: tuple | None):
            if path != (watching or ""):  # the page has not yet applied a Start's (or a reload's) outputs
                return [gr.skip() for _ in range(6 + len(extra_outputs))]
            if not path:
                return [gr.skip(), gr.skip(), gr.skip(), shown, gr.Timer(active=False), last_view] + \
                    [gr.skip() for _ in extra_outputs]
            run = RunDir(Path(path))
            last = tuple(last_view) if last_view else (None, None, None)
            deadline, seen = time.monotonic() + LONG_POLL_S, None
            while True:
                snap = self.watch.snapshot(run)  # a class watching one run reads its files once
                if snap is not seen:
                    seen, view = snap, view_of(lang, snap)
                    done = snap.state not in (QUEUED, RUNNING)
                    if done or view != last or len(snap.events) != shown:
                        break
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(POLL_EVERY_S)
            changed = len(snap.events) != shown or done
            more = await asyncio.to_thread(extra, lang, run, snap, changed) if extra else []
            progress, status, log = view
            # Gradio turns every update, gr.skip() included, into a new component object on the server (a skipped
            # State costs nothing), which costs more than re-sending a short text the page already shows and does
            # not re-render. So the progress bar and the log (written by this tick only) are always sent; the
            # status line is shared with other buttons' messages, so an unchanged one is skipped, not re-sent; the
            # timer gets its own interval back (no change) until the run ends.
            return [progress, status if status != last[1] and status else gr.skip(), log,
                    len(snap.events) if len(snap.events) != shown else gr.skip(),
                    gr.Timer(active=False) if done else self.timer.value,
                    view if view != last else gr.skip()] + more

        # queue=False: each tick is one HTTP request (POST /gradio_api/run/...), not a queue join plus an event
        # stream; a class of pages polling every second costs the web process (and the training) far less.
        self.timer.tick(on_tick, [lang_dd, self.run_path, self.watching, self.shown_events, self.shown_view],
                        [self.progress, self.status, self.log, self.shown_events, self.timer, self.shown_view]
                        + extra_outputs, queue=False)

    def stop_handler(self) -> Callable[[str, str], str]:
        def on_stop(lang: str, path: str, request: gr.Request) -> str:
            if not path or runner.snapshot(RunDir(Path(path))).state not in (QUEUED, RUNNING):
                return t(lang, "nothing_running")
            if not workspace_of(request).owns(path):
                return t(lang, "path_err_other_user", path=path)
            runner.stop(RunDir(Path(path)))
            return t(lang, "stop_sent")

        return on_stop

    def reattach(self, active: list[RunDir]) -> tuple:
        """Page-load outputs (``reattach_outputs``): watch this kind's active run, if any."""
        mine = [r for r in active if r.read_status().get("command", "train") == self.kind]
        if not mine:
            return "", gr.Timer(active=False), -1, None, ""
        return str(mine[0].path), gr.Timer(active=True), -1, None, str(mine[0].path)

    def reattach_outputs(self) -> list:
        return [self.run_path, self.timer, self.shown_events, self.shown_view, self.watching]


def new_name_unless_typed(shown: str, served: str, make: Callable[[], str]):
    """A page-load answer for a name box: a new name (``make()``) while the box still shows the name the page was
    served with, else ``gr.skip()``: a name the user typed before the page-load answer came is kept."""
    return make() if (shown or "").strip() in ("", served) else gr.skip()


@dataclass(eq=False)
class PageLoad:
    """What a tab reads from disk and memory when a page opens: ``fill(workspace, active_runs, *inputs' values)``
    gives the values of ``outputs`` (the app runs every tab's in one page-load event)."""

    inputs: list
    outputs: list
    fill: Callable[..., list]


@dataclass(eq=False)
class MonitoredTab:
    """What a run-starting tab hands to the app: its config controls, other texts, and its monitor."""

    controls: list
    other_texts: list
    monitor: RunMonitor
    hardware: Any = None  # its HardwarePanel (webui.hardware_panel), where the tab shows one
    page_load: PageLoad | None = None

    def texts(self) -> list:
        return self.controls + self.other_texts


def build_run_monitor(kind: str, watch: runner.RunWatch, log_lines: int = 12, render_log: bool = True) -> RunMonitor:
    texts = Texts(DEFAULT_LANG)
    progress = gr.HTML(elem_id=f"{kind}-progress")
    status = gr.Markdown(elem_id=f"{kind}-status")
    log = texts.add(gr.Textbox, "log", lines=log_lines, max_lines=log_lines, autoscroll=True, interactive=False,
                    elem_id=f"{kind}-log", render=render_log)
    return RunMonitor(kind, progress, status, log, gr.State(""), gr.State(-1), gr.Timer(1.0, active=False),
                      gr.State(None), gr.Textbox("", visible=False, elem_id=f"{kind}-watching"), watch, texts.items)


def check_queue_share(workspace: Workspace) -> None:
    """With logins, a login (not an admin) may have ``policy().max_queued`` jobs waiting at most: the class shares
    one device queue, which takes the logins' jobs in turn (engine.jobs.device_queue.waiting)."""
    if workspace.folder is None or workspace.admin:
        return
    mine = sum(owner_of(ticket.run.path) == workspace.folder.name for ticket in device_queue.waiting())
    if mine >= policy().max_queued:
        raise AccessError(f"{mine} jobs of yours are waiting already", "queue_share_full", count=mine,
                          limit=policy().max_queued)


def describe_change(lang: str, key: str, before: Any, now: Any) -> str:
    """"LoRA rank: 8 → 16": a changed setting, by its label in ``lang``."""

    def shown(value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(map(str, value))
        return f"{value:g}" if isinstance(value, float) else str(value) if value != "" else '""'

    return f"{field_label(lang, key)}: {shown(before)} → {shown(now)}"


def folder_refusal(lang: str, run: RunDir, cfg: Any, command: str) -> str | None:
    """Why Start may not use ``run``'s folder; None for a new folder, or for a training run there that resumes:
    Resume ticked, a complete checkpoint, and no setting changed that resuming cannot change (the model and the
    method among them). Any other folder that holds something is refused: it may be another run's checkpoint, whose
    weights the run would overwrite."""
    if not run.path.is_dir():  # a file there is refused by runner.run_dir_for, naming the field
        return None
    is_run = run.status_path.exists() or run.config_path.exists()
    if not is_run and not any(run.path.iterdir()):
        return None  # an empty folder: nothing in it to lose
    if not is_run:
        return t(lang, "run_folder_not_a_run", path=str(run.path))
    if command != "train" or run.read_status().get("command", "train") != "train":
        return t(lang, "run_exists", path=str(run.path))
    if not cfg.train.resume:
        return t(lang, "run_exists_resume_off", path=str(run.path))
    plan = resume_plan(run.path, cfg)
    if plan is None:
        return t(lang, "run_exists_no_checkpoint", path=str(run.path))
    try:  # resume_plan compares the settings (model and method too) only where it can read them
        RunConfig.load(run.config_path, "train")
    except (OSError, ValueError):
        return t(lang, "run_exists_no_settings", path=str(run.path))
    if plan.conflicts:
        fields = t(lang, "change_sep").join(describe_change(lang, *change) for change in plan.changes
                                          if change[0] in plan.conflicts)
        return t(lang, "resume_conflicts", path=str(run.path), fields=fields)
    return None


def launch_checked(lang: str, run: RunDir, cfg: Any, command: str) -> str | None:
    """Launch (into the device queue) unless the run folder is taken, or still in use: a finished training
    run there may resume. Returns the refusal message, if any."""
    with runner.launch_lock():
        if run.live_status().get("state") in (QUEUED, RUNNING):
            return t(lang, "run_in_use", path=str(run.path))
        refusal = folder_refusal(lang, run, cfg, command)
        if refusal:
            return refusal
        runner.launch(run, cfg, command)
    return None
