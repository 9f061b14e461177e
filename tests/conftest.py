"""Shared fixtures: isolated saves/configs folders, the real app in a subprocess, and Chromium."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests import tests.helpers, bench and the app's own packages
    sys.path.insert(0, str(ROOT))

from bench.harness import AppProcess, free_port, stop_runs  # noqa: E402
from tests.helpers.runs import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS  # noqa: E402


@pytest.fixture(scope="session")
def workdirs(tmp_path_factory) :
    """Fresh saves/, configs/, exports/ and workspaces/ (the logins' own) for the session, so tests never touch a
    user's files."""
    base = tmp_path_factory.mktemp("tuneboard")
    dirs = {"saves": base / "saves", "configs": base / "configs", "exports": base / "exports",
            "workspaces": base / "workspaces"}
    for name, d in dirs.items():
        d.mkdir()
        os.environ[f"TUNEBOARD_{name.upper()}"] = str(d)
    yield dirs
    # Runs are detached by design: none may outlive the session (a failed test's), a login's neither.
    for saves in [dirs["saves"], *dirs["workspaces"].glob("*/saves")]:
        stop_runs(saves)


@pytest.fixture(scope="session", autouse=True)
def tmp_data_root(tmp_path_factory) -> Path:
    """pytest's temporary folder is a data root (engine.core.paths.data_roots), so tests may keep data folders in
    tmp_path; a test of the confinement sets its own roots."""
    base = tmp_path_factory.getbasetemp()
    os.environ["TUNEBOARD_DATA_ROOTS"] = str(base)
    return base


@pytest.fixture(scope="session")
def demo_model_dir() -> Path:
    """The converted demo model (converted once per machine, ~1 minute the first time)."""
    from engine.core.demo_model import ensure_demo_model

    return ensure_demo_model()


@pytest.fixture(scope="session")
def fake_hf_hub(demo_model_dir):
    """A local Hugging Face Hub (tests/helpers/fake_hubs.py) serving the demo model as DEMO_REPO_ID and, gated,
    GATED_REPO_ID. Session-wide: a test that changes its options or reads its request log calls .reset()."""
    from tests.helpers.fake_hubs import DEMO_REPO_ID, GATED_REPO_ID, FakeHFHub

    with FakeHFHub({DEMO_REPO_ID: demo_model_dir, GATED_REPO_ID: demo_model_dir}, gated=[GATED_REPO_ID]) as hub:
        yield hub


@pytest.fixture(scope="session")
def fake_modelscope_hub(demo_model_dir, tmp_path_factory):
    """The same for ModelScope, over HTTPS with a test CA (hub.ca_bundle)."""
    from tests.helpers.fake_hubs import DEMO_REPO_ID, GATED_REPO_ID, FakeModelScopeHub

    with FakeModelScopeHub({DEMO_REPO_ID: demo_model_dir, GATED_REPO_ID: demo_model_dir}, gated=[GATED_REPO_ID],
                           tls_dir=tmp_path_factory.mktemp("fake-modelscope-tls")) as hub:
        yield hub


@pytest.fixture
def fake_hub_env(tmp_path, fake_hf_hub, fake_modelscope_hub):
    """A full environment for a subprocess (the app, a job, a client) that downloads from both fake hubs into
    fresh caches under tmp_path/"hubs" (HF_ENDPOINT, HF_HOME, MODELSCOPE_DOMAIN, MODELSCOPE_CACHE,
    REQUESTS_CA_BUNDLE...), with no token; the hubs' options and logs are reset first, the caches (a 538 MB model
    each) deleted after the test."""
    from tests.helpers.fake_hubs import hub_client_env

    fake_hf_hub.reset()
    fake_modelscope_hub.reset()
    yield hub_client_env(tmp_path / "hubs", fake_hf_hub, fake_modelscope_hub)
    shutil.rmtree(tmp_path / "hubs", ignore_errors=True)


@pytest.fixture(scope="session")
def app_server(workdirs, demo_model_dir):
    """The real app on a free port, with this session's saves/ and configs/."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    app = AppProcess(free_port(), env)
    try:
        app.wait_ready(120)
        yield app
    finally:
        app.stop()
        stop_runs(workdirs["saves"])


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


