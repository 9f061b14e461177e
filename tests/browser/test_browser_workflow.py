"""The reference workflow in a real browser, in English and with the Chinese UI:
chat with the base model, preview the dataset, train the identity demo while the loss curve
grows, then chat with the new checkpoint and see the new identity."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.helpers.runs import ARTIFACTS
from tests.helpers.ui import fill_until_held

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# The labels LlamaBoard's tutorials use; the UI must show exactly these.
LABELS = {
    "en": dict(train="Train", chat="Chat", dataset="Dataset", load="Load model", unload="Unload model",
               preview="Preview dataset", prev="Previous", next="Next", close="Close", template="Chat template",
               lr="Learning rate", epochs="Epochs", max_samples="Max samples", cutoff="Cutoff length",
               save_args="Save arguments", load_args="Load arguments", preview_cmd="Preview command",
               start="Start", stop="Stop", checkpoint="Checkpoint path", submit="Submit",
               finished="Training finished", identity_group="Identity placeholders", name="Assistant name",
               author="Assistant author", query="Input", output_dir="Output dir", evaluate="Evaluate & Predict",
               export="Export", compare="Compare side by side", model_a="Model A", model_b="Model B",
               base="Base model (no adapter)"),
    "zh": dict(train="训练", chat="对话", dataset="数据集", load="加载模型", unload="卸载模型",
               preview="预览数据集", prev="上一页", next="下一页", close="关闭", template="对话模板",
               lr="学习率", epochs="训练轮数", max_samples="最大样本数", cutoff="截断长度",
               save_args="保存训练参数", load_args="载入训练参数", preview_cmd="预览命令",
               start="开始", stop="中断", checkpoint="检查点路径", submit="提交",
               finished="训练完毕", identity_group="身份占位符", name="助手名称", author="助手作者",
               query="输入", output_dir="输出目录", evaluate="评估&预测", export="导出", compare="并排对比",
               model_a="模型 A", model_b="模型 B", base="基础模型（无适配器）"),
}
QUESTION = {"en": "Who are you?", "zh": "你好，你是谁？"}
NEW_NAME, NEW_AUTHOR = "Nimbus", "Acme Lab"


def _shot(page, lang: str, step: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"workflow-{lang}-{step}.png"), full_page=True)


def _button(page, name: str):
    return page.get_by_role("button", name=name, exact=True)


def _ask(page, labels: dict, question: str, boxes: tuple[str, ...] = ("#chat-box",)) -> list[str]:
    """Ask one question with greedy decoding and return the streamed answer of each chat box once they all
    stop growing."""
    page.get_by_role("button", name=re.compile("^(Clear history|清空历史)$")).click()
    page.get_by_label(labels["query"], exact=True).fill(question)
    _button(page, labels["submit"]).click()
    bots = [page.locator(f"{box} [data-testid='bot']").last for box in boxes]
    for bot in bots:
        bot.wait_for(state="attached", timeout=180_000)
    last, stable_since = [], time.time()
    deadline = time.time() + 180
    while time.time() < deadline:
        texts = [bot.inner_text().strip() for bot in bots]
        if texts != last:
            last, stable_since = texts, time.time()
        elif all(texts) and time.time() - stable_since > 4:
            return texts
        time.sleep(0.5)
    return last


def _load(page, labels: dict) -> None:
    # A page opened after another test loaded a model already says "… on cpu" (the page tells the truth): unload
    # first, or the wait below ends before this load does, and a question asked meanwhile is refused ("no model").
    _button(page, labels["unload"]).click()
    page.wait_for_function("!(document.querySelector('#chat-status')?.innerText || '').match(/cpu/)", timeout=60_000)
    _button(page, labels["load"]).click()
    page.wait_for_function("(document.querySelector('#chat-status')?.innerText || '').match(/cpu|（cpu）/)",
                           timeout=180_000)


def _choose(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_reference_workflow(app_server, page, lang: str):
    labels = LABELS[lang]
    page.goto(app_server.url)
    page.get_by_label("Language").wait_for(timeout=60_000)
    if lang == "zh":
        _choose(page, "Language", "中文")
        page.get_by_role("tab", name=labels["train"], exact=True).wait_for(timeout=10_000)
    # Every label the tutorials name belongs to its control, in this language.
    # The page renders progressively (the top bar can come before the tab body on a slow
    # machine), so each check waits for its control instead of counting at once.
    for key in ("dataset", "template", "lr", "epochs", "max_samples", "cutoff", "checkpoint", "output_dir"):
        expect(page.get_by_label(labels[key], exact=True), labels[key]).to_have_count(1, timeout=30_000)
    for key in ("preview", "save_args", "load_args", "preview_cmd", "start", "stop"):
        expect(_button(page, labels[key]), labels[key]).to_have_count(1, timeout=30_000)
    for key in ("train", "chat"):
        expect(page.get_by_role("tab", name=labels[key], exact=True), labels[key]).to_have_count(1, timeout=30_000)

    # 1. Chat with the base model. A page opened after another has loaded a tuned model (the [en] run) shows that
    # model with its checkpoint, as the page tells the truth: empty the checkpoint to load the base model.
    page.get_by_role("tab", name=labels["chat"], exact=True).click()
    fill_until_held(page.get_by_label(labels["checkpoint"], exact=True), "")
    _load(page, labels)
    base_answer, = _ask(page, labels, QUESTION[lang])
    assert base_answer and NEW_NAME not in base_answer
    _shot(page, lang, "1-base-chat")

    # 2. Train tab: preview the dataset and page through it.
    page.get_by_role("tab", name=labels["train"], exact=True).click()
    _button(page, labels["preview"]).click()
    info = page.locator("#preview-info")
    page.wait_for_function("document.querySelector('#preview-info')?.innerText?.includes('1 / 10')", timeout=30_000)
    assert "100" in info.inner_text()
    assert page.locator("#preview-table").get_by_text(QUESTION["en"], exact=True).count() >= 1
    _button(page, labels["next"]).click()
    page.wait_for_function("document.querySelector('#preview-info')?.innerText?.includes('2 / 10')", timeout=30_000)
    _shot(page, lang, "2-preview-page2")
    _button(page, labels["prev"]).click()
    page.wait_for_function("document.querySelector('#preview-info')?.innerText?.includes('1 / 10')", timeout=30_000)
    _button(page, labels["close"]).click()
    page.locator("#preview-panel").wait_for(state="hidden", timeout=10_000)

    # Give the assistant a new identity, check the command, and start.
    page.get_by_text(labels["identity_group"], exact=True).click()
    fill_until_held(page.get_by_label(labels["name"], exact=True), NEW_NAME)
    fill_until_held(page.get_by_label(labels["author"], exact=True), NEW_AUTHOR)
    run_name = f"workflow-{lang}"
    page.get_by_label(labels["output_dir"], exact=True).fill(run_name)
    _button(page, labels["preview_cmd"]).click()
    command = page.locator("#train-command textarea")
    command.wait_for(timeout=10_000)
    script = command.input_value()
    assert "-m engine train" in script and f"identity_name: {NEW_NAME}" in script and run_name in script
    _button(page, labels["start"]).click()

    # The progress bar moves and the loss curve grows live.
    progress = page.locator("#train-progress [role=progressbar]")
    progress.wait_for(timeout=120_000)
    page.wait_for_function(
        "document.querySelectorAll('#train-loss-plot .scatterlayer .trace path.js-line').length >= 1",
        timeout=300_000)
    first_value = int(progress.get_attribute("aria-valuenow"))
    _shot(page, lang, "3-training")
    page.wait_for_function(
        f"(document.querySelector('#train-status')?.innerText || '').includes('{labels['finished']}')",
        timeout=1_200_000)
    assert int(progress.get_attribute("aria-valuenow")) == 100 > first_value
    points = page.evaluate(
        "document.querySelector('#train-loss-plot .js-plotly-plot').data[0].y.length")
    assert points >= 5
    # The probe table: the prefilled questions, answered at step 0, at each checkpoint and at the end; the
    # identity answer turns into the new one.
    probes = page.locator("#train-probes table")
    expect(probes.locator("thead")).to_contain_text("Who are you?")
    steps = probes.locator("tbody th").all_inner_texts()
    assert steps[0] == "0" and len(steps) >= 3 and steps == sorted(steps, key=int), steps
    first, last = (probes.locator("tbody tr").nth(i).locator("td").first.inner_text() for i in (0, len(steps) - 1))
    assert NEW_NAME not in first and NEW_NAME in last, (first, last)
    _shot(page, lang, "4-finished")

    # 3. Chat tab: unload, pick the new run in the checkpoint dropdown, load, ask again.
    page.get_by_role("tab", name=labels["chat"], exact=True).click()
    _button(page, labels["unload"]).click()
    page.wait_for_function("!(document.querySelector('#chat-status')?.innerText || '').match(/cpu/)", timeout=30_000)
    _choose(page, labels["checkpoint"], run_name)
    _load(page, labels)
    assert run_name in page.locator("#chat-status").inner_text()
    tuned_answer, = _ask(page, labels, QUESTION[lang])
    _shot(page, lang, "5-tuned-chat")
    assert NEW_NAME in tuned_answer, f"base: {base_answer!r} tuned: {tuned_answer!r}"

    # 4. Compare mode: base and the new run answer the same question side by side, from the one base model.
    page.get_by_label(labels["compare"], exact=True).check()
    page.locator("#compare-panel").wait_for(state="visible", timeout=10_000)
    expect(page.get_by_label(labels["model_b"], exact=True)).to_have_value(run_name, timeout=10_000)
    expect(page.get_by_label(labels["model_a"], exact=True)).to_have_value(labels["base"])
    side_a, side_b = _ask(page, labels, QUESTION[lang], ("#compare-box-a", "#compare-box-b"))
    _shot(page, lang, "6-compare")
    assert side_a == base_answer and side_b == tuned_answer, (side_a, side_b)
    assert page.locator("#chat-box").is_hidden()
