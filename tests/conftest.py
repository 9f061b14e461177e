"""Shared fixtures: isolated saves/configs folders, the real app in a subprocess, and Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def workdirs(tmp_path_factory) -> dict[str, Path]:
    """Fresh saves/, configs/ and exports/ for the session, so tests never touch a user's files."""
    base = tmp_path_factory.mktemp("tuneboard")
    dirs = {"saves": base / "saves", "configs": base / "configs", "exports": base / "exports"}
    for name, d in dirs.items():
        d.mkdir()
        os.environ[f"TUNEBOARD_{name.upper()}"] = str(d)
    return dirs


@pytest.fixture(scope="session")
def demo_model_dir() -> Path:
    """The converted demo model (converted once per machine, ~1 minute the first time)."""
    from engine.demo_model import ensure_demo_model

    return ensure_demo_model()


def tiny_train_config(**train):
    """A real but short LoRA run on the demo model: 24 identity samples, one epoch, six steps."""
    from engine.config import RunConfig

    cfg = RunConfig()
    cfg.data.datasets, cfg.data.max_samples, cfg.data.cutoff_len = ["identity"], 24, 128
    cfg.data.identity_name, cfg.data.identity_author = "Nimbus", "Acme Lab"
    cfg.train.learning_rate, cfg.train.num_train_epochs = 5e-4, 1.0
    cfg.train.per_device_train_batch_size, cfg.train.gradient_accumulation_steps = 4, 1
    cfg.train.logging_steps, cfg.train.save_steps = 2, 4
    for key, value in train.items():
        setattr(cfg.train, key, value)
    cfg.validate()
    return cfg


def wait_for_state(run, timeout: float, states: tuple = ("finished", "failed", "stopped")) -> dict:
    """Poll a run directory until its live status is one of ``states``; fail with the log tail otherwise."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = run.live_status()
        if status.get("state") in states:
            return status
        time.sleep(0.3)
    raise AssertionError(f"{run.path} did not reach {states} in {timeout} s; log:\n{run.log_tail(40)}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f} s")


class AppProcess:
    def __init__(self, port: int, env: dict, args: list[str] | None = None, log: Path | None = None):
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self.log = log or ARTIFACTS / f"app-{port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.log, "wb")
        self.proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), *(args or [])], cwd=ROOT,
                                     env=env, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._fh.close()


@pytest.fixture(scope="session")
def app_server(workdirs, demo_model_dir):
    """The real app on a free port, with this session's saves/ and configs/."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    app = AppProcess(free_port(), env)
    try:
        wait_http(app.url, 120)
        yield app
    finally:
        app.stop()
        _stop_runs(workdirs["saves"])


def _stop_runs(saves: Path) -> None:
    """Training processes are detached from the app by design; end any a failed test left behind."""
    import json

    for status in saves.rglob("status.json"):
        try:
            pid = json.loads(status.read_text()).get("pid")
            if pid:
                os.killpg(os.getpgid(int(pid)), signal.SIGKILL)
        except (OSError, ValueError, ProcessLookupError):
            pass


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/install.sh --test`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1200})
    pg = context.new_page()
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        pg.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def copy_artifact(src: Path, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(src, ARTIFACTS / name)
