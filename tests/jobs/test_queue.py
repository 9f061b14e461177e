"""The device queue and durable runs: one job on the device at a time, in order, without the web process;
cancelling, killed processes, two Starts at once, Stop twice, and a full disk during a checkpoint."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from engine.core.checkpoints import list_checkpoints
from engine.core.paths import PROJECT_ROOT
from engine.core.rundir import FAILED, FINISHED, QUEUED, RUNNING, STOPPED, RunDir
from engine.jobs import device_queue
from tests.helpers.runs import tiny_train_config, wait_for_state
from webui import runner
from webui.run_monitor import launch_checked

pytestmark = pytest.mark.slow
MODEL = "SmolLM2-135M-Instruct"


def _short(**train):
    """Two optimizer steps: enough to hold the device for a few seconds."""
    cfg = tiny_train_config(**train)
    cfg.data.max_samples = 8
    cfg.validate()
    return cfg


def _run(name: str) -> RunDir:
    return runner.run_dir_for(MODEL, "lora", name)


def _processes_of(run: RunDir) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if str(run.config_path) in (proc.info["cmdline"] or []) and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_second_start_waits_in_line_and_can_be_cancelled(workdirs, demo_model_dir):
    first, second, third = _run("q-first"), _run("q-second"), _run("q-third")
    runner.launch(first, _short(num_train_epochs=3.0))
    for run in (second, third):
        runner.launch(run, _short())
    wait_for_state(first, 120, (RUNNING,))
    assert device_queue.current() == first
    assert [runner.snapshot(r).queue_position for r in (first, second, third)] == [0, 1, 2]
    assert device_queue.current() == first  # reading the queue leaves the record of the running job alone
    assert second.read_status()["state"] == QUEUED
    assert [p.cmdline()[2] for p in _processes_of(second)] == ["engine.jobs.device_queue"]  # waiting, not loading

    runner.stop(third)  # cancel: it never starts
    status = wait_for_state(third, 30)
    assert status["state"] == STOPPED and status["cancelled"] is True and status.get("started_at") is None
    assert "Removed from the queue" in third.log_tail()
    assert runner.snapshot(second).queue_position == 1

    done_first = wait_for_state(first, 300)
    done_second = wait_for_state(second, 300)
    assert done_first["state"] == done_second["state"] == FINISHED, second.log_tail(40)
    # One job on the device at a time: the second started only once the first had finished.
    assert done_second["started_at"] >= done_first["finished_at"]
    assert device_queue.waiting() == []
    assert device_queue.current() is None


def test_the_queue_moves_on_without_the_app(workdirs, demo_model_dir):
    """The web process that queued the jobs exits at once (an app restart); the jobs still run in order."""
    names = ["detached-a", "detached-b"]
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(PROJECT_ROOT)!r})
        from tests.jobs.test_queue import _run, _short
        from webui import runner
        for name in {names!r}:
            runner.launch(_run(name), _short())
    """)
    subprocess.run([sys.executable, "-c", script], check=True, env=os.environ, timeout=120)
    a, b = (_run(n) for n in names)
    assert b.read_status()["state"] == QUEUED
    done_a, done_b = wait_for_state(a, 300), wait_for_state(b, 300)
    assert done_a["state"] == done_b["state"] == FINISHED
    assert done_b["started_at"] >= done_a["finished_at"]


def test_killed_jobs_fail_with_their_log_and_leave_nothing_behind(workdirs, demo_model_dir):
    running, waiting = _run("kill-running"), _run("kill-waiting")
    runner.launch(running, _short(num_train_epochs=20.0))
    runner.launch(waiting, _short())
    wait_for_state(running, 120, (RUNNING,))
    os.kill(waiting.read_status()["pid"], signal.SIGKILL)  # the queued job dies while it waits
    status = wait_for_state(waiting, 30)
    assert status["state"] == FAILED and "queued job exited unexpectedly" in status["error"]
    assert "Waiting for the device" in status["error"]  # the last lines of its log
    assert runner.snapshot(running).state == RUNNING

    os.kill(running.read_status()["pid"], signal.SIGKILL)
    status = wait_for_state(running, 30)
    assert status["state"] == FAILED and "training process exited unexpectedly" in status["error"]
    runner.reap()
    # The kernel drops the lock as the killed process finishes exiting, which on a loaded machine can come a
    # moment after its command line is gone (the memory is torn down before the files are closed).
    deadline = time.time() + 10
    while (_processes_of(running) or device_queue.device_busy()) and time.time() < deadline:
        time.sleep(0.2)
    assert _processes_of(running) == []
    assert not device_queue.device_busy(), _lock_holders()  # the lock died with the job


