"""One job at a time on the device, in the order Start was pressed, without the web process.

Every job the UI starts is wrapped: ``python -m engine.jobs.device_queue TICKET -- <the job's command>``.
The wrapper waits until its ticket is the oldest live one and it holds the device lock, then
``exec``s the job in its own place (same pid, so status.json stays right). The lock is an
``flock`` the job inherits: the kernel drops it when the job exits, however it exits (even
``kill -9``), so a dead job never blocks the queue. (torchrun's workers do not inherit it; a
launcher killed outright has its workers killed by ``RunDir.live_status``.)

Tickets are files under ``saves/.queue/`` named by creation time, so the queue is on disk: it
survives an app restart, and it moves on while the app is down. Cancelling is Stop on a queued
run: the wrapper sees the run's stop.request, removes its ticket and ends the run as stopped.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from engine.core.config import RunConfig
from engine.core.devices import job_device, visible_devices_env
from engine.core.fileio import atomic_write_json
from engine.core.memory_estimate import estimate_training, model_info
from engine.core.memory_fit import device_memory, fits
from engine.core.paths import saves_dir
from engine.core.rundir import ACTIVE_STATES, QUEUED, STOPPED, RunDir, pid_alive
from engine.core.workspace import owner_of
from engine.jobs.launch import job_command

POLL_S = 0.5
# A ticket whose run has no process yet is the runner between writing it and starting the wrapper.
_UNSTARTED_GRACE_S = 60.0


def queue_dir() -> Path:
    return saves_dir() / ".queue"


def lock_path() -> Path:
    return queue_dir() / "device.lock"


def current_path() -> Path:
    return queue_dir() / "current.json"


def current() -> RunDir | None:
    """The run holding the device, if it is still active."""
    try:
        data = json.loads(current_path().read_text(encoding="utf-8"))
        run = RunDir(Path(data["run"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    status = run.live_status()
    if status.get("state") not in ACTIVE_STATES or status.get("pid") != data.get("pid"):
        return None
    return run


@dataclass(frozen=True)
class Ticket:
    path: Path
    run: RunDir

    @property
    def created(self) -> float:
        return int(self.path.name.split("-", 1)[0]) / 1e9


def new_ticket(run: RunDir) -> Ticket:
    """Take a place at the end of the queue for ``run`` (the name orders tickets by creation time)."""
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.ticket"
    path = queue_dir() / name
    atomic_write_json(path, {"run": str(run.path)})
    return Ticket(path, run)


def read_ticket(path: Path) -> Ticket | None:
    try:
        return Ticket(path, RunDir(Path(json.loads(path.read_text(encoding="utf-8"))["run"])))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _live(ticket: Ticket) -> bool:
    """Still waiting: its run is queued, not cancelled, and its wrapper is alive (or about to start)."""
    status = ticket.run.read_status()
    if status.get("state") != QUEUED or ticket.run.stop_requested():
        return False
    pid = status.get("pid")
    if pid:
        return pid_alive(pid)
    return time.time() - ticket.created < _UNSTARTED_GRACE_S


def waiting() -> list[Ticket]:
    """Live tickets in their turn; dead ones (a wrapper killed, a run cancelled) are removed on the way.

    The turn is round-robin across workspaces (logins), each one's jobs oldest first: every login's first job
    before anyone's second, so a student who queues three jobs does not hold the class back. With one workspace
    this is simply oldest first."""
    folder = queue_dir()
    if not folder.is_dir():
        return []
    tickets = []
    for path in sorted(folder.glob("*.ticket")):
        ticket = read_ticket(path)
        if ticket is not None and _live(ticket):
            tickets.append(ticket)
        else:  # tickets are written atomically, so an unreadable one is garbage too
            path.unlink(missing_ok=True)
    ahead: dict[str, int] = {}
    turns = []
    for ticket in tickets:  # oldest first, so each owner's count is its jobs queued before this one
        owner = owner_of(ticket.run.path)
        turns.append((ahead.get(owner, 0), ticket.path.name, ticket))
        ahead[owner] = ahead.get(owner, 0) + 1
    return [ticket for *_, ticket in sorted(turns, key=lambda turn: turn[:2])]


def position(run: RunDir) -> int:
    """1 for the next run to start, 2 after it, ...; 0 when ``run`` is not waiting."""
    for i, ticket in enumerate(waiting(), start=1):
        if ticket.run.path == run.path:
            return i
    return 0


class _TimedOut(Exception):
    pass


def _raise_timed_out(*_) -> None:
    raise _TimedOut


def _try_lock(wait_s: float = 0.0) -> int | None:
    """The device lock's file descriptor when taken (waiting up to ``wait_s``), else None.

    Waiting blocks in the kernel, which hands the lock over the moment its holder exits: the next job
    starts at once instead of at its next poll. (Only in the main thread, where SIGALRM can end the wait.)
    """
    queue_dir().mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        if wait_s <= 0 or threading.current_thread() is not threading.main_thread():
            os.close(fd)
            return None
    previous = signal.signal(signal.SIGALRM, _raise_timed_out)
    signal.setitimer(signal.ITIMER_REAL, wait_s)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd
    except _TimedOut:
        os.close(fd)
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def device_busy() -> bool:
    """True while a job holds the device (used to say 'queued' rather than 'starting')."""
    fd = _try_lock()
    if fd is None:
        return True
    os.close(fd)
    return False


def wait_and_exec(ticket_path: Path, argv: list[str]) -> int:
    turn = wait_for_turn(ticket_path)
    if isinstance(turn, Exit):
        return turn.code
    try:
        os.execv(argv[0], argv)
    except OSError as exc:
        turn.run.write_status("failed", error=f"could not start {argv[0]}: {exc}")
        return 1
    return 0  # not reached


@dataclass(frozen=True)
class Turn:
    """The device is this run's: ``lock_fd`` holds it until this process (and what it execs or forks) ends."""

    run: RunDir
    lock_fd: int


