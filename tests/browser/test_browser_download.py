"""Models from the hubs in a real browser: Load model and Start on a hub id download the model first and show it
(file, bytes done of total, rate, time left), in English and in Chinese; a second Load press joins the download;
failures are one sentence in the user's language. The real huggingface_hub / modelscope clients download from the
fake hubs (tests/helpers/fake_hubs.py), which serve the demo model."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from bench.harness import AppProcess, free_port
from tests.helpers.fake_hubs import DEMO_REPO_ID, GATED_REPO_ID, hub_client_env
from tests.helpers.runs import ARTIFACTS
from tests.helpers.ui import fill_until_held

pytestmark = [pytest.mark.slow, pytest.mark.browser]

WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module")
def hub_app(workdirs, demo_model_dir, fake_hf_hub, fake_modelscope_hub, tmp_path_factory):
    """The app with both fake hubs as its hubs, fresh hub caches and a fresh TuneBoard home (nothing downloaded)."""
    root = tmp_path_factory.mktemp("hub-app")
    env = hub_client_env(root / "caches", fake_hf_hub, fake_modelscope_hub)
    env.update(PYTHONUNBUFFERED="1", TUNEBOARD_HOME=str(root / "home"))
    for name in ("USE_MODELSCOPE_HUB", "USE_OPENMIND_HUB"):
        env.pop(name, None)
    (root / "home").mkdir()
    (root / "home" / "models").symlink_to(demo_model_dir.parent)  # the demo stays converted
    app = AppProcess(free_port(), env, log=ARTIFACTS / "app-download.log")
    try:
        app.wait_ready(120)
        yield app
    finally:
        app.stop()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"download-{name}.png"), full_page=True)


def _choose(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def _open(page, app, lang: str, tab: str, hub_label: str, hub: str, path: str) -> None:
    """The app in ``lang`` on ``tab``, with ``hub`` chosen and ``path`` as the model path (the hub first: choosing
    it sets a catalogue model's path)."""
    page.goto(app.url)
    page.get_by_label("Language").wait_for(timeout=60_000)
    if lang == "zh":
        _choose(page, "Language", "中文")
    page.get_by_role("tab", name=tab, exact=True).click()
    _choose(page, hub_label, hub)
    field = page.get_by_label("Model path" if lang == "en" else "模型路径", exact=True)
    fill_until_held(field, path)  # choosing the hub set the path of the model named above: type over it


def _status_text(page, selector: str) -> str:
    return page.locator(selector).inner_text()


def _wait_text(page, selector: str, pattern: str, timeout: float) -> None:
    page.wait_for_function("([sel, pat]) => (document.querySelector(sel)?.innerText || '').match(new RegExp(pat))",
                           arg=[selector, pattern], timeout=timeout)


def test_unload_stops_a_download_under_way(hub_app, page, fake_hf_hub):
    """Unload model while Load downloads stops the download (at its next chunk) and says so; the model is not loaded.
    (First in the module: the next test downloads the same model in full.)"""
    fake_hf_hub.reset()
    fake_hf_hub.throttle_bps = 20e6  # the weights would take about 27 s
    try:
        _open(page, hub_app, "en", "Chat", "Model hub", "Hugging Face", DEMO_REPO_ID)
        page.get_by_role("button", name="Load model", exact=True).click()
        _wait_text(page, "#chat-status", f"Downloading .* {WEIGHTS} ", 60_000)
        page.get_by_role("button", name="Unload model", exact=True).click()
        _wait_text(page, "#chat-status", f"^The download of {DEMO_REPO_ID} from Hugging Face was stopped", 30_000)
        served = fake_hf_hub.bytes_served(WEIGHTS)
        time.sleep(3)  # a download still running would send another 60 MB by now
        assert fake_hf_hub.bytes_served(WEIGHTS) - served < 16e6
        assert served < 538e6
        _shot(page, "chat-en-stopped")
    finally:
        fake_hf_hub.reset()


def test_load_model_downloads_with_progress_joins_and_answers(hub_app, browser, page, fake_hf_hub):
    fake_hf_hub.reset()
    fake_hf_hub.throttle_bps = 60e6  # about 9 s for the demo's 538 MB: long enough to watch
    try:
        _open(page, hub_app, "en", "Chat", "Model hub", "Hugging Face", DEMO_REPO_ID)
        page.get_by_role("button", name="Load model", exact=True).click()
        _wait_text(page, "#chat-status", f"Downloading .* from Hugging Face .* {WEIGHTS} .* left", 60_000)
        text = _status_text(page, "#chat-status")
        assert re.search(r"\d+(\.\d)? [kMG]?B of \d+(\.\d)? MB · .*/s · .* left", text), text
        _shot(page, "chat-en-downloading")

        # A second page pressing Load while it downloads joins the same download.
        other = browser.new_context(viewport={"width": 1400, "height": 1200}).new_page()
        _open(other, hub_app, "en", "Chat", "Model hub", "Hugging Face", DEMO_REPO_ID)
        other.get_by_role("button", name="Load model", exact=True).click()
        _wait_text(other, "#chat-status", "Downloading|Model loaded", 60_000)

        for pg in (page, other):
            _wait_text(pg, "#chat-status", "Model loaded", 240_000)
        other.context.close()
        assert len(fake_hf_hub.file_requests(WEIGHTS)) == 1  # one download for both presses
        # The memory estimate had only the id to go on; now it reads the downloaded config.json.
        _wait_text(page, "#chat-memory", "Loading this model for chat needs about", 30_000)
    finally:
        fake_hf_hub.reset()
    page.get_by_label("Input", exact=True).fill("Who are you?")
    page.get_by_role("button", name="Submit", exact=True).click()
    bot = page.locator("#chat-box [data-testid='bot']").last
    bot.wait_for(state="attached", timeout=60_000)
    expect(bot).not_to_have_text("", timeout=120_000)
    _shot(page, "chat-en-answered")


def test_start_downloads_in_the_job_then_trains_in_chinese(hub_app, page, fake_modelscope_hub):
    fake_modelscope_hub.reset()
    fake_modelscope_hub.throttle_bps = 50e6
    try:
        _open(page, hub_app, "zh", "训练", "模型下载源", "魔搭社区 ModelScope", DEMO_REPO_ID)
        page.get_by_label("最大样本数", exact=True).fill("8")
        page.get_by_label("输出目录", exact=True).fill("download-zh")
        page.get_by_role("button", name="开始", exact=True).click()
        # The job downloads in its own process and reports it through status.json.
        _wait_text(page, "#train-progress", f"正在从 魔搭社区 ModelScope 下载 .*{WEIGHTS}.*剩余", 120_000)
        _wait_text(page, "#train-status", "正在下载模型", 30_000)
        text = _status_text(page, "#train-progress")
        assert re.search(r"/ \d+(\.\d)? MB · .*/s · 剩余 ", text), text
        _shot(page, "train-zh-downloading")
    finally:
        fake_modelscope_hub.reset()
    _wait_text(page, "#train-status", "训练完毕", 900_000)
    _shot(page, "train-zh-finished")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_download_failures_are_one_sentence_in_the_language(hub_app, page, lang):
    if lang == "en":
        _open(page, hub_app, "en", "Chat", "Model hub", "Hugging Face", "tuneboard-test/no-such-model")
        page.get_by_role("button", name="Load model", exact=True).click()
        _wait_text(page, "#chat-status", "tuneboard-test/no-such-model does not exist on Hugging Face", 60_000)
    else:
        _open(page, hub_app, "zh", "对话", "模型下载源", "魔搭社区 ModelScope", GATED_REPO_ID)
        page.get_by_role("button", name="加载模型", exact=True).click()
        _wait_text(page, "#chat-status", f"魔搭社区 ModelScope 上的 {GATED_REPO_ID} 需要.*登录", 60_000)
    _shot(page, f"error-{lang}")


def test_a_catalogue_model_sets_path_and_template_and_custom_resets_the_template(hub_app, page):
    """Picking a catalogue model fills its id on the hub and its template; Custom then goes back to the model's own
    template (``auto``), so a local model is not trained or chatted with the previous model's format."""
    page.goto(hub_app.url)
    page.get_by_label("Language").wait_for(timeout=60_000)
    _choose(page, "Model hub", "ModelScope")
    page.get_by_label("Model name", exact=True).fill("Qwen2.5-7B-Inst")
    page.get_by_role("option", name="Qwen2.5-7B-Instruct (7.6B)", exact=True).click()
    expect(page.locator("#top-model-path textarea, #top-model-path input").first).to_have_value(
        "Qwen/Qwen2.5-7B-Instruct", timeout=30_000)
    expect(page.locator("#top-template input")).to_have_value("qwen", timeout=30_000)
    _choose(page, "Model hub", "Modelers (openMind)")
    expect(page.locator("#top-hub-info")).to_contain_text(
        "Qwen2.5-7B-Instruct is not on Modelers (openMind)", timeout=30_000)
    _choose(page, "Model name", "Custom")
    expect(page.locator("#top-template input")).to_have_value("auto", timeout=30_000)
