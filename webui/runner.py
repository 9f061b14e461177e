"""Starts, stops and watches engine subprocesses. Holds no training state of its own:
everything is read back from the run directory."""

from __future__ import annotations

import fcntl
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from engine.core.checkpoints import Checkpoint, list_checkpoints
from engine.core.config import RunConfig
from engine.core.paths import PROJECT_ROOT, confined_folder, safe_name, saves_dir
from engine.core.run_history import delete_run as remove
from engine.core.rundir import ACTIVE_STATES, FINISHED, QUEUED, RUNNING, STOPPED, RunDir, list_runs
from engine.core.workspace import Workspace
from engine.jobs import warm_worker
from engine.jobs.device_queue import crowds_cpu_memory, new_ticket, position, queue_dir, shares_accelerator, wrap
from engine.jobs.launch import job_command, uses_torchrun

# Reaped on poll so no zombies are left behind. Module-level, not an app's: a child is this process's,
# whichever app started it, and only this process can reap it.
_children: dict[int, subprocess.Popen] = {}


def method_dir(model_label: str, method: str, saves: Path | None = None) -> Path:
    """<saves>/<model>/<method>: ``saves`` is a workspace's (engine.core.workspace), saves/ without logins."""
    return (saves or saves_dir()) / safe_name(model_label) / safe_name(method)


def fresh_name(prefix: str, parents: list[Path], avoid: str = "") -> str:
    """"<prefix>_<date-time>", not yet a folder in any of ``parents`` nor ``avoid`` (the name just started):
    "-2", "-3"… where it is (a Start within the same second, a page opened right after another page's Start)."""
    stem = time.strftime(f"{prefix}_%Y-%m-%d-%H-%M-%S")
    name, n = stem, 1
    while name == avoid.strip() or any((parent / name).exists() for parent in parents):
        n += 1
        name = f"{stem}-{n}"
    return name


def fresh_run_name(prefix: str, saves: Path | None = None, avoid: str = "") -> str:
    """A default run name that no model's or method's folder under ``saves`` holds yet."""
    return fresh_name(prefix, list((saves or saves_dir()).glob("*/*")), avoid)


def run_dir_for(model_label: str, method: str, run_name: str, saves: Path | None = None,
                field: str = "train.output_dir") -> RunDir:
    """The run folder <method dir>/<run_name>; a PathError for the form field ``field`` when the name is not one
    folder name inside it."""
    return RunDir(confined_folder(method_dir(model_label, method, saves), run_name, field, "output dir", single=True))


def command_for(run: RunDir, cfg: RunConfig, command: str = "train") -> tuple[list[str], dict[str, str]]:
    """The exact argument list Start runs (no shell), and the environment it adds."""
    return job_command(cfg, run.config_path, command)


def command_preview(run: RunDir, cfg: RunConfig, command: str = "train") -> str:
    """What Start will run, pasteable into a terminal: working folder, config file, environment, command."""
    argv, extra = command_for(run, cfg, command)
    env = {**_visible_env(), **extra}
    env_text = "".join(f"{k}={shlex.quote(v)} " for k, v in env.items())
    return (f"cd {shlex.quote(str(PROJECT_ROOT))}\n"
            f"mkdir -p {shlex.quote(str(run.path))}\n"
            f"cat > {shlex.quote(str(run.config_path))} <<'EOF'\n{cfg.to_yaml(command)}EOF\n"
            f"{env_text}{shlex.join(argv)}\n")


def _visible_env() -> dict[str, str]:
    """Device-selection variables the child inherits (shown in the preview so it reproduces)."""
    keys = ("CUDA_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES", "TUNEBOARD_HOME")
    return {k: os.environ[k] for k in keys if k in os.environ}