@dataclass(frozen=True)
class Exit:
    """The run will not start (removed from the queue, or its ticket is unusable): exit with ``code``."""

    code: int


def wait_for_turn(ticket_path: Path) -> Turn | Exit:
    """Wait until ``ticket_path`` is first in line and the device lock is free, then take the lock."""
    ticket = read_ticket(ticket_path)
    if ticket is None:
        print(f"queue ticket {ticket_path} is missing or unreadable", file=sys.stderr)
        return Exit(2)
    run = ticket.run
    cancelled = []
    # Stop on a queued run sends SIGTERM too: end as cancelled, not killed.
    signal.signal(signal.SIGTERM, lambda *_: cancelled.append(True))
    announced = False

    def cancel() -> Exit:
        ticket.path.unlink(missing_ok=True)
        run.write_status(STOPPED, phase="cancelled", cancelled=True, error=None)
        print("Removed from the queue before it started.", flush=True)
        return Exit(0)

    def gone() -> Exit:
        # Its run folder was deleted: nothing is left to run or to report to, and waiting on would hold a place
        # in the queue that no page shows or can stop.
        ticket.path.unlink(missing_ok=True)
        print(f"Run folder {run.path} is gone; leaving the queue.", file=sys.stderr, flush=True)
        return Exit(1)

    while True:
        if not run.path.is_dir():
            return gone()
        if cancelled or run.stop_requested():
            return cancel()
        line = waiting()
        first = bool(line) and line[0].path == ticket.path
        if first and (fd := _try_lock()) is not None:
            break
        if not announced:
            print("Waiting for the device: another job is using it.", flush=True)
            announced = True
        if first:  # next in line: wait for the lock itself, a poll's time at most
            if (fd := _try_lock(POLL_S)) is not None:
                break
        else:
            time.sleep(POLL_S)
    if not run.path.is_dir() or cancelled or run.stop_requested():  # Delete or Stop came while it waited for the lock
        os.close(fd)
        return gone() if not run.path.is_dir() else cancel()
    atomic_write_json(current_path(), {"run": str(run.path), "pid": os.getpid(), "since": time.time()})
    ticket.path.unlink(missing_ok=True)
    os.set_inheritable(fd, True)  # held by the job (and its workers) until the last of them exits
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return Turn(run, fd)


def wrap(ticket: Ticket, argv: list[str]) -> list[str]:
    """The command that waits for ``ticket``'s turn, then runs ``argv``."""
    return [sys.executable, "-m", "engine.jobs.device_queue", str(ticket.path), "--", *argv]


