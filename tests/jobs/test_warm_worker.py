"""The warm worker: jobs forked from a process with the libraries imported train exactly as cold-started ones,
live on without their launcher, stop and die like them, and anything else is started cold or refused."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from engine.core.paths import PROJECT_ROOT
from engine.core.rundir import FAILED, FINISHED, RUNNING, STOPPED, RunDir
from engine.jobs import warm_worker
from tests.helpers.runs import pin_cpu_threads, tiny_train_config, wait_for_state
from webui import runner

pytestmark = pytest.mark.slow
MODEL = "SmolLM2-135M-Instruct"


def _run(name: str) -> RunDir:
    return runner.run_dir_for(MODEL, "lora", name)


def _worker_ready(timeout: float = 180) -> None:
    """A worker started now, with this process's environment as it is: one that an earlier test of the session
    started under other variables would (rightly) refuse these tests' jobs, which would then start cold."""
    old = warm_worker._started
    if old is not None and old.poll() is None:
        old.terminate()
        old.wait(30)
        path = warm_worker.socket_path()
        if path is not None:
            path.unlink(missing_ok=True)
    warm_worker._started = None
    warm_worker.start()
    path = warm_worker.socket_path()
    deadline = time.time() + timeout
    while not path.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert path.exists(), f"no warm worker socket after {timeout} s: {path}"


def _final_loss(run: RunDir) -> float:
    return run.read_status()["metrics"]["train_loss"]


def test_a_forked_run_trains_exactly_as_a_cold_one(workdirs, demo_model_dir, monkeypatch):
    pin_cpu_threads(monkeypatch)  # before the worker starts: it and the cold job inherit the same count
    monkeypatch.setenv(warm_worker.ENV_SWITCH, "0")
    cold = runner.launch(_run("cold-twin"), tiny_train_config())
    assert wait_for_state(cold, 300)["state"] == FINISHED
    assert cold.read_status()["warm"] is False
    monkeypatch.delenv(warm_worker.ENV_SWITCH)

    _worker_ready()
    warm = runner.launch(_run("warm-twin"), tiny_train_config())
    status = warm.read_status()
    assert status["warm"] is True
    proc = psutil.Process(status["pid"])
    assert proc.ppid() != os.getpid()  # the worker's child, in a session of its own
    assert os.getsid(proc.pid) == proc.pid
    assert str(warm.config_path) in proc.cmdline()  # ps shows the job, not the worker
    wait_for_state(warm, 120, (RUNNING,))
    deadline = time.time() + 10
    while proc.cmdline()[2] != "engine" and time.time() < deadline:  # the queue's wrapper, until its turn came
        time.sleep(0.1)
    assert proc.cmdline()[1:4] == ["-m", "engine", "train"]
    assert wait_for_state(warm, 300)["state"] == FINISHED, warm.log_tail(40)
    # Same seed, data and code in a fresh process and in a fork: the same numbers.
    assert _final_loss(warm) == pytest.approx(_final_loss(cold), rel=1e-6)
    assert [e["loss"] for e in warm.read_events() if "loss" in e] == \
        pytest.approx([e["loss"] for e in cold.read_events() if "loss" in e], rel=1e-6)
    assert "Traceback" not in warm.log_tail(200)


def test_forked_runs_stop_and_die_like_cold_ones(workdirs, demo_model_dir):
    _worker_ready()
    stopped, killed = _run("warm-stop"), _run("warm-kill")
    runner.launch(stopped, tiny_train_config(num_train_epochs=20.0))
    runner.launch(killed, tiny_train_config())
    assert stopped.read_status()["warm"] and killed.read_status()["warm"]
    deadline = time.time() + 180
    while runner.snapshot(stopped).step < 1 and time.time() < deadline:  # training, not still loading
        time.sleep(0.2)
    assert runner.stop(stopped)
    status = wait_for_state(stopped, 120)
    assert status["state"] == STOPPED and stopped.has_final_weights(), stopped.log_tail(40)

    wait_for_state(killed, 120, (RUNNING,))
    pid = killed.read_status()["pid"]
    os.kill(pid, signal.SIGKILL)
    status = wait_for_state(killed, 30)
    assert status["state"] == FAILED and "exited unexpectedly" in status["error"]
    deadline = time.time() + 10
    while psutil.pid_exists(pid) and time.time() < deadline:  # reaped by the worker: no zombie left
        time.sleep(0.2)
    assert not psutil.pid_exists(pid)


def test_a_forked_run_outlives_its_launcher_and_the_worker_follows_its_owner(workdirs, demo_model_dir):
    """A launcher (an app) starts its worker, launches a run through it, and exits: the run finishes;
    the worker, whose owner has gone, exits and removes its socket."""
    name = "warm-orphan"
    script = textwrap.dedent(f"""
        import json, sys, time; sys.path.insert(0, {str(PROJECT_ROOT)!r})
        from engine.jobs import warm_worker
        from tests.helpers.runs import tiny_train_config
        from tests.jobs.test_warm_worker import _run, _worker_ready
        from webui import runner
        _worker_ready()
        run = runner.launch(_run({name!r}), tiny_train_config())
        print(json.dumps({{"socket": str(warm_worker.socket_path()), "warm": run.read_status()["warm"]}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], check=True, env=os.environ, timeout=300,
                         capture_output=True, text=True)
    launched = json.loads(out.stdout.strip().splitlines()[-1])
    assert launched["warm"] is True
    run = _run(name)
    assert wait_for_state(run, 300)["state"] == FINISHED, run.log_tail(40)
    deadline = time.time() + 15
    while os.path.exists(launched["socket"]) and time.time() < deadline:
        time.sleep(0.2)
    assert not os.path.exists(launched["socket"])


def _ask(request: dict) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(10)
        conn.connect(str(warm_worker.socket_path()))
        conn.sendall(json.dumps(request).encode() + b"\n")
        return json.loads(conn.recv(65536))


def test_the_worker_forks_engine_jobs_only_and_with_its_own_environment(workdirs, demo_model_dir, monkeypatch):
    _worker_ready()
    path = warm_worker.socket_path()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    base = {"ticket": str(path.parent / "x.ticket"), "command": "train", "config": "/tmp/run.yaml",
            "env": dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false"),
            "cwd": str(PROJECT_ROOT), "log": "/tmp/x.log"}
    assert "command must be one of" in _ask({**base, "command": "sh"})["error"]
    assert "absolute path" in _ask({**base, "config": "run.yaml"})["error"]
    assert "device queue" in _ask({**base, "ticket": "/tmp/x.ticket"})["error"]
    assert "HF_HOME" in _ask({**base, "env": {**base["env"], "HF_HOME": "/elsewhere"}})["error"]
    # A launch whose environment differs where libraries read it at import starts cold, and still runs.
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1" if os.environ.get("HF_HUB_DISABLE_TELEMETRY") != "1" else "0")
    run = runner.launch(_run("warm-env"), tiny_train_config())
    assert run.read_status()["warm"] is False
    assert wait_for_state(run, 300)["state"] == FINISHED
