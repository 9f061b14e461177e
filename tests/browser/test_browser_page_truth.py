"""The page tells the truth after a reload (issue 19, items 1-7), in Chromium: lists and default names are read when
the page opens, Chat shows the model it holds, a running run is re-attached with its own settings, Start says
whether it trains on the chosen checkpoint, the sample view follows the cutoff, and messages neither vanish nor
contradict a refusal."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from bench.harness import short_train_config
from engine.core.paths import DEFAULT_DATA_DIR
from engine.core.rundir import FINISHED, RunDir
from tests.helpers.runs import wait_for_state
from webui.locales import t

pytestmark = [pytest.mark.slow, pytest.mark.browser]

MODEL = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def finished_run(workdirs, demo_model_dir):
    """A short real LoRA run (two steps), started through the runner the Train tab uses."""
    from webui import runner

    run = runner.run_dir_for(MODEL, "lora", "truth-adapter")
    runner.launch(run, short_train_config(8))
    assert wait_for_state(run, 600)["state"] == "finished", run.log_tail(40)
    return run


def _open(page, url: str) -> None:
    since = time.strftime("train_%Y-%m-%d-%H-%M-%S", time.localtime(time.time() - 1))
    page.goto(url)
    page.get_by_label("Language").wait_for(timeout=60_000)
    _settled(page, since)


def _settled(page, since: str) -> None:
    """The page-load event has answered: the Train tab's Output dir is a name made after ``since`` (or a run's)."""
    page.wait_for_function("([since]) => { const v = document.querySelector('#train-output-dir textarea, "
                           "#train-output-dir input')?.value || ''; return v >= since || !v.startsWith('train_'); }",
                           arg=[since], timeout=30_000)
    time.sleep(1.5)  # its follow-up (Chat, the checkpoints) and the change events it sets off


def _reload(page) -> None:
    since = time.strftime("train_%Y-%m-%d-%H-%M-%S", time.localtime(time.time() - 1))
    page.reload()
    page.get_by_label("Language").wait_for(timeout=60_000)
    _settled(page, since)


def _wait_text(page, selector: str, text: str, timeout: float = 30_000) -> str:
    page.wait_for_function("([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)",
                           arg=[selector, text], timeout=timeout)
    return page.locator(selector).inner_text()


def _choose(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def _field(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def _fake_run(saves, name: str, command: str = "train") -> RunDir:
    """A finished run folder as a job leaves it (status and settings), without the job."""
    from engine.core.config import RunConfig

    run = RunDir(saves / MODEL / "lora" / name)
    run.path.mkdir(parents=True)
    RunConfig().save(run.config_path, command)
    run.write_status(FINISHED, command=command, created_at=time.time(), finished_at=time.time())
    return run


def test_added_dataset_survives_a_reload(app_server, page):
    """Item 1: a dataset written by the identity builder into the default Data dir is in the Dataset list of a
    reloaded page (and of Evaluate's), not only in the list the server built at start."""
    info = DEFAULT_DATA_DIR / "dataset_info.json"
    saved = info.read_bytes()
    name = "truth_reload_identity"
    try:
        _open(page, app_server.url)
        page.locator("#add-dataset").get_by_text(t("en", "group_add_dataset"), exact=True).click()
        page.locator("#identity-dataset").get_by_role("textbox").fill(name)
        page.locator("#identity-name").get_by_role("textbox").fill("Nova")
        page.locator("#identity-author").get_by_role("textbox").fill("Acme Lab")
        page.locator("#identity-build").click()
        _wait_text(page, "#identity-status", "Wrote dataset")
        _reload(page)
        for tab, label in (("train", "Train"), ("eval", "Evaluate & Predict")):
            page.get_by_role("tab", name=label, exact=True).click()
            box = page.locator(f"#tab-{tab}").get_by_label("Dataset", exact=True)
            box.click()
            expect(page.get_by_role("option", name=name, exact=True)).to_be_visible(timeout=15_000)
            page.keyboard.press("Escape")
    finally:  # the repository's demo data as it was
        info.write_bytes(saved)
        for leftover in DEFAULT_DATA_DIR.glob(f"{name}*"):
            leftover.unlink()


def test_default_names_are_made_when_the_page_opens(app_server, page, workdirs):
    """Item 2: the default Output dir of Train and Evaluate and the Export dir are new names when a page opens, never
    a folder that already holds a run (or an export)."""
    _open(page, app_server.url)
    train_name = _field(page, "train-output-dir").input_value()
    page.get_by_role("tab", name="Evaluate & Predict", exact=True).click()
    eval_name = _field(page, "eval-output-dir").input_value()
    page.get_by_role("tab", name="Export", exact=True).click()
    export_name = _field(page, "export-dir").input_value()
    # Another page starts runs and an export under these very names.
    _fake_run(workdirs["saves"], train_name)
    _fake_run(workdirs["saves"], eval_name, "eval")
    (workdirs["exports"] / export_name).mkdir()
    (workdirs["exports"] / export_name / "config.json").write_text("{}")
    _reload(page)
    names = {"train": _field(page, "train-output-dir").input_value()}
    page.get_by_role("tab", name="Evaluate & Predict", exact=True).click()
    names["eval"] = _field(page, "eval-output-dir").input_value()
    page.get_by_role("tab", name="Export", exact=True).click()
    names["export"] = _field(page, "export-dir").input_value()
    assert names["train"] != train_name and names["train"].startswith("train_")
    assert names["eval"] != eval_name and names["eval"].startswith("eval_")
    assert names["export"] != export_name and names["export"].startswith("model_")
    for kind in ("train", "eval"):
        assert not list(workdirs["saves"].glob(f"*/*/{names[kind]}")), names[kind]
    assert not (workdirs["exports"] / names["export"]).exists()
    page.get_by_role("tab", name="Train", exact=True).click()
    assert "choose another" not in page.locator("#train-resume").inner_text()  # Start would take the new name


def test_chat_shows_the_loaded_model_after_a_reload(app_server, page, finished_run):
    """Item 3: with base + adapter loaded in Chat, a reloaded page says so and its Checkpoint path names the
    adapter, instead of a blank status line over an empty (base model) checkpoint."""
    _open(page, app_server.url)
    _choose(page, "Checkpoint path", finished_run.name)
    page.get_by_role("tab", name="Chat", exact=True).click()
    page.get_by_role("button", name="Load model", exact=True).click()
    _wait_text(page, "#chat-status", "Model loaded", timeout=300_000)
    try:
        _reload(page)
        page.get_by_role("tab", name="Chat", exact=True).click()
        status = _wait_text(page, "#chat-status", "Model loaded")
        assert str(finished_run.path) in status and "cpu" in status
        checkpoint = page.get_by_label("Checkpoint path", exact=True)
        expect(checkpoint).to_have_value(finished_run.name, timeout=10_000)
    finally:
        page.get_by_role("button", name="Unload model", exact=True).click()
        _wait_text(page, "#chat-status", "Model unloaded")


def test_reattached_run_shows_its_name_and_settings(app_server, page, workdirs):
    """Item 4: a page reloaded while a run trains shows that run's name as Output dir, its run.yaml in the form,
    and a note saying so (in English and Chinese)."""
    from webui import runner

    run = runner.run_dir_for(MODEL, "lora", "truth-running")
    runner.launch(run, short_train_config(400, epochs=3, learning_rate=3e-4, cutoff_len=96))
    try:
        wait_for_state(run, 300, ("running",))
        _open(page, app_server.url)
        expect(_field(page, "train-output-dir")).to_have_value(run.name, timeout=15_000)
        note = _wait_text(page, "#train-attached", run.name)
        assert "run.yaml" in note and "running" in note
        tab = page.locator("#tab-train")
        expect(tab.get_by_label("Learning rate", exact=True)).to_have_value("0.0003")
        expect(tab.get_by_label("Epochs", exact=True)).to_have_value("3")
        expect(tab.get_by_label("Cutoff length", exact=True)).to_have_value("96")
        expect(tab.get_by_label("Max samples", exact=True)).to_have_value("400")
        _choose(page, "Language", "中文")
        zh = _wait_text(page, "#train-attached", "正在显示任务")
        assert run.name in zh and "运行中" in zh
        _choose(page, "语言", "English")
    finally:
        runner.stop(run)
        wait_for_state(run, 120)


def test_start_says_whether_it_continues_from_the_checkpoint(app_server, page, finished_run):
    """Item 5: a checkpoint chosen in the top bar is for Chat, Evaluate and Export; Start says it trains on the base
    model unless the box is ticked, and then that it continues from that adapter (English and Chinese)."""
    _open(page, app_server.url)
    assert page.locator("#train-adapter-note").inner_text().strip() == ""
    _choose(page, "Checkpoint path", finished_run.name)
    _wait_text(page, "#train-adapter-note", t("en", "adapter_not_used", adapter=finished_run.name).split(":")[0])
    page.locator("#btn-preview-command").click()
    command = page.locator("#train-command textarea")
    expect(command).to_be_visible(timeout=30_000)
    assert str(finished_run.path) not in command.input_value()  # the base model by default
    page.get_by_label("Continue from this checkpoint", exact=True).check()
    note = _wait_text(page, "#train-adapter-note", "Start continues from adapter")
    assert finished_run.name in note
    page.locator("#btn-preview-command").click()
    page.wait_for_function("([p]) => document.querySelector('#train-command textarea')?.value.includes(p)",
                           arg=[str(finished_run.path)], timeout=30_000)
    _choose(page, "Language", "中文")
    zh = _wait_text(page, "#train-adapter-note", "点击开始将在适配器")
    assert finished_run.name in zh
    page.get_by_label("在此检查点上继续训练", exact=True).uncheck()
    _wait_text(page, "#train-adapter-note", "点击开始将从基础模型训练")


def test_sample_view_follows_the_cutoff(app_server, page):
    """Item 6: the sample shown "as the model sees it" is redrawn when the cutoff changes, without Show again, and
    in Chinese when the language changes."""
    _open(page, app_server.url)
    tab = page.locator("#tab-train")
    cutoff = tab.get_by_label("Cutoff length", exact=True)
    cutoff.fill("256")
    page.get_by_role("button", name="Preview dataset", exact=True).click()
    _wait_text(page, "#preview-info", "1 / ")
    page.get_by_role("button", name="Show as the model sees it", exact=True).click()
    _wait_text(page, "#formatted-sample", t("en", "fate_kept", cutoff=256), timeout=60_000)
    cutoff.fill("40")
    fates = ("fate_cut", "fate_dropped")  # the first sample is longer than 40 tokens: cut or dropped
    page.wait_for_function("([texts]) => texts.some(x => (document.querySelector('#formatted-sample')?.innerText"
                           " || '').includes(x))", arg=[[t("en", k, cutoff=40) for k in fates]], timeout=60_000)
    assert page.locator("#formatted-sample .tb-cut").count() > 0
    _choose(page, "Language", "中文")
    page.wait_for_function("([texts]) => texts.some(x => (document.querySelector('#formatted-sample')?.innerText"
                           " || '').includes(x))", arg=[[t("zh", k, cutoff=40) for k in fates]], timeout=60_000)
    _choose(page, "语言", "English")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_deleted_run_message_stays(app_server, page, workdirs, lang):
    """Item 7: "Deleted run …" stays on screen after the Runs tab refreshes (it was wiped after 0.6 s)."""
    run = _fake_run(workdirs["saves"], f"truth-delete-{lang}")
    _open(page, app_server.url)
    if lang == "zh":
        _choose(page, "Language", "中文")
    page.get_by_role("tab", name=t(lang, "tab_runs"), exact=True).click()
    _wait_text(page, "#runs-table", run.name)
    _choose(page, t(lang, "runs_manage"), f"{MODEL} / lora / {run.name}")
    page.get_by_role("button", name=t(lang, "runs_delete"), exact=True).click()
    _wait_text(page, "#runs-confirm-text", run.name)
    page.get_by_role("button", name=t(lang, "runs_confirm_delete"), exact=True).click()
    deleted = t(lang, "runs_deleted", run=run.name, path="").split("（")[0].split(" (")[0]
    _wait_text(page, "#runs-message", deleted)
    time.sleep(3)
    assert deleted in page.locator("#runs-message").inner_text()
    assert not run.path.exists()
