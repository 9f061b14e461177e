"""The Runs tab in Chromium: two real training runs are listed, their loss curves overlaid in one plot with the
settings in which they differ, their scored probes as columns and their probe answers side by side, and one is
deleted after confirmation (also from the checkpoint dropdown). The Train tab, watching one of them, colours its probe
table by score."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from bench.harness import short_train_config
from tests.helpers.runs import ARTIFACTS, wait_for_state

pytestmark = [pytest.mark.slow, pytest.mark.browser]

MODEL = "SmolLM2-135M-Instruct"
# Scored probes, short answers: one every answer passes, one none does, one scored by ROUGE-L.
PROBES = ("Who are you? => regex: \\w\n"
          "Name a colour. => exact: a purple elephant with wings\n"
          "Who made you? => rouge-l: I was made by Acme Lab.")


@pytest.fixture(scope="module")
def launched_runs(app_server, workdirs, demo_model_dir):
    """Two short real LoRA runs (two steps each, one loss point per step, probe rounds at steps 0 and 2) that differ
    in learning rate, started through the runner the Train tab uses (the second waits in the device queue); not
    waited for, so that a page opened now watches one."""
    from webui import runner

    runs = []
    for name, lr in (("runs-a", 5e-4), ("runs-b", 1e-4)):
        run = runner.run_dir_for(MODEL, "lora", name)
        runner.launch(run, short_train_config(8, learning_rate=lr, probe_questions=PROBES, probe_max_new_tokens=12))
        runs.append(run)
    return runs


@pytest.fixture(scope="module")
def two_runs(launched_runs):
    for run in launched_runs:
        assert wait_for_state(run, 600)["state"] == "finished", run.log_tail(40)
    return launched_runs


def _pick(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def _pick_runs(page, runs) -> None:
    """Both runs into Compare runs (typing filters the list to the run's entry; Enter picks it)."""
    traces = page.locator("#runs-plot .scatterlayer .trace")
    compare = page.get_by_label("Compare runs", exact=True)
    for count, run in enumerate(runs, 1):
        compare.click()
        compare.fill(run.name)
        compare.press("Enter")
        expect(traces).to_have_count(count, timeout=30_000)
    page.keyboard.press("Escape")


def test_scored_probes_in_the_train_and_runs_tabs(app_server, page, launched_runs):
    page.goto(app_server.url)
    page.get_by_label("Language").wait_for(timeout=60_000)
    # The page re-attached to the run going on: its probe table fills in, scored answers coloured.
    page.get_by_role("tab", name="Train", exact=True).click()
    probes = page.locator("#train-probes table")
    expect(probes.locator("thead")).to_contain_text("matches regex", timeout=300_000)
    expect(probes.locator("thead")).to_contain_text("Mean score")
    expect(probes.locator("thead")).to_contain_text("ROUGE-L I was made by Acme Lab.")
    first = probes.locator("tbody tr").first
    expect(first.locator("td.tb-scored")).to_have_count(4)  # three probes and the round's mean
    passed, failed = first.locator("td.tb-scored").nth(0), first.locator("td.tb-scored").nth(1)
    assert passed.get_attribute("data-score") == "100" and failed.get_attribute("data-score") == "0"
    colour = "el => getComputedStyle(el).backgroundColor"
    assert passed.evaluate(colour) != failed.evaluate(colour)
    assert "0.28" in passed.evaluate(colour)  # translucent over the theme's background
    expect(passed.locator(".tb-score")).to_have_text("100")
    for run in launched_runs:
        assert wait_for_state(run, 600)["state"] == "finished", run.log_tail(40)
    # Its last round (the end, step 2) is in the table, and the rounds' mean scores on the loss plot's right axis.
    expect(probes.locator("tbody th")).to_have_text(["0", "2"], timeout=30_000)
    page.wait_for_function("(document.querySelector('#train-loss-plot .js-plotly-plot')?.data || [])"
                           ".some(t => t.yaxis === 'y2' && t.x.length === 2)", timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#train-loss-plot").screenshot(path=str(ARTIFACTS / "train-probe-score.png"))
    probes.screenshot(path=str(ARTIFACTS / "train-probes.png"))

    # The Runs tab: the final and best probe scores as columns, the answers side by side under the diff.
    page.get_by_role("tab", name="Runs", exact=True).click()
    table = page.locator("#runs-table")
    expect(table).to_contain_text("Final probe score", timeout=30_000)
    expect(table).to_contain_text("Best probe score")
    _pick_runs(page, launched_runs)
    side = page.locator("#runs-probes table")
    for run in launched_runs:
        expect(side.locator("thead")).to_contain_text(run.name, timeout=30_000)
    expect(side.locator("thead")).to_contain_text("step 2 · final score")
    expect(side.locator("tbody tr")).to_have_count(3)
    expect(side.locator("tbody")).to_contain_text("Name a colour.")
    expect(side.locator("td.tb-scored")).to_have_count(6)
    page.locator("#runs-probes").screenshot(path=str(ARTIFACTS / "runs-probes.png"))


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
    _pick_runs(page, (a, b))
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

