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

from engine.fileio import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl

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
        try:
            return json.loads(self.status_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

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
        atomic_write_json(self.status_path, status)
        return status

    # -- stop requests: a file, so every process of a run (and a restarted app) sees the same request --
    def request_stop(self) -> None:
        atomic_write_text(self.stop_path, f"{time.time()}\n")

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
        atomic_write_text(self.events_path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in kept))

    def read_events(self) -> list[dict]:
        return read_jsonl(self.events_path)

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
        from engine.checkpoints import list_checkpoints  # noqa: PLC0415 - it reads configs; keep this module light

        return [c.path for c in list_checkpoints(self.path)]

    def has_final_weights(self) -> bool:
        return (self.path / "adapter_model.safetensors").is_file() or (self.path / "model.safetensors").is_file() \
            or any(self.path.glob("model-*.safetensors"))


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        import psutil  # noqa: PLC0415

        proc = psutil.Process(int(pid))
        return proc.status() != psutil.STATUS_ZOMBIE
    except Exception:  # NoSuchProcess, AccessDenied, bad pid
        return False


def kill_leftovers(config_path: Path) -> None:
    """Kill what is left of a run whose launcher died: torchrun's workers (each in a session of its own,
    so not reached through the launcher's group). Every process of a run names its run.yaml."""
    try:
        import psutil  # noqa: PLC0415
    except ImportError:
        return
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
