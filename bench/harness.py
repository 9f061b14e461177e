"""The real app in a subprocess and short real runs: shared by the benchmarks and the tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Until ``url`` answers 200; fails at once if ``proc`` (the server) has exited."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f} s")


class AppProcess:
    """``python app.py --port PORT [args]`` in its own session, output to ``log``."""

    def __init__(self, port: int, env: dict, args: list[str] | None = None, log: Path | None = None):
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self.log = log or ROOT / "test-artifacts" / f"app-{port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.log, "wb")  # noqa: SIM115 - the app writes to it until stop() closes it
        self.proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), *(args or [])], cwd=ROOT,
                                     env=env, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 180) -> None:
        wait_http(self.url, timeout, self.proc)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._fh.close()


def machine_cpu_seconds() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]
    return (sum(values) - idle) / hz, sum(values) / hz


def temporary_folders(prefix: str) -> Path:
    """A new temporary folder holding saves/, configs/ and exports/, which this process and its jobs then use."""
    import tempfile

    work = Path(tempfile.mkdtemp(prefix=prefix))
    for name in ("saves", "configs", "exports"):
        (work / name).mkdir()
        os.environ[f"TUNEBOARD_{name.upper()}"] = str(work / name)
    return work


def stop_runs(saves: Path) -> None:
    """Training processes are detached from the app by design: end any that a failed test or an interrupted
    benchmark left behind."""
    for status in saves.rglob("status.json"):
        try:
            pid = json.loads(status.read_text()).get("pid")
            if pid:
                os.killpg(os.getpgid(int(pid)), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def short_train_config(samples: int, epochs: float = 1.0, cutoff_len: int = 128, logging_steps: int = 1,
                       save_steps: int = 100_000, probe_questions: str = "", **train):
    """A real LoRA run on the demo model over ``samples`` identity samples, batch 4; ``train`` overrides
    TrainArgs fields. No probe questions unless given: they are measured and tested on their own."""
    from engine.core.config import RunConfig

    cfg = RunConfig()
    cfg.data.datasets, cfg.data.max_samples, cfg.data.cutoff_len = ["identity"], samples, cutoff_len
    cfg.data.identity_name, cfg.data.identity_author = "Nimbus", "Acme Lab"
    cfg.train.learning_rate, cfg.train.num_train_epochs = 5e-4, epochs
    cfg.train.per_device_train_batch_size, cfg.train.gradient_accumulation_steps = 4, 1
    cfg.train.logging_steps, cfg.train.save_steps = logging_steps, save_steps
    cfg.train.probe_questions = probe_questions
    for key, value in train.items():
        setattr(cfg.train, key, value)
    cfg.validate()
    return cfg


def run_measured(argv: list[str], log_path: Path, env: dict | None = None, cwd: Path = ROOT) -> tuple[int, float]:
    """Run ``argv`` to its end, its output into ``log_path``: (exit code, the process's peak resident memory in
    MB, wait4's ru_maxrss)."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                env=dict(env if env is not None else os.environ, PYTHONUNBUFFERED="1"))
        _, code, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(code)
    return proc.returncode, usage.ru_maxrss / 1024


def run_engine_job(run_dir: Path, cfg, command: str = "train"):
    """Run ``cfg`` in ``run_dir`` with the command and environment Start uses (engine.jobs.launch.job_command):
    (the RunDir, its final status, the process's peak resident memory in MB)."""
    from engine.core.rundir import RunDir
    from engine.jobs.launch import job_command

    run = RunDir(run_dir)
    run.path.mkdir(parents=True)
    getattr(cfg, command).output_dir = str(run.path)
    cfg.save(run.config_path, command)
    argv, extra = job_command(cfg, run.config_path, command)
    code, peak_mb = run_measured(argv, run.log_path, dict(os.environ, **extra))
    status = run.read_status()
    if code or status.get("state") != "finished":
        raise RuntimeError(f"{command} job failed: {status.get('error')}\n{run.log_tail(30)}")
    return run, status, peak_mb


def write_results(path: Path, result: dict) -> None:
    """A benchmark's figures as JSON at ``path`` (its folder made), said on the console."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten: {path}")
