"""TuneBoard behind real nginx at a notebook-style path prefix, in Chromium: page and assets load,
chat streams, training shows its live loss curve, and an app restart in the middle of training loses
nothing: the page re-attaches to the run (progress, the whole curve, the log), in every browser."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from bench.harness import AppProcess, free_port, wait_http
from engine.core.rundir import RUNNING, RunDir, pid_alive
from tests.helpers.runs import ARTIFACTS
from webui import runner

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PREFIX = "/user/alice/proxy/7860"
NGINX = "/usr/sbin/nginx"

# The README's nginx settings, verbatim between the markers, so what is documented is what is tested.
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_location_block() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"```nginx\n(.*?)```", text, re.S)
    assert match, "README.md has no ```nginx block"
    return match.group(1)


def nginx_config(folder: Path, listen: int, app_port: int) -> str:
    location = readme_location_block().replace("127.0.0.1:7860", f"127.0.0.1:{app_port}")
    temp = "".join(f"  {kind}_temp_path {folder / kind};\n" for kind in
                   ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # One process, in the foreground, every file in ``folder``: no root-owned paths needed.
    return (f"daemon off;\nmaster_process off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\n"
            f"error_log {folder / 'error.log'} info;\nevents {{ worker_connections 256; }}\n"
            f"http {{\n  access_log {folder / 'access.log'};\n{temp}"
            f"  server {{\n    listen 127.0.0.1:{listen};\n{location}  }}\n}}\n")


@pytest.fixture
def proxied(tmp_path, workdirs, demo_model_dir):
    if not Path(NGINX).exists():
        pytest.fail(f"{NGINX} is missing: run `bash scripts/install.sh --test`")
    app_port, proxy_port = free_port(), free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_config(tmp_path, proxy_port, app_port), encoding="utf-8")
    nginx = subprocess.Popen([NGINX, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    args = ["--root-path", PREFIX]
    state = {"app": AppProcess(app_port, env, args, log=ARTIFACTS / "app-proxied.log")}
    url = f"http://127.0.0.1:{proxy_port}{PREFIX}/"

    def restart():
        state["app"].stop()
        state["app"] = AppProcess(app_port, env, args, log=ARTIFACTS / "app-proxied-restarted.log")
        wait_http(url, 120)

    try:
        wait_http(url, 120)
        yield url, restart, tmp_path
    finally:
        state["app"].stop()
        nginx.terminate()
        nginx.wait(10)


def _button(page, name: str):
    return page.get_by_role("button", name=name, exact=True)


def _plot_points(page) -> int:
    return page.evaluate("(document.querySelector('#train-loss-plot .js-plotly-plot')?.data || [{y: []}])[0]"
                         ".y.length")


def _wait_reattached(page, url: str) -> None:
    page.goto(url)
    page.locator("#train-progress [role=progressbar]").wait_for(timeout=90_000)
    page.wait_for_function(
        "document.querySelectorAll('#train-loss-plot .scatterlayer .trace path.js-line').length >= 1",
        timeout=90_000)


def test_workflow_through_nginx_survives_an_app_restart(proxied, browser):
    url, restart, nginx_dir = proxied
    context = browser.new_context(viewport={"width": 1400, "height": 1200})
    page = context.new_page()
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    # The client closes each finished event stream itself (net::ERR_ABORTED); anything else is a failure.
    page.on("requestfailed", lambda r: failed.append(f"{r.failure} {r.url}")
            if "ERR_ABORTED" not in (r.failure or "") else None)

    page.goto(url)
    page.get_by_label("Language").wait_for(timeout=60_000)
    assert page.url.startswith(url)

    # Chat streams through the proxy: the answer is seen growing, not only complete.
    page.get_by_role("tab", name="Chat", exact=True).click()
    _button(page, "Load model").click()
    page.wait_for_function("(document.querySelector('#chat-status')?.innerText || '').match(/cpu/)",
                           timeout=180_000)
    page.get_by_label("Input", exact=True).fill("Who are you?")
    _button(page, "Submit").click()
    bot = page.locator("#chat-box [data-testid='bot']").last
    bot.wait_for(state="attached", timeout=60_000)
    seen: list[str] = []
    deadline, stable_since = time.time() + 120, time.time()
    while time.time() < deadline:
        text = bot.inner_text().strip()
        if text and (not seen or text != seen[-1]):
            seen.append(text)
            stable_since = time.time()
        elif seen and time.time() - stable_since > 4:
            break
        time.sleep(0.1)
    assert len(seen) >= 3 and len(seen[-1]) > len(seen[0]), seen  # partial answers arrived one by one
    _button(page, "Unload model").click()

    # Train: a short run; the live loss curve is drawn through the proxy.
    page.get_by_role("tab", name="Train", exact=True).click()
    page.get_by_label("Max samples", exact=True).fill("48")
    page.get_by_label("Epochs", exact=True).fill("2")
    page.get_by_label("Output dir", exact=True).fill("proxied-run")
    _button(page, "Start").click()
    _wait_reattached_in_place(page)
    assert failed == [], failed
    page.screenshot(path=str(ARTIFACTS / "proxy-training.png"), full_page=True)

    # A second browser watches the same run.
    other = context.browser.new_context(viewport={"width": 1400, "height": 1200}).new_page()
    _wait_reattached(other, url)

    # Restart the app in the middle of training: the run goes on, and both pages re-attach.
    run = next(r for r in runner.active_runs() if r.name == "proxied-run")
    before = len(run.read_events())
    restart()
    status = run.read_status()
    assert status["state"] == RUNNING and pid_alive(status["pid"]), status
    for pg in (page, other):
        _wait_reattached(pg, url)
        assert _plot_points(pg) >= before  # the whole curve so far, not just what came after the restart
    # Requests the old pages made while the app was down failed (502, cut streams); from the reload on,
    # nothing may fail. (Playwright reports events late, so clear only once the reload is done.)
    page.wait_for_timeout(3000)
    failed.clear()
    assert "Step " in page.locator("#train-log textarea").input_value()  # the log's step lines, in words
    assert "proxied-run" in page.locator("#queue-table").inner_text()
    page.screenshot(path=str(ARTIFACTS / "proxy-reattached.png"), full_page=True)

    for pg in (page, other):
        pg.wait_for_function("(document.querySelector('#train-status')?.innerText || '').includes("
                             "'Training finished')", timeout=600_000)
    final = RunDir(run.path).read_events()
    assert _plot_points(page) == _plot_points(other) == len([e for e in final if "loss" in e])
    assert failed == [], failed
    access = (nginx_dir / "access.log").read_text(encoding="utf-8")
    assert f"GET {PREFIX}/" in access  # it really went through nginx
    context.close()


def _wait_reattached_in_place(page) -> None:
    page.locator("#train-progress [role=progressbar]").wait_for(timeout=120_000)
    page.wait_for_function(
        "document.querySelectorAll('#train-loss-plot .scatterlayer .trace path.js-line').length >= 1",
        timeout=300_000)
