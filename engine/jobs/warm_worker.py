"""A warm worker: a process that has already imported torch, transformers, peft and the engine, and forks
each single-process job (train, eval, export) from there, so a run starts with its libraries loaded.

Importing those libraries is most of a run's start on a small machine (several seconds on 2 CPU cores);
a fork of a process that has them costs milliseconds. The worker:

- belongs to one process, its *owner* (the web app, or a script calling ``webui.runner.launch``): it listens
  on ``saves/.queue/warm-<owner pid>.sock`` (mode 0600; the peer's uid is checked too) and exits when its
  owner has gone. Runs it forked live on: each is a session of its own, like a cold-started job.
- runs nothing but ``python -m engine train|eval|export RUN.yaml``: a request names the command, the config,
  the ticket, the log file and the environment; the child takes its place in the device queue
  (``device_queue.wait_for_turn``), then runs the command in-process with that environment.
- never initialises a device or starts a thread before forking: CUDA (and its visible-devices variable) is
  first touched by the child. Where torch-npu is installed no warm worker is used (importing torch loads it).
- needs Linux: it checks its peer with SO_PEERCRED and forks a process that has imported torch (macOS has
  neither the option nor a safe fork of such a process). Elsewhere no worker is started at all, rather than one
  that dies at its first request and is started again at every Start.
- starts with the environment of a job on the machine's default device (engine.core.devices.cpu_tuning_env: the
  CPU-only tuning on a CPU); a job whose import-time variables differ (a CPU job on a GPU machine) starts cold.

A launch that finds no worker ready (still importing, disabled with ``TUNEBOARD_WARM_WORKER=0``, a socket path
too long for Unix sockets) starts the job cold, exactly as before: the worker only ever saves time.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from engine.core.devices import cpu_tuning_env, machine_device
from engine.core.rundir import QUEUED, pid_alive
from engine.core.switches import env_switch
from engine.jobs.device_queue import Exit, queue_dir, read_ticket, wait_for_turn
from engine.jobs.job import settle_imports

ENV_SWITCH = "TUNEBOARD_WARM_WORKER"
COMMANDS = ("train", "eval", "export")
# What a job imports anyway; transformers resolves most names lazily, so the modules themselves are named.
PRELOAD = ("torch", "transformers", "transformers.trainer", "transformers.models.llama.modeling_llama",
           "transformers.models.qwen2.modeling_qwen2", "peft", "datasets", "safetensors.torch",
           "engine.train.run", "engine.train.trainers", "engine.core.encode", "engine.modeling.models",
           "engine.modeling.finetuning", "engine.train.fast_loss", "engine.evaluate.run", "engine.export",
           "engine.__main__", "setproctitle")
# Variables that libraries read when imported (caches, thread pools, allocators, hub settings): a job whose
# environment differs from the worker's in one of them is started cold, since the worker imported with its own.
IMPORT_TIME_PREFIXES = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TORCH", "PYTORCH_", "OMP_", "MKL_", "KMP_",
                        "OPENBLAS_", "PYTHON", "LD_", "ACCELERATE_", "DS_", "TRL_", "PEFT_", "XDG_CACHE_HOME")
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes
_OWNER_POLL_S = 1.0


def platform_supported() -> bool:
    """Linux (SO_PEERCRED, and a fork that keeps torch usable); checked before anything is started."""
    return hasattr(socket, "SO_PEERCRED") and hasattr(os, "fork")


def enabled() -> bool:
    return env_switch(ENV_SWITCH) and platform_supported() and importlib.util.find_spec("torch_npu") is None


def socket_path(owner: int | None = None) -> Path | None:
    path = queue_dir() / f"warm-{owner or os.getpid()}.sock"
    return path if len(str(path)) <= _MAX_SOCKET_PATH else None


# -- the owner's side ------------------------------------------------------------------------------------
_started: subprocess.Popen | None = None
_started_at: Path | None = None  # its socket


def start() -> None:
    """Start this process's warm worker in the background, if none is running (returns at once)."""
    global _started, _started_at
    path = socket_path()
    # One per socket path: a process whose saves/ moved (tests do) gets a worker where spawn() will look for it.
    if not enabled() or path is None or (_started is not None and _started.poll() is None and _started_at == path):
        return
    _remove_stale_sockets()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Its forks are the jobs: the import-time variables of a job on the default device (engine.jobs.launch.job_command),
    # told without importing torch here, which would hold the worker back by the seconds that import takes.
    tuning = cpu_tuning_env(machine_device())
    _started_at = path
    with open(path.with_suffix(".log"), "ab") as err:  # the worker has its own copy once started
        _started = subprocess.Popen(  # a fixed argument list, no shell
            [sys.executable, "-m", "engine.jobs.warm_worker", "--owner", str(os.getpid())], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", **tuning))


def spawn(ticket: Path, command: str, config: Path, env: dict[str, str], cwd: Path, log: Path,
          recorded: Callable[[int], None]) -> int | None:
    """The pid of ``python -m engine COMMAND CONFIG`` forked by the warm worker, or None when no worker is
    ready: the caller then starts the job cold. ``recorded(pid)`` is called before the child moves on (to wait
    for ``ticket``'s turn in the device queue, then run)."""
    path = socket_path()
    if not enabled() or path is None or not path.exists():
        return None
    request = {"ticket": str(ticket), "command": command, "config": str(config), "env": env, "cwd": str(cwd),
               "log": str(log)}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(10)
            conn.connect(str(path))
            conn.sendall(json.dumps(request).encode() + b"\n")
            answer = json.loads(_read_line(conn))
            pid = answer.get("pid")
            if not isinstance(pid, int) or pid <= 0:
                return None
            # The child waits for this before it moves: the caller records its pid (in status.json) first,
            # so the two never write the status at the same moment.
            recorded(pid)
            conn.sendall(b"go\n")
    except (OSError, ValueError):
        return None
    return pid


def _remove_stale_sockets() -> None:
    """Sockets of owners that have gone (a worker killed outright cannot remove its own)."""
    for path in queue_dir().glob("warm-*.sock"):
        try:
            owner = int(path.stem.split("-", 1)[1])
        except ValueError:
            continue
        if not pid_alive(owner):
            path.unlink(missing_ok=True)
            path.with_suffix(".log").unlink(missing_ok=True)


def _read_line(conn: socket.socket, limit: int = 1 << 20) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise ValueError("request too long")
    return data


# -- the worker ------------------------------------------------------------------------------------------
def _valid(request: dict, started_with: dict[str, str]) -> str | None:
    """Why ``request`` is refused, or None."""
    if request.get("command") not in COMMANDS:
        return f"command must be one of {COMMANDS}"
    for key in ("ticket", "config", "cwd", "log"):
        if not isinstance(request.get(key), str) or not Path(request[key]).is_absolute():
            return f"{key} must be an absolute path"
    if Path(request["ticket"]).parent != queue_dir():
        return "the ticket is not in the device queue's folder"
    env = request.get("env")
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        return "env must map names to strings"
    # A value the worker's own imports set (torch: TORCHINDUCTOR_CACHE_DIR) is what the launcher's imports set too.
    changed = sorted(k for k in set(env) | set(started_with) if k.startswith(IMPORT_TIME_PREFIXES)
                     and env.get(k) != started_with.get(k) and env.get(k) != os.environ.get(k))
    if changed:
        return f"the job's environment differs from the worker's in {', '.join(changed)}"
    return None


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[2]


def _child(request: dict, conn: socket.socket, started_with: dict[str, str], ready: int) -> None:
    """In the forked child: become the job. Never returns."""
    code = 1
    try:
        job = [sys.executable, "-m", "engine", request["command"], request["config"]]
        # As a cold start shows it: the queue's wrapper while waiting, then the job (see below).
        _set_title([sys.executable, "-m", "engine.jobs.device_queue", request["ticket"], "--", *job])
        os.setsid()
        os.write(ready, b"1")
        os.close(ready)
        conn.settimeout(30)
        try:
            go = _read_line(conn)
        except (OSError, ValueError):
            go = b""
        conn.close()
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        out = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        os.close(devnull)
        sys.stdout.reconfigure(line_buffering=True, write_through=True)
        sys.stderr.reconfigure(line_buffering=True, write_through=True)
        for key in set(started_with) - set(request["env"]):  # what the imports added themselves stays
            os.environ.pop(key, None)
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.argv = job
        if go != b"go\n":  # the launching process went away before recording this pid: record it here
            ticket = read_ticket(Path(request["ticket"]))
            if ticket is not None:
                ticket.run.write_status(QUEUED, pid=os.getpid())
        turn = wait_for_turn(Path(request["ticket"]))
        if isinstance(turn, Exit):
            code = turn.code
        else:
            _set_title(job)
            from engine.__main__ import main  # noqa: PLC0415 - imported before the fork: no cost here

            code = main([request["command"], request["config"]])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the job's own handler reports its errors; this is a last resort
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _set_title(argv: list[str]) -> None:
    """``ps`` (and psutil) show the job's own command line, as for a cold-started job, not the worker's."""
    try:
        from setproctitle import setproctitle  # noqa: PLC0415 - optional: without it ps shows the worker's title
    except ImportError:
        return
    setproctitle(" ".join(argv))


def serve(owner: int) -> int:
    # Before the imports, which set variables of their own (torch: TORCHINDUCTOR_CACHE_DIR).
    started_with = dict(os.environ)
    t0 = time.monotonic()
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # an optional architecture module; the job imports what it needs
            print(f"warm worker: not preloaded: {name} ({exc})", file=sys.stderr, flush=True)
    print(f"warm worker: libraries imported in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    settle_imports()
    path = socket_path(owner)
    if path is None or os.getppid() != owner:
        print(f"warm worker: not serving ({'socket path too long' if path is None else 'its owner has gone'})",
              file=sys.stderr, flush=True)
        return 0
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forked jobs are reaped by the kernel
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    old_umask = os.umask(0o177)  # the socket is created 0600: only this user may ask for a fork
    try:
        listener.bind(str(tmp))
    finally:
        os.umask(old_umask)
    listener.listen(8)
    os.replace(tmp, path)  # ready only now that it can answer
    listener.settimeout(_OWNER_POLL_S)
    try:
        while os.getppid() == owner:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                _answer(conn, listener, started_with)
    finally:
        listener.close()
        path.unlink(missing_ok=True)
    return 0


def _answer(conn: socket.socket, listener: socket.socket, started_with: dict[str, str]) -> None:
    try:
        conn.settimeout(10)
        if _peer_uid(conn) != os.getuid():
            conn.sendall(b'{"error": "another user"}\n')
            return
        request = json.loads(_read_line(conn))
        why = _valid(request, started_with) if isinstance(request, dict) else "not a JSON object"
        if why:
            conn.sendall(json.dumps({"error": why}).encode() + b"\n")
            return
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            listener.close()
            os.close(ready_r)
            _child(request, conn, started_with, ready_w)
        os.close(ready_w)
        try:  # answered once the child is in its own session, showing its own command line
            os.read(ready_r, 1)
        finally:
            os.close(ready_r)
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    except (OSError, ValueError) as exc:
        print(f"warm worker: request failed: {exc}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "--owner":
        print("usage: python -m engine.jobs.warm_worker --owner PID", file=sys.stderr)
        return 2
    return serve(int(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
