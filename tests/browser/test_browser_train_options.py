"""The Train tab's options in a real browser: every control labelled in English and Chinese, the new config
sections in Preview command and saved arguments, checkpoint-N in the checkpoint dropdown, and resuming a run."""

from __future__ import annotations

import re
import shutil

import pytest

from engine.core.config import RunConfig, iter_fields
from tests.helpers.runs import ARTIFACTS, tiny_train_config, wait_for_state
from tests.helpers.ui import language_switched
from webui.locales import field_text, t
from webui.train_tab import accelerator_choices

pytestmark = [pytest.mark.slow, pytest.mark.browser]

GROUPS = ("group_identity", "group_extra", "group_probes", "group_freeze", "group_lora", "group_rlhf", "group_galore",
          "group_apollo", "group_badam", "group_devices")  # closed until clicked; GRPO's opens with its stage
# Every field of these sections has its control on the Train tab (the fine-tuning method sits in the top bar).
TAB_FIELDS = sorted(f"{s}.{f.name}" for s, f, _ in iter_fields(RunConfig())
                    if s in ("data", "train", "lora", "freeze", "rlhf", "grpo", "galore", "apollo", "badam",
                             "distributed")
                    and f"{s}.{f.name}" not in ("train.finetuning_type", "train.output_dir"))
RUN_NAME = "options-run"


@pytest.fixture(scope="module")
def ckpt_run(workdirs, demo_model_dir):
    """A real two-step LoRA run that saves a checkpoint at each step."""
    from webui import runner

    cfg = tiny_train_config(save_steps=1, logging_steps=1)
    cfg.data.max_samples = 8  # 8 samples, batch 4: two steps
    run = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", RUN_NAME)
    runner.launch(run, cfg)
    assert wait_for_state(run, 600)["state"] == "finished", run.log_tail(40)
    return run


def _open(page, url: str):
    page.goto(url)
    page.get_by_label("Language").wait_for(timeout=60_000)
    return page.locator("#tab-train")


