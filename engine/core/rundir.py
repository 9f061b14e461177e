"""The run directory: the only contract between a training process and the UI.

    run.yaml       the RunConfig the process was started with
    status.json    {"state": queued|running|finished|failed|stopped, "pid", "error", timestamps}
    events.jsonl   one JSON object per logging step
    stdout.log     everything the process printed
    stop.request   present once Stop was pressed (every process of the run checks it)
    checkpoint-N/  intermediate checkpoints; the final adapter/model sits in the run directory itself

Everything the UI shows about a run is rebuilt from these files, so a browser
reload or an app restart loses nothing.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from engine.core.checkpoints import list_checkpoints
from engine.core.data.errors import DataError
from engine.core.fileio import append_jsonl, atomic_write_json, atomic_write_text, read_json_object, read_jsonl

QUEUED, RUNNING, FINISHED, FAILED, STOPPED = "queued", "running", "finished", "failed", "stopped"
ACTIVE_STATES = (QUEUED, RUNNING)
DONE_STATES = (FINISHED, FAILED, STOPPED)



@dataclass(frozen=True)
class RunDir:
    path: Path
    # False in every process of a multi-process run but rank 0: one set of status and events is written.
    writer: bool = field(default=True, compare=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "run.yaml"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def log_path(self) -> Path:
        return self.path / "stdout.log"

    # -- status ------------------------------------------------------------
    def read_status(self) -> dict:
        """status.json; {} when it is missing or unreadable (``status_error`` says why)."""
        try:
            return read_status_file(self.status_path)
        except (OSError, ValueError):
            return {}

    def status_error(self) -> Exception | None:
        """Why status.json cannot be read (a DataError naming it), None when it can or is missing."""
        try:
            read_status_file(self.status_path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            return exc
        return None

    @property
    def stop_path(self) -> Path:
        return self.path / "stop.request"

    def write_status(self, state: str, **fields) -> dict:
        status = self.read_status()
        if not self.writer:
            return status
        status.update(fields)
        status["state"] = state
        status["updated_at"] = time.time()
        if state == RUNNING and not status.get("started_at"):
            status["started_at"] = status["updated_at"]
        if state in DONE_STATES and not status.get("finished_at"):
            status["finished_at"] = status["updated_at"]
        try:
            atomic_write_json(self.status_path, status, make_parent=False)
        except FileNotFoundError:
            if self.path.is_dir():
                raise
            # The run folder was deleted (by hand, or an older version's Delete): nothing brings it back.
        return status

    # -- stop requests: a file, so every process of a run (and a restarted app) sees the same request --
    def request_stop(self) -> None:
        atomic_write_text(self.stop_path, f"{time.time()}\n", make_parent=False)

    def stop_requested(self) -> bool:
        return self.stop_path.exists()

    def clear_stop(self) -> None:
        self.stop_path.unlink(missing_ok=True)

    def live_status(self) -> dict:
        """The status, with a run whose process died unannounced reported as failed (or stopped, when Stop
        had been pressed), and whatever it left behind (torchrun workers) killed."""
        status = self.read_status()
        pid = status.get("pid")
        if status.get("state") not in ACTIVE_STATES or not pid or pid_alive(pid):
            return status
        kill_leftovers(self.config_path)
        if self.stop_requested():
            return self.write_status(STOPPED, phase="stopped", error=None)
        tail = self.log_tail(20)
        what = "the training process" if status.get("state") == RUNNING else "the queued job"
        return self.write_status(FAILED, error=f"{what} exited unexpectedly"
                                 + (f"; last output:\n{tail}" if tail else ""))

    # -- events and log ------------------------------------------------------
    def append_event(self, record: dict) -> None:
        if self.writer:
            append_jsonl(self.events_path, record)

    def truncate_events(self, last_step: int) -> None:
        """Drop events after ``last_step`` (a resumed run repeats the steps after its checkpoint)."""
        if not self.writer:
            return
        kept = [e for e in self.read_events() if int(e.get("step") or 0) <= last_step]
        atomic_write_text(self.events_path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in kept),
                          make_parent=False)

    def read_events(self) -> list[dict]:
        """The logged steps; a record the app could not have written (a step that is not a number) is left out."""
        return [e for e in read_jsonl(self.events_path) if _usable_event(e)]

    def log_tail(self, lines: int = 40, max_bytes: int = 64_000) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - max_bytes))
                data = fh.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        # tqdm-style carriage returns: keep only the last state of each line. (Not splitlines():
        # it also splits on a bare "\r", so every progress state would become a line of its own.)
        text = data.replace("\r\n", "\n")
        text = text[:-1] if text.endswith("\n") else text
        cleaned = [next((s for s in reversed(line.split("\r")) if s), "") for line in text.split("\n")] if text else []
        return "\n".join(cleaned[-lines:])

    # -- weights -------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        return [c.path for c in list_checkpoints(self.path)]

    def has_final_weights(self) -> bool:
        return (self.path / "adapter_model.safetensors").is_file() or (self.path / "model.safetensors").is_file() \
            or any(self.path.glob("model-*.safetensors"))


# Fields the app reads from status.json, by the types it writes them with: another type makes the file unreadable
# rather than break every page that lists the run.
_STATUS_TEXT = ("state", "command", "phase", "launcher")
_STATUS_NUMBERS = ("created_at", "started_at", "finished_at", "updated_at", "pid", "step", "total_steps",
                   "elapsed_s", "remaining_s")


_EVENT_NUMBERS = ("step", "total_steps", "epoch", "elapsed_s", "remaining_s", "tokens_seen", "tokens_per_s", "loss",
                  "lr", "grad_norm", "eval_loss")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _usable_event(event: dict) -> bool:
    """Whether every field the pages draw from is of the type engine/train/run.py writes (probes: question/answer
    texts)."""
    if not _is_number(event.get("step")) or not all(_is_number(event[k]) for k in _EVENT_NUMBERS if k in event):
        return False
    probes = event.get("probes", [])
    return isinstance(probes, list) and all(isinstance(p, dict) and isinstance(p.get("q"), str)
                                            and isinstance(p.get("a"), str) for p in probes)


def read_status_file(path: Path) -> dict:
    """status.json as a dict; FileNotFoundError, or a DataError naming the file and what is wrong with it."""
    status = read_json_object(path)
    text = [name for name in _STATUS_TEXT if status.get(name) is not None and not isinstance(status[name], str)]
    numbers = [name for name in _STATUS_NUMBERS if status.get(name) is not None and not _is_number(status[name])]
    if text or numbers:
        name = (text + numbers)[0]
        where = {"kind": type(status[name]).__name__, "file": str(path), "field": name}
        raise DataError("not_text", **where) if text else DataError("not_number", **where)
    return status


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        proc = psutil.Process(int(pid))
        return proc.status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - whatever it is (NoSuchProcess, AccessDenied, a bad pid): not alive
        return False


def kill_leftovers(config_path: Path) -> None:
    """Kill what is left of a run whose launcher died: torchrun's workers (each in a session of its own,
    so not reached through the launcher's group). Every process of a run names its run.yaml."""
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.pid != os.getpid() and str(config_path) in (proc.info["cmdline"] or []):
                proc.kill()
        except psutil.Error:
            continue


def list_runs(root: str | Path) -> list[RunDir]:
    """Run directories directly under ``root`` (saves/<model>/<method>), newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [RunDir(p) for p in root.iterdir() if p.is_dir() and (p / "status.json").is_file()]
    return sorted(runs, key=lambda r: r.read_status().get("created_at", 0), reverse=True)