def main(args: list[str]) -> int:
    if len(args) < 3 or args[1] != "--":
        print("usage: python -m engine.jobs.device_queue TICKET -- COMMAND...", file=sys.stderr)
        return 2
    return wait_and_exec(Path(args[0]), args[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


# -- the web process's chat model and the jobs ------------------------------------------------------------------
# Chat keeps its model in the web process, outside the queue. On an accelerator a job on the same device would run
# out of memory beside it (a 7B chat model holds 15 GB), so Start frees it and Load model refuses while such a job
# runs or waits. The CPU is not a device slot: its memory is shared with everything else, so there the chat model
# stays unless the memory estimate says the run will not fit beside it (the README's CPU workflow loads the small
# demo model in Chat, then trains).

def job_device_type(cfg, command: str) -> str:
    """The device type the job will run on, resolved as its environment is (engine.core.devices.job_device)."""
    return job_device(cfg.export.device if command == "export" else cfg.model.device)


def _numbering(env) -> str:
    return env.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST")


def _ids(device_type: str, env) -> list[str] | None:
    """The physical ids a process started with ``env`` sees as device 0, 1, ...; None: all, in order."""
    name = visible_devices_env(device_type)
    value = env.get(name) if name else None
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]


def job_slots(cfg, command: str, device_type: str, env) -> set[str]:
    """The physical ids of the accelerators a job started with ``env`` uses: its processes take devices 0..n-1 of
    what it sees."""
    count = cfg.processes_per_node() if command == "train" else 1
    seen = _ids(device_type, env)
    return set(seen[:count]) if seen is not None else {str(i) for i in range(count)}


def chat_slot(device_type: str, index: int = 0) -> str:
    """The physical id of this process's accelerator ``index`` (chat's model goes to the current device, 0)."""
    seen = _ids(device_type, os.environ)
    return seen[index] if seen is not None and index < len(seen) else str(index)


def shares_accelerator(chat_device: str, cfg, command: str) -> bool:
    """Whether a job would use the accelerator chat's model is on (``chat_device``: cuda, cuda:1, npu, mps, cpu)."""
    kind, _, index = (chat_device or "cpu").partition(":")
    if kind == "cpu" or job_device_type(cfg, command) != kind:
        return False
    if kind == "mps":  # one device
        return True
    env = {**os.environ, **job_command(cfg, "run.yaml", command)[1]}  # what the job will see
    if _numbering(env) != _numbering(os.environ):
        return True  # the job numbers devices another way: the same number may not be the same device; be safe
    return chat_slot(kind, int(index or 0)) in job_slots(cfg, command, kind, env)


def crowds_cpu_memory(cfg, command: str, devices=None) -> bool:
    """A CPU training job beside a chat model on the CPU: whether the memory estimate says the run will not fit in
    the memory free now (which the chat model already takes from). Unknown models and other commands: no (keep
    the chat model; a wrong 'yes' would break a workflow that fits, a wrong 'no' costs swap)."""
    if command != "train" or job_device_type(cfg, command) != "cpu":
        return False
    info = model_info(cfg.model.model_name_or_path, cfg.model.hub)
    if info is None:
        return False
    devices = device_memory() if devices is None else devices
    cpu = next(d for d in devices if d.kind == "CPU")
    return fits(estimate_training(cfg, info, device_type="cpu"), cpu).state == "too_big"


def queued_or_running() -> list[tuple[RunDir, str]]:
    """(run, command) of the job holding the device and of those waiting for it."""
    runs = [run for run in [current()] if run is not None] + [ticket.run for ticket in waiting()]
    found, seen = [], set()
    for run in runs:
        if run.path not in seen:
            seen.add(run.path)
            found.append((run, run.read_status().get("command") or "train"))
    return found


def job_on_device(chat_device: str) -> RunDir | None:
    """A job that holds or waits for the accelerator ``chat_device`` (Load model waits for it to end)."""
    for run, command in queued_or_running():
        try:
            cfg = RunConfig.load(run.config_path, command)
        except (OSError, ValueError):
            continue  # a run folder being written or removed: the queue ends it
        if shares_accelerator(chat_device, cfg, command):
            return run
    return None
