"""The Runs tab in Chromium: two real training runs are listed, their loss curves overlaid in one plot with the
settings in which they differ, and one is deleted after confirmation (also from the checkpoint dropdown)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from bench.harness import short_train_config
from tests.helpers.runs import ARTIFACTS, wait_for_state

pytestmark = [pytest.mark.slow, pytest.mark.browser]

MODEL = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def two_runs(workdirs, demo_model_dir):
    """Two short real LoRA runs (two steps each, one loss point per step) that differ in learning rate,
    started through the runner the Train tab uses (the second waits in the device queue)."""
    from webui import runner

    runs = []
    for name, lr in (("runs-a", 5e-4), ("runs-b", 1e-4)):
        run = runner.run_dir_for(MODEL, "lora", name)
        runner.launch(run, short_train_config(8, learning_rate=lr))
        runs.append(run)
    for run in runs:
        assert wait_for_state(run, 600)["state"] == "finished", run.log_tail(40)
    return runs


def _pick(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_runs_overlay_draws_two_curves(app_server, page, two_runs, workdirs):
    a, b = two_runs
    page.goto(app_server.url)
    page.get_by_label("Language").wait_for(timeout=60_000)
    _pick(page, "Checkpoint path", b.name)  # the Chat/Train checkpoint: deleting the run must take it away
    page.get_by_role("tab", name="Runs", exact=True).click()
    table = page.locator("#runs-table")
    expect(table).to_contain_text(a.name, timeout=30_000)
    expect(table).to_contain_text(b.name)
    expect(table).to_contain_text("finished")
    expect(page.locator("#runs-summary")).to_contain_text(str(workdirs["saves"].resolve()))

    # Two runs selected: one curve each in one plot, and the learning rate as the setting that differs.
    traces = page.locator("#runs-plot .scatterlayer .trace")
    compare = page.get_by_label("Compare runs", exact=True)
    for count, run in enumerate((a, b), 1):
        compare.click()
        compare.fill(run.name)  # the list filters to this run's entry; Enter picks it
        compare.press("Enter")
        expect(traces).to_have_count(count, timeout=30_000)
    page.keyboard.press("Escape")
    expect(page.locator("#runs-compare")).to_contain_text(f"{MODEL} / lora / {b.name}")
    legend = page.locator("#runs-plot .legend").text_content()
    assert f"lora / {a.name}" in legend and f"lora / {b.name}" in legend
    diff = page.locator("#runs-diff")
    expect(diff).to_contain_text("Learning rate (train.learning_rate)", timeout=30_000)
    expect(diff).to_contain_text("0.0005")
    expect(diff).to_contain_text("0.0001")
    assert "train.output_dir" not in diff.inner_text()  # every run has its own folder: not a setting
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "runs-overlay.png"), full_page=True)

    # Delete asks first: the folder path is shown, Cancel keeps the run, Confirm removes it.
    page.get_by_role("button", name="Delete run", exact=True).click()
    expect(page.locator("#runs-message")).to_contain_text("Choose a run first.", timeout=10_000)
    _pick(page, "Run", f"{MODEL} / lora / {b.name}")
    expect(page.get_by_label("Folder path", exact=True)).to_have_value(str(b.path), timeout=10_000)
    page.get_by_role("button", name="Delete run", exact=True).click()
    confirm = page.locator("#runs-confirm-text")
    expect(confirm).to_contain_text(f"Delete run {b.name}?", timeout=10_000)
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(confirm).to_be_hidden(timeout=10_000)
    assert b.status_path.is_file()
    page.get_by_role("button", name="Delete run", exact=True).click()
    page.get_by_role("button", name="Confirm delete", exact=True).click()
    expect(page.locator("#runs-message")).to_contain_text(f"Deleted run {b.name}", timeout=30_000)
    assert not b.path.exists() and a.status_path.is_file()
    expect(table).not_to_contain_text(b.name, timeout=10_000)
    expect(traces).to_have_count(1, timeout=10_000)  # the deleted run left the selection and the plot
    expect(page.get_by_label("Folder path", exact=True)).to_have_value("")

    # The checkpoint dropdown no longer holds or offers the deleted run; the other one is still there.
    checkpoint = page.get_by_label("Checkpoint path", exact=True)
    expect(checkpoint).to_have_value("", timeout=10_000)
    checkpoint.click()
    expect(page.get_by_role("option", name=a.name, exact=True)).to_be_visible(timeout=10_000)
    expect(page.get_by_role("option", name=b.name, exact=True)).to_have_count(0)

