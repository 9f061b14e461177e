"""What many tests share besides fixtures: the project's folders, Chromium's command line, short training configs,
and waiting for a run to end."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import short_train_config

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def tiny_train_config(**train):
    """A real but short LoRA run on the demo model: 24 identity samples, one epoch, six steps."""
    return short_train_config(24, **{"logging_steps": 2, "save_steps": 4, **train})


def pin_cpu_threads(monkeypatch) -> None:
    """Jobs started after this run on torch's default thread count, ungoverned (engine.core.cpu_threads): for
    tests that compare two runs number for number. bf16 matmuls round differently on another thread count (one
    bf16 ulp in a q projection here), and the governor changes the count mid-run when another process wants a
    core."""
    import torch

    from engine.core.cpu_threads import THREADS_ENV

    monkeypatch.setenv(THREADS_ENV, str(torch.get_num_threads()))


def wait_for_state(run, timeout: float, states: tuple = ("finished", "failed", "stopped")) -> dict:
    """Poll a run directory until its live status is one of ``states``; fail with the log tail otherwise."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = run.live_status()
        if status.get("state") in states:
            return status
        time.sleep(0.3)
    raise AssertionError(f"{run.path} did not reach {states} in {timeout} s; log:\n{run.log_tail(40)}")


def run_cold_job(cfg, folder: Path, command: str = "train", timeout: float = 300):
    """Run ``command`` on ``cfg`` in a new run folder ``folder`` as its own process (Start without the warm worker)
    until it ends: (the RunDir, its final status)."""
    from engine.core.rundir import RunDir

    run = RunDir(folder)
    run.path.mkdir()
    cfg.save(run.config_path, command)
    with open(run.log_path, "wb") as log:
        subprocess.run([sys.executable, "-m", "engine", command, str(run.config_path)], cwd=ROOT, stdout=log,
                       stderr=subprocess.STDOUT, timeout=timeout, check=False)
    return run, wait_for_state(run, 10)


def copy_artifact(src: Path, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(src, ARTIFACTS / name)