def _lock_holders() -> list[str]:
    """Who holds the device lock, from /proc/locks: for the failure message."""
    inode = os.stat(device_queue.lock_path()).st_ino
    holders = []
    with open("/proc/locks", encoding="ascii") as locks:
        for line in locks:
            fields = line.split()
            if len(fields) > 5 and fields[5].endswith(f":{inode}"):
                try:
                    holders.append(f"{fields[4]}: {' '.join(psutil.Process(int(fields[4])).cmdline())}")
                except (psutil.Error, ValueError):
                    holders.append(fields[4])
    return holders


def test_two_starts_at_the_same_moment_take_one_folder(workdirs, demo_model_dir):
    run = _run("twin")
    barrier = threading.Barrier(2)
    results: list[str | None] = []

    def start():
        barrier.wait()
        results.append(launch_checked("en", run, _short(), "train"))

    threads = [threading.Thread(target=start) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    refusals = [r for r in results if r]
    assert len(refusals) == 1 and "still queued or running" in refusals[0], results
    runner.stop(run)
    assert wait_for_state(run, 120)["state"] == STOPPED
    assert device_queue.waiting() == []  # no second job was queued for it
    assert run.log_tail(200).count("stage sft") <= 1


def test_stop_pressed_twice_saves_once(workdirs, demo_model_dir):
    run = _run("stop-twice")
    runner.launch(run, _short(num_train_epochs=20.0, save_steps=1))
    deadline = time.time() + 180
    while runner.snapshot(run).step < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert runner.stop(run) and runner.stop(run)  # the second press lands while it saves and stops
    status = wait_for_state(run, 120)
    assert status["state"] == STOPPED and status["error"] is None, run.log_tail(40)
    assert run.has_final_weights()
    assert all(c.complete for c in list_checkpoints(run.path)[:-1])
    assert "Traceback" not in run.log_tail(200)


def _limit_file_size(limit: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-big write fails with EFBIG instead of killing
    return apply


def test_full_disk_during_a_checkpoint_keeps_what_was_saved(workdirs, demo_model_dir):
    """A resumed run whose next checkpoint cannot be written (the disk 'fills'): it fails naming the
    problem, and the run's earlier checkpoint, events and config stay intact and resumable."""
    run = _run("disk-full")
    cfg = _short(save_steps=1)
    cfg.data.max_samples, cfg.train.num_train_epochs = 8, 1.0
    runner.launch(run, cfg)
    assert wait_for_state(run, 300)["state"] == FINISHED
    saved = {p.name: p.read_bytes() for p in (run.path / "checkpoint-2").iterdir() if p.is_file()}

    cfg.train.num_train_epochs, cfg.train.resume = 2.0, True
    cfg.train.output_dir = str(run.path)
    cfg.save(run.config_path, "train")
    limit = len(saved["adapter_model.safetensors"]) // 2  # the next checkpoint's weights cannot be written
    proc = subprocess.run([sys.executable, "-m", "engine", "train", str(run.config_path)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size(limit))
    assert proc.returncode == 1
    status = run.read_status()
    assert status["state"] == FAILED
    assert "could not write" in status["error"] and "checkpoint-3" in status["error"], status["error"]
    assert {p.name: p.read_bytes() for p in (run.path / "checkpoint-2").iterdir() if p.is_file()} == saved
    complete = [c.path.name for c in list_checkpoints(run.path) if c.complete]
    assert complete == ["checkpoint-1", "checkpoint-2"]
    assert [e["step"] for e in run.read_events()][-1] >= 2