def _choose(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def _wait_text(page, selector: str, text: str, timeout: float = 30_000) -> str:
    page.wait_for_function("([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)",
                           arg=[selector, text], timeout=timeout)
    return page.locator(selector).inner_text()


def test_every_train_control_is_labelled_in_both_languages(app_server, page):
    tab = _open(page, app_server.url)
    assert not tab.locator("#train-group-grpo").is_visible()  # shown for its stage only
    _choose(page, "Stage", "GRPO")
    tab.locator("#train-group-grpo").wait_for(timeout=10_000)
    for group in GROUPS:
        tab.get_by_text(t("en", group), exact=True).click()
    blocks = tab.locator("[id^=field-]").evaluate_all("els => els.map(e => e.id)")
    assert {b for b in blocks if not b.endswith("-title")} == {f"field-{k.replace('.', '-')}" for k in TAB_FIELDS}
    cpu_only = not accelerator_choices()
    for lang in ("en", "zh"):
        if lang == "zh":
            _choose(page, "Language", "中文")
            language_switched(page, "zh")
            tab.get_by_text(t("zh", "group_devices"), exact=True).wait_for(timeout=10_000)
        for group in (*GROUPS, "group_grpo"):
            assert tab.get_by_text(t(lang, group), exact=True).is_visible(), group
        for key in TAB_FIELDS:
            label, info = field_text(lang, key)
            control = tab.get_by_label(label, exact=True)
            assert control.count() == 1, (lang, key, label)
            assert control.is_visible(), (lang, key, label)
            block_id = f"field-{key.replace('.', '-')}"
            # the label names this field's own control
            assert control.evaluate("e => e.closest('[id^=field-]').id") == block_id, (lang, key)
            block = tab.locator(f"#{block_id}")
            if key == "distributed.devices" and cpu_only:
                info = t(lang, "devices_cpu_only")
            assert info.replace("`", "") in block.inner_text(), (lang, key)
        quantization = field_text(lang, "model.quantization_bit")[0]
        assert page.get_by_label(quantization, exact=True).count() == 1
        # Nothing on the tab is left without a name: every visible field is labelled.
        unnamed = tab.locator("input, textarea").evaluate_all(
            """els => els.filter(e => e.offsetParent !== null && e.type !== 'hidden')
                     .filter(e => !e.getAttribute('aria-label')
                                  && ![...(e.labels || [])].some(l => l.innerText.trim()))
                     .map(e => e.outerHTML.slice(0, 160))""")
        assert unnamed == [], unnamed
        page.screenshot(path=str(ARTIFACTS / f"train-options-{lang}.png"), full_page=True)


def test_preview_and_saved_arguments_carry_the_new_sections(app_server, page, workdirs):
    tab = _open(page, app_server.url)
    for group in ("group_extra", "group_lora"):
        tab.get_by_text(t("en", group), exact=True).click()
    tab.get_by_label("Use DoRA", exact=True).check()
    tab.get_by_label("NEFTune alpha", exact=True).fill("5")
    extra = tab.get_by_label("Extra arguments", exact=True)
    extra.fill('{"no_such_argument": 1}')
    page.get_by_role("button", name="Preview command", exact=True).click()
    # named by the box's label and the argument (webui.errors.config_field_label)
    assert "Extra arguments › no_such_argument: not an allowed argument" in _wait_text(page, "#train-status",
                                                                                         "not an allowed")
    extra.fill('{"weight_decay": 0.01}')
    page.get_by_role("button", name="Preview command", exact=True).click()
    page.wait_for_function("(document.querySelector('#train-command textarea')?.value || '').includes('rlhf:')",
                           timeout=15_000)
    script = page.locator("#train-command textarea").input_value()
    for text in ("rlhf:", "distributed:", "freeze:", "use_dora: true", "neftune_noise_alpha: 5.0",
                 "weight_decay", "quantization_bit: none", "loss_type: sigmoid", "nnodes: 1"):
        assert text in script, text

    page.get_by_label("Config path", exact=True).fill("options.yaml")
    page.get_by_role("button", name="Save arguments", exact=True).click()
    _wait_text(page, "#train-status", "Arguments saved")
    saved = RunConfig.load(workdirs["configs"] / "options.yaml")
    assert saved.lora.use_dora and saved.train.neftune_noise_alpha == 5.0 and "weight_decay" in saved.train.extra_args
    tab.get_by_label("Use DoRA", exact=True).uncheck()
    page.get_by_role("button", name="Load arguments", exact=True).click()
    _wait_text(page, "#train-status", "Arguments loaded")
    page.wait_for_function("document.querySelector('#field-lora-use_dora input').checked", timeout=10_000)


def test_checkpoints_listed_and_a_run_resumed(app_server, page, ckpt_run, workdirs):
    tab = _open(page, app_server.url)
    # The dropdown offers the finished run and each checkpoint-N with its step and loss.
    page.get_by_label("Checkpoint path", exact=True).click()
    # Other tests' runs share the list: filter it to this run, as a user with many runs would.
    page.get_by_label("Checkpoint path", exact=True).fill(RUN_NAME)
    page.get_by_role("option", name=f"{RUN_NAME} / checkpoint-1 (").wait_for(timeout=15_000)
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    assert RUN_NAME in options
    for step in (2, 1):
        assert any(re.fullmatch(rf"{RUN_NAME} / checkpoint-{step} \(step {step}, loss \d+\.\d+\)", o) for o in options)

    # The run's own settings (Load arguments) and its folder as output dir: Start would resume it.
    shutil.copy(ckpt_run.config_path, workdirs["configs"] / "resume.yaml")
    page.get_by_label("Config path", exact=True).fill("resume.yaml")
    page.get_by_role("button", name="Load arguments", exact=True).click()
    _wait_text(page, "#train-status", "Arguments loaded")
    page.get_by_label("Output dir", exact=True).fill(RUN_NAME)
    notice = _wait_text(page, "#train-resume", "checkpoint-2")
    assert re.search(r"from checkpoint-2 \(step 2, loss \d", notice), notice
    assert "optimizer state" in notice and "No setting changed" in notice

    # A change resuming cannot take is named, and Start refuses it.
    tab.get_by_text("LoRA configurations", exact=True).click()
    tab.get_by_label("LoRA rank", exact=True).fill("16")
    assert "LoRA rank: 8 → 16" in _wait_text(page, "#train-resume", "Start will refuse")
    page.get_by_role("button", name="Start", exact=True).click()
    assert "LoRA rank: 8 → 16" in _wait_text(page, "#train-status", "Start will refuse")
    assert ckpt_run.read_status()["state"] == "finished"
    _choose(page, "Language", "中文")
    zh = _wait_text(page, "#train-resume", "点击开始将被拒绝")
    assert "断点续训" in zh and "LoRA 秩: 8 → 16" in zh and "步数 2" in zh
    _choose(page, "语言", "English")
    _wait_text(page, "#train-resume", "Start will refuse")

    # Restored, and one more epoch: Start resumes from checkpoint-2 and trains steps 3 and 4.
    tab.get_by_label("LoRA rank", exact=True).fill("8")
    page.get_by_label("Epochs", exact=True).fill("2")
    notice = _wait_text(page, "#train-resume", "Epochs: 1 → 2")
    assert "refuse" not in notice
    page.get_by_role("button", name="Start", exact=True).click()
    _wait_text(page, "#train-status", "Training resumed from checkpoint-2")
    _wait_text(page, "#train-status", "Training finished", timeout=600_000)
    assert [e["step"] for e in ckpt_run.read_events() if "loss" in e][-2:] == [3, 4]
    page.screenshot(path=str(ARTIFACTS / "train-resumed.png"), full_page=True)