@contextmanager
def launch_lock():
    """Held while Start checks a folder and claims it, so two Starts at the same moment (two tabs, two
    browsers, two app processes) cannot both take one folder."""
    queue_dir().mkdir(parents=True, exist_ok=True)
    with open(queue_dir() / "launch.lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _web_chats() -> list:
    """The chat engines of this process, those Chat has made (without importing Chat's tab, or torch)."""
    tab = sys.modules.get("webui.chat_tab")
    return tab.made_engines() if tab is not None else []


def release_chat(cfg: RunConfig, command: str, chat) -> dict | None:
    """Unload ``chat``'s model (an answer being written is cut) when the job will use its accelerator, or, both on
    the CPU, when the memory estimate says the run does not fit beside it (engine.jobs.device_queue says why).
    Returns {"model", "device"} of what was unloaded, None when it stays."""
    if chat is None or not chat.loaded:
        return None
    info = chat.describe()
    device = info.get("device") or "cpu"
    if not (shares_accelerator(device, cfg, command) or (device == "cpu" and crowds_cpu_memory(cfg, command))):
        return None
    chat.unload()
    return {"model": info.get("model") or "", "device": device}


def launch(run: RunDir, cfg: RunConfig, command: str = "train", chat=None) -> RunDir:
    """Write run.yaml and status, take a place in the device queue, and start the engine detached (its own
    session, output to stdout.log): it waits for its turn, then runs, whatever happens to this process.

    Chat's models (``chat``, by default this process's chat engines, every login's) are unloaded first where the
    job needs their device (``release_chat``); status.json's ``chat_unloaded`` says what was unloaded, for Start's
    message."""
    run.path.mkdir(parents=True, exist_ok=True)
    getattr(cfg, command).output_dir = str(run.path)
    cfg.save(run.config_path, command)
    run.clear_stop()
    launcher = "torchrun" if uses_torchrun(cfg, command) else "python"
    freed = [release_chat(cfg, command, engine) for engine in ([chat] if chat is not None else _web_chats())]
    freed = next((f for f in freed if f), None)
    # A resumed run starts over in status; its checkpoints and events stay.
    run.write_status(QUEUED, created_at=time.time(), pid=None, error=None, command=command, launcher=launcher,
                     finished_at=None, started_at=None, metrics=None, phase="", cancelled=None, chat_unloaded=freed,
                     gradient_checkpointing=None)
    ticket = new_ticket(run)
    argv, extra = command_for(run, cfg, command)
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", **extra)
    # A single process is forked by the warm worker, its libraries already imported, when one is ready.
    pid = None if launcher == "torchrun" else warm_worker.spawn(
        ticket.path, command, run.config_path, env, PROJECT_ROOT, run.log_path,
        recorded=lambda child: run.write_status(QUEUED, pid=child, warm=True))
    if pid is None:
        with open(run.log_path, "ab") as log:
            proc = subprocess.Popen(  # a fixed argument list, no shell
                wrap(ticket, argv), cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        _children[proc.pid] = proc
        run.write_status(QUEUED, pid=proc.pid, warm=False)
    warm_worker.start()  # for the next Start, if none is running yet
    return run


def stop(run: RunDir) -> bool:
    """Ask the run to stop: its stop.request file, which every process of the run checks each step.
    A single process also gets SIGTERM (it may be loading, between steps); a torchrun launch gets it on a
    second press only, since torchrun ends its workers on SIGTERM before they can save."""
    status = run.read_status()
    pid = status.get("pid")
    if not pid:
        return False
    second_press = run.stop_requested()
    run.request_stop()
    if status.get("launcher") == "torchrun" and not second_press:
        return True
    try:
        os.killpg(os.getpgid(int(pid)), signal.SIGTERM)
        return True
    except (ProcessLookupError, PermissionError, OSError):
        return False


def reap() -> None:
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[pid]


@dataclass(frozen=True)
class Snapshot:
    state: str = ""
    step: int = 0
    total_steps: int = 0
    elapsed_s: float = 0.0
    remaining_s: float = 0.0
    error: str | None = None
    error_record: dict | None = None  # the error's message key and params (engine.jobs.job.error_record)
    phase: str = ""
    events: list = field(default_factory=list)
    log_tail: str = ""
    queue_position: int = 0  # 1 = next to start; 0 = not waiting
    cancelled: bool = False
    download: dict | None = None  # engine.core.download.DownloadProgress fields, while the phase is "downloading"
    checkpointing: dict | None = None  # engine.core.checkpointing_choice.CheckpointingChoice fields, once the job chose


def snapshot(run: RunDir) -> Snapshot:
    reap()
    status = run.live_status()
    events = run.read_events()
    step = int(status.get("step") or 0)
    total = int(status.get("total_steps") or (events[-1].get("total_steps", 0) if events else 0))
    return Snapshot(
        state=status.get("state", ""), step=step, total_steps=total,
        elapsed_s=float(status.get("elapsed_s") or 0.0), remaining_s=float(status.get("remaining_s") or 0.0),
        error=status.get("error"), error_record=status.get("error_record"), phase=status.get("phase", ""),
        events=events, log_tail=run.log_tail(30),
        queue_position=position(run) if status.get("state") == QUEUED else 0,
        cancelled=bool(status.get("cancelled")),
        download=status.get("download") if status.get("phase") == "downloading" else None,
        checkpointing=status.get("gradient_checkpointing"))


SHARED_MAX_AGE_S = 0.5


class RunWatch:
    """What one app's pages read about the runs they watch: ``snapshot(run)``, shared by every browser session that
    watches the run, so thirty pages polling one run within ``max_age_s`` make one read of its files (and get the
    same events list: read it, never change it). Decisions (Stop, Start) use ``snapshot`` itself."""

    def __init__(self, max_age_s: float = SHARED_MAX_AGE_S) -> None:
        self.max_age_s = max_age_s
        self._shared: dict[Path, tuple[float, Snapshot]] = {}
        self._lock = threading.Lock()

    def snapshot(self, run: RunDir) -> Snapshot:
        with self._lock:
            now = time.monotonic()
            hit = self._shared.get(run.path)
            if hit is not None and now - hit[0] <= self.max_age_s:
                return hit[1]
            snap = snapshot(run)
            self._shared[run.path] = (time.monotonic(), snap)
            for path in [p for p, (at, _) in self._shared.items() if now - at > 60]:  # runs nobody watches any more
                del self._shared[path]
            return snap

    def forget(self, path: Path) -> None:
        """Drop what was read of the run at ``path`` (it was deleted)."""
        with self._lock:
            self._shared.pop(path, None)


def active_runs(saves: Path | None = None) -> list[RunDir]:
    """Runs still running or queued, anywhere under ``saves`` (saves/ by default; for re-attaching after a
    reload): running ones first, then the queue in its order."""
    found = []
    root = saves or saves_dir()
    if not root.is_dir():
        return []
    for model_dir in root.iterdir():
        if not model_dir.is_dir():
            continue
        for mdir in model_dir.iterdir():
            for run in list_runs(mdir):
                status = run.live_status()
                if status.get("state") in ACTIVE_STATES:
                    found.append((status.get("state") != RUNNING, status.get("created_at") or 0, run))
    return [run for *_, run in sorted(found, key=lambda item: item[:2])]


def checkpoint_entries(model_label: str, method: str, workspace: Workspace = Workspace()
                       ) -> list[tuple[RunDir, Checkpoint | None]]:
    """What ``workspace`` can load for this model and method, newest run first: a run's final weights (checkpoint
    None) once it finished or was stopped, then its complete checkpoint-N folders, latest first. Its own runs (an
    admin's: everyone's), then those others shared with it."""
    entries: list[tuple[RunDir, Checkpoint | None]] = []
    runs = [run for root in workspace.run_roots() for run in list_runs(method_dir(model_label, method, root))]
    runs += [run for run in workspace.shared_runs()
             if (run.path.parent.parent.name, run.path.parent.name) == (safe_name(model_label), safe_name(method))]
    for run in runs:
        if run.read_status().get("state") in (FINISHED, STOPPED) and run.has_final_weights():
            entries.append((run, None))
        entries += [(run, c) for c in reversed(list_checkpoints(run.path)) if c.complete]
    return entries


def finished_checkpoints(model_label: str, method: str, workspace: Workspace = Workspace()) -> list[tuple[str, str]]:
    """(label, path) of runs with final weights for this model and method, newest first."""
    return [(run.name, str(run.path)) for run, ckpt in checkpoint_entries(model_label, method, workspace)
            if ckpt is None]


def delete_run(path: str, root: Path | None = None, watch: RunWatch | None = None) -> RunDir:
    """Delete a finished, failed or stopped run directory of ``root`` (a workspace's saves; saves/ by default;
    engine.core.run_history.delete_run), under the launch lock: a Start that would resume the same folder waits, and
    then finds it gone. ``watch`` (the app's) forgets it."""
    with launch_lock():
        run = remove(path, root)
    if watch is not None:
        watch.forget(run.path)
    return run
