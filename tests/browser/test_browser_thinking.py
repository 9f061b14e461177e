"""Chat with a reasoning model in the browser: the Enable thinking switch appears for it, the reasoning streams
into a "Thinking" block that ends up collapsed above the answer, and the answer alone is the reply."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.helpers.runs import ARTIFACTS
from tests.helpers.thinking_models import R1_KIND, REPEAT, REPEATED_REASONING, model_with_template
from tests.helpers.ui import fill_until_held
from webui.locales import field_text

pytestmark = [pytest.mark.slow, pytest.mark.browser]

LABELS = {"en": dict(chat="Chat", load="Load model", query="Input", submit="Submit", thinking="Thinking",
                     switch="Enable thinking"),
          "zh": dict(chat="对话", load="加载模型", query="输入", submit="提交", thinking="思考",
                     switch="启用思考模式")}


@pytest.fixture(scope="module")
def r1_model(tmp_path_factory, demo_model_dir) -> str:
    return model_with_template(tmp_path_factory.mktemp("browser-thinking") / "r1", demo_model_dir, R1_KIND)


def _stable_text(locator, seconds: float = 4, timeout: float = 180) -> str:
    """The locator's text once it stopped changing (the answer is streamed)."""
    last, since, deadline = None, time.time(), time.time() + timeout
    while time.time() < deadline:
        text = locator.inner_text().strip()
        if text != last:
            last, since = text, time.time()
        elif text and time.time() - since > seconds:
            return text
        time.sleep(0.5)
    return last or ""


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_thinking_block_collapsed_above_the_answer(app_server, page, r1_model, lang: str):
    labels = LABELS[lang]
    page.goto(app_server.url)
    page.get_by_label("Language").wait_for(timeout=60_000)
    if lang == "zh":
        page.get_by_label("Language", exact=True).click()
        page.get_by_role("option", name="中文", exact=True).click()
        page.get_by_role("tab", name=labels["chat"], exact=True).wait_for(timeout=10_000)
    fill_until_held(page.locator("#top-model-path").get_by_role("textbox"), r1_model)
    page.get_by_role("tab", name=labels["chat"], exact=True).click()
    # A page opened after another test loaded a tuned model shows that model's checkpoint (the page tells the
    # truth): the base model is wanted here, and a workflow run's adapter made it answer inside its reasoning.
    # (Escape: the emptied field's open list would cover the page.)
    fill_until_held(page.get_by_label(field_text(lang, "model.adapter_path")[0], exact=True), "")
    page.keyboard.press("Escape")
    switch = page.locator("#chat-enable-thinking")
    page.locator("#chat-unload").click()  # a model an earlier test loaded is shown on opening: start without one
    expect(switch).to_be_hidden(timeout=30_000)  # no model: nothing to switch
    page.get_by_role("button", name=labels["load"], exact=True).click()
    page.wait_for_function("(document.querySelector('#chat-status')?.innerText || '').match(/cpu|（cpu）/)",
                           timeout=180_000)
    expect(switch).to_be_visible(timeout=30_000)  # the loaded template reasons
    expect(switch.get_by_label(labels["switch"])).to_be_checked()

    page.get_by_label(labels["query"], exact=True).fill(REPEAT)
    page.get_by_role("button", name=labels["submit"], exact=True).click()
    box = page.locator("#chat-box")
    block = box.locator(".thought-group").last
    block.wait_for(state="attached", timeout=120_000)
    answer = box.locator("[data-testid='bot']").last
    answer_text = _stable_text(answer)

    title = block.locator(".title")
    expect(title).to_contain_text(labels["thinking"])
    expect(title).not_to_have_class(re.compile(r"\bexpanded\b"), timeout=30_000)  # done: collapsed
    # The answer: the text of the reply outside the block, all of it below the block.
    below, answer_only = box.evaluate("""box => {
        const block = [...box.querySelectorAll('.thought-group')].pop();
        const bot = [...box.querySelectorAll("[data-testid='bot']")].pop();
        const leaves = [...bot.querySelectorAll('*')].filter(e => !block.contains(e) && !e.contains(block)
            && !e.children.length && e.innerText && e.innerText.trim());
        const bottom = block.getBoundingClientRect().bottom;
        return [leaves.every(e => e.getBoundingClientRect().top >= bottom - 1),
                leaves.map(e => e.innerText.trim()).join(' ')];
    }""")
    assert answer_only and below, (answer_only, answer_text)
    assert REPEATED_REASONING not in answer_only and answer_only in answer_text
    expect(block.get_by_text(REPEATED_REASONING)).to_have_count(0)  # collapsed: the reasoning is not shown...
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"thinking-{lang}-collapsed.png"), full_page=True)
    title.click()
    expect(block.get_by_text(REPEATED_REASONING)).to_be_visible(timeout=10_000)  # ... until it is opened
    page.wait_for_timeout(1000)  # the block slides open
    page.screenshot(path=str(ARTIFACTS / f"thinking-{lang}-opened.png"), full_page=True)
