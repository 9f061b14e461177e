"""The checkpoint arena in Chromium, in English then Chinese: the base model, a trained demo run and its checkpoint
answer blind, the names show only after each vote, the standings count the votes, the votes file downloads, and
the votes written as a preference dataset are registered and train a DPO run."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from bench.harness import short_train_config
from engine.core.paths import DEFAULT_DATA_DIR
from tests.helpers.runs import ARTIFACTS, run_cold_job, wait_for_state
from tests.helpers.ui import fill_until_held, language_switched
from webui.locales import MESSAGES, t

pytestmark = [pytest.mark.slow, pytest.mark.browser]

MODEL = "SmolLM2-135M-Instruct"
RUN = "arena-run"
PROBE = "Who are you?"


@pytest.fixture(scope="module")
def arena_run(workdirs, demo_model_dir):
    """A tiny real LoRA run (two steps, a checkpoint at each) with one probe question, trained through the runner
    the Train tab uses."""
    from webui import runner

    run = runner.run_dir_for(MODEL, "lora", RUN)
    runner.launch(run, short_train_config(8, save_steps=1, probe_questions=PROBE, probe_max_new_tokens=8))
    assert wait_for_state(run, 600)["state"] == "finished", run.log_tail(40)
    return run


def _button(page, name: str):
    return page.get_by_role("button", name=name, exact=True)


def _round(page, lang: str, vote_key: str, prompt: str | None) -> tuple[str, str]:
    """One arena round: a prompt (typed, or drawn from the probes when None), Answer, and a vote once both answers
    ended. The panel names no contestant before the vote and names the pair after it: (name of A, name of B)."""
    if prompt is None:
        _button(page, t(lang, "arena_draw")).click()
        expect(page.locator("#chat-query textarea")).to_have_value(PROBE, timeout=30_000)
    else:
        page.locator("#chat-query textarea").fill(prompt)
    _button(page, t(lang, "arena_answer")).click()
    vote = _button(page, t(lang, vote_key))
    expect(vote).to_be_enabled(timeout=180_000)
    battle = page.locator("#arena-battle")
    expect(battle.locator("[data-testid='bot']")).to_have_count(2)
    hidden = battle.inner_text()
    for name in (MODEL, RUN, t(lang, "arena_base_name", model="").strip()):
        assert name not in hidden, (name, hidden)
    vote.click()
    reveal = page.locator("#arena-reveal")
    expect(reveal).to_contain_text(t(lang, vote_key), timeout=30_000)
    expect(vote).to_be_disabled()
    found = re.match(r"A[:：]\s*(.+?) · B[:：]\s*(.+?) — ", reveal.inner_text())
    assert found, reveal.inner_text()
    names = {t(lang, "arena_base_name", model=MODEL), RUN, f"{RUN} / checkpoint-1"}
    assert found[1] in names and found[2] in names and found[1] != found[2], found.groups()
    return found[1], found[2]


def test_arena_votes_reveal_standings_and_train_dpo(app_server, page, arena_run, workdirs, tmp_path):
    started = time.monotonic()
    page.goto(app_server.url)
    page.get_by_label("Language").wait_for(timeout=60_000)
    page.get_by_role("tab", name="Chat", exact=True).click()
    fill_until_held(page.get_by_label("Checkpoint path", exact=True), "")
    slider = page.locator("#chat-max-new-tokens input[type=number]")
    slider.fill("16")
    slider.press("Enter")
    _button(page, "Unload model").click()
    page.wait_for_function("!(document.querySelector('#chat-status')?.innerText || '').match(/cpu/)", timeout=60_000)
    _button(page, "Load model").click()
    page.wait_for_function("(document.querySelector('#chat-status')?.innerText || '').match(/cpu/)", timeout=180_000)

    # Arena mode: the base model and the newest run are picked; the run's checkpoint is added.
    page.get_by_label("Arena", exact=True).check()
    page.locator("#arena-setup").wait_for(state="visible", timeout=10_000)
    expect(page.locator("#chat-submit")).to_be_hidden()
    contestants = page.locator("#arena-contestants")
    expect(contestants).to_contain_text("Base model (no adapter)", timeout=10_000)
    expect(contestants).to_contain_text(RUN)
    page.get_by_label("Contestants", exact=True).click()
    page.get_by_role("option").filter(has_text=f"{RUN} / checkpoint-1").click()
    page.keyboard.press("Escape")
    expect(contestants).to_contain_text("checkpoint-1")

    # Three rounds in English: each pair of the three once (the least compared pair comes next).
    rounds = (("arena_vote_a", None), ("arena_vote_b", "Who made you?"), ("arena_vote_a", "What can you do?"))
    pairs = [_round(page, "en", key, prompt) for key, prompt in rounds]
    assert len({frozenset(pair) for pair in pairs}) == 3, pairs
    standings = page.locator("#arena-standings")
    expect(standings).to_contain_text("votes: 3", timeout=30_000)
    assert standings.locator("tbody tr").count() == 3
    expect(page.locator("#arena-plot .js-plotly-plot")).to_have_count(1, timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "arena-en.png"), full_page=True)

    # One round in Chinese.
    page.get_by_label("Language").click()
    page.get_by_role("option", name="中文", exact=True).click()
    language_switched(page, "zh")
    expect(page.get_by_label(t("zh", "mode_arena"), exact=True)).to_be_checked()
    expect(_button(page, t("zh", "arena_write"))).to_be_visible()
    english = {e["en"] for key, e in MESSAGES.items() if key.startswith("arena_") and e["en"] != e["zh"]}
    shown = page.locator("#tab-chat").inner_text()
    assert [e for e in english if len(e) > 6 and "{" not in e and e in shown] == []
    _round(page, "zh", "arena_vote_bad", "你好，你是谁？")
    expect(standings).to_contain_text("共 4 票", timeout=30_000)

    # The votes file: one line per vote.
    with page.expect_download() as download:
        page.locator("#arena-download").click()
    lines = [json.loads(line) for line in Path(download.value.path()).read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 4 and [v["outcome"] for v in lines] == ["a", "b", "a", "both_bad"]

    # Written into the Train tab's Data dir as a preference dataset; Train on it opens the tab set for DPO.
    data = tmp_path / "arena-data"
    shutil.copytree(DEFAULT_DATA_DIR, data)  # a data folder of one's own, with the demo datasets
    page.get_by_role("tab", name=t("zh", "tab_train"), exact=True).click()
    fill_until_held(page.locator("#field-data-dataset_dir textarea, #field-data-dataset_dir input").first, str(data))
    page.get_by_role("tab", name=t("zh", "tab_chat"), exact=True).click()
    fill_until_held(page.locator("#arena-dataset-name textarea, #arena-dataset-name input").first, "arena_prefs")
    _button(page, t("zh", "arena_write")).click()
    written = page.locator("#arena-written")
    expect(written).to_contain_text("arena_prefs", timeout=30_000)
    expect(written).to_contain_text(str(data))
    registry = json.loads((data / "dataset_info.json").read_text(encoding="utf-8"))
    assert registry["arena_prefs"]["ranking"] is True
    rows = [json.loads(line) for line in (data / registry["arena_prefs"]["file_name"]).read_text().splitlines()]
    assert len(rows) == 3 and all(r["chosen"] and r["rejected"] for r in rows)  # both-bad is left out
    # The leader of the standings is where the DPO run starts from, unless the base model leads.
    leader = standings.locator("tbody tr").first.locator("td").nth(1).inner_text()
    led_by_base = leader == t("zh", "arena_base_name", model=MODEL)
    if not led_by_base:
        expect(written).to_contain_text(leader)
    _button(page, t("zh", "arena_train_on_it")).click()
    expect(page.locator("#field-train-stage input")).to_have_value("DPO", timeout=30_000)
    top_checkpoint = page.locator("#top-checkpoint input")
    if led_by_base:
        expect(top_checkpoint).to_have_value("")
    else:
        expect(top_checkpoint).to_have_value(re.compile("^" + re.escape(leader)))
    picked = page.locator("#field-data-datasets")
    expect(picked).to_contain_text("arena_prefs")
    expect(picked).not_to_contain_text("identity")  # the dataset just written, alone
    page.screenshot(path=str(ARTIFACTS / "arena-zh-train.png"), full_page=True)
    browser_s = time.monotonic() - started

    # A DPO run on it trains two steps.
    cfg = short_train_config(8, per_device_train_batch_size=2)  # three pairs: two steps
    cfg.train.stage, cfg.data.dataset_dir, cfg.data.datasets = "dpo", str(data), ["arena_prefs"]
    cfg.data.max_samples = 0
    run, status = run_cold_job(cfg, tmp_path / "arena-dpo")
    assert status["state"] == "finished" and status["step"] == 2, run.log_tail(40)
    print(f"arena browser part {browser_s:.0f} s, total {time.monotonic() - started:.0f} s")
