"""The CPU thread governor (engine.core.cpu_threads): the decision, the switch, and the real thing beside real busy
processes, in a training job and in chat."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
import torch

from engine.core import cpu_threads
from engine.core.cpu_threads import THREADS_ENV, ThreadGovernor, fixed_threads, governor_for, threads_for


@pytest.mark.parametrize("others, cpus, most, current, expected", [
    (0.0, 2, 2, 2, 2),
    (0.25, 2, 2, 2, 2),  # a fifth of a core: two spinning threads still win
    (0.35, 2, 2, 2, 1),
    (0.8, 2, 2, 2, 1),
    (0.25, 2, 2, 1, 1),  # between the two shares: the count stays where it is
    (0.15, 2, 2, 1, 2),
    (2.0, 2, 2, 2, 1),  # never below one
    (3.4, 16, 16, 16, 12),
    (2.0, 4, 2, 2, 1),  # two threads on four logical CPUs: two busy CPUs take one thread
    (0.0, 1, 1, 1, 1),
])
def test_threads_for(others, cpus, most, current, expected):
    assert threads_for(others, cpus, most, current) == expected


def test_fixed_count_from_the_environment(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert fixed_threads() is None
    monkeypatch.setenv(THREADS_ENV, "Auto")
    assert fixed_threads() is None
    monkeypatch.setenv(THREADS_ENV, "3")
    assert fixed_threads() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(THREADS_ENV, bad)
        with pytest.raises(ValueError, match=THREADS_ENV):
            fixed_threads()


def test_fixed_count_turns_the_governor_off(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv(THREADS_ENV, "1")
    try:
        governor = ThreadGovernor()
        assert not governor.enabled and governor.adjust() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_only_the_cpu_is_governed():
    assert governor_for("cuda") is None and governor_for("npu:0") is None
    assert isinstance(governor_for("cpu"), ThreadGovernor)


@contextmanager
def busy_neighbours(count: int):
    """``count`` processes that each keep a core busy."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def neighbours_for_one_thread(governor: ThreadGovernor) -> int:
    """How many busy processes take one thread from ``governor`` (one, on a machine with a core per thread)."""
    return math.ceil(len(governor.cpus) / governor.most)


def work_until(governor: ThreadGovernor, wanted: int, seconds: float = 8.0) -> int:
    """Matmuls and looks until ``governor`` chose ``wanted`` threads or ``seconds`` passed; the count it chose."""
    x = torch.randn(256, 256)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and governor.adjust() != wanted:
        for _ in range(20):
            x @ x
    return governor.current


needs_two = pytest.mark.skipif(torch.get_num_threads() < 2 or not os.path.exists("/proc/stat"),
                               reason="needs two torch threads and /proc/stat")


@needs_two
def test_a_busy_neighbour_takes_a_thread_and_gives_it_back():
    before = torch.get_num_threads()
    governor = ThreadGovernor()
    assert governor.enabled
    try:
        with busy_neighbours(neighbours_for_one_thread(governor)):
            assert work_until(governor, governor.most - 1) == governor.most - 1
            assert torch.get_num_threads() == governor.most - 1
        assert work_until(governor, governor.most) == governor.most
        assert torch.get_num_threads() == governor.most and governor.changes >= 2
    finally:
        torch.set_num_threads(before)


def test_each_thread_has_its_own_count():
    """OpenMP's count belongs to the thread that sets it: the governor sets it on the thread that calls adjust."""
    import threading

    before = torch.get_num_threads()
    seen = []
    thread = threading.Thread(target=lambda: (torch.set_num_threads(1), seen.append(torch.get_num_threads())))
    thread.start()
    thread.join()
    assert seen == [1] and torch.get_num_threads() == before


@needs_two
@pytest.mark.slow
def test_a_training_job_gives_up_a_thread_beside_a_busy_process(workdirs, demo_model_dir, tmp_path):
    from bench.harness import run_engine_job, short_train_config

    cfg = short_train_config(8, epochs=1.0)  # 2 steps
    governor = ThreadGovernor()
    with busy_neighbours(neighbours_for_one_thread(governor)):
        run, status, _ = run_engine_job(tmp_path / "run", cfg)
    log = run.log_path.read_text()
    assert status["state"] == "finished"
    assert f"CPU threads: {governor.most - 1} of {governor.most}" in log, log[-2000:]


@needs_two
@pytest.mark.slow
def test_chat_gives_up_a_thread_beside_a_busy_process(demo_model_dir, monkeypatch):
    from engine.core.chat_settings import GenerationSettings
    from engine.serve.chat import ChatEngine

    monkeypatch.setattr(cpu_threads, "WINDOW_S", 0.2)  # a short answer still sees several windows
    eng = ChatEngine()
    eng.load(str(demo_model_dir), device="cpu")
    most = eng._governor.most
    settings = GenerationSettings(max_new_tokens=64, temperature=0.0)
    question = [{"role": "user", "content": "Tell me about the water cycle."}]
    with busy_neighbours(neighbours_for_one_thread(eng._governor)):
        answer = list(eng.stream(question, settings))[-1]
    assert answer and eng._governor.current == most - 1
    assert eng.torch_thread.call(torch.get_num_threads) == most - 1  # set on the thread that decodes
    eng.unload()
