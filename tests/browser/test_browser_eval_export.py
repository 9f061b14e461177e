"""Evaluate & Predict and Export in a real browser: compare a trained adapter with the base model,
page through predictions, then export the merged model and see the folder reported."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.helpers.runs import ARTIFACTS, tiny_train_config

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def tiny_run(workdirs, demo_model_dir):
    """A short real LoRA run, trained through the same runner the Train tab uses."""
    from webui import runner

    cfg = tiny_train_config()
    run = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", "browser-eval")
    runner.launch(run, cfg)
    deadline = time.time() + 600
    while run.live_status().get("state") not in ("finished", "failed", "stopped"):
        assert time.time() < deadline, run.log_tail(40)
        time.sleep(1)
    assert run.read_status()["state"] == "finished", run.log_tail(40)
    return run


def _pick_checkpoint(page, name: str) -> None:
    page.get_by_label("Checkpoint path", exact=True).click()
    page.get_by_role("option", name=name, exact=True).click()


def test_compare_with_base_then_export(app_server, page, tiny_run, workdirs):
    page.goto(app_server.url)
    page.get_by_label("Language").wait_for(timeout=60_000)
    _pick_checkpoint(page, tiny_run.name)

    # Evaluate & Predict: compare the checkpoint with the base model on a few identity samples.
    page.get_by_role("tab", name="Evaluate & Predict", exact=True).click()
    tab = page.locator("#tab-eval")
    tab.get_by_label("Max samples", exact=True).fill("6")
    tab.get_by_label("Max new tokens", exact=True).fill("24")
    tab.get_by_role("button", name="Evaluate tuned and base", exact=True).click()
    page.wait_for_function(
        "(document.querySelector('#eval-status')?.innerText || '').match(/Evaluation (finished|failed)/)",
        timeout=900_000)
    assert "Evaluation finished" in page.locator("#eval-status").inner_text()
    metrics = page.locator("#eval-metrics")
    metrics.wait_for(timeout=30_000)
    text = metrics.inner_text()
    assert "fine-tuned" in text and "base" in text and "ROUGE-L" in text and "BLEU-4" in text
    predictions = page.locator("#eval-predictions")
    assert "Base model prediction" in predictions.inner_text()
    assert "Nimbus" in predictions.inner_text()  # the reference answers name the trained identity
    assert "6 predictions" in page.locator("#eval-predictions-info").inner_text()
    # Issue 19 item 8: at 1280 px the table (prompt, reference, fine-tuned, base) fits its panel, no column hidden
    # off to the right.
    page.set_viewport_size({"width": 1280, "height": 1000})
    table = predictions.locator("table.tb-predictions")
    page.wait_for_timeout(300)
    assert table.evaluate("t => t.getBoundingClientRect().right") <= \
        predictions.evaluate("p => p.getBoundingClientRect().right") + 1
    assert table.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth + 1")
    page.locator("#eval-pred-next").click()
    page.wait_for_function(
        "(document.querySelector('#eval-predictions-info')?.innerText || '').includes('page 2 / 2')", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "eval-compare.png"), full_page=True)
    run_dirs = [p for p in tiny_run.path.parent.iterdir() if p.name.startswith("eval_")]
    assert len(run_dirs) == 1
    metrics_file = json.loads((run_dirs[0] / "metrics.json").read_text())
    assert set(metrics_file) == {"fine-tuned", "base"}

    # Export: merge into a standalone folder and see it reported.
    page.get_by_role("tab", name="Export", exact=True).click()
    export_tab = page.locator("#tab-export")
    export_tab.get_by_label("Export dir", exact=True).fill("nimbus-merged")
    export_tab.get_by_role("button", name="Export", exact=True).click()
    page.wait_for_function(
        "(document.querySelector('#export-status')?.innerText || '').match(/Export (finished|failed)/)",
        timeout=600_000)
    assert "Export finished" in page.locator("#export-status").inner_text()
    target = Path(workdirs["exports"]) / "nimbus-merged"
    page.wait_for_function(
        "(document.querySelector('#export-result')?.innerText || '').includes('nimbus-merged')", timeout=30_000)
    assert (target / "config.json").is_file() and list(target.glob("*.safetensors"))
    page.screenshot(path=str(ARTIFACTS / "export-done.png"), full_page=True)

    # Exporting again into the same, now non-empty folder is refused with a clear message; the last export's file
    # list and full progress bar go, which the refusal contradicts. (After a Start the Export dir is a new name.)
    assert export_tab.get_by_label("Export dir", exact=True).input_value() != "nimbus-merged"
    export_tab.get_by_label("Export dir", exact=True).fill("nimbus-merged")
    export_tab.get_by_role("button", name="Export", exact=True).click()
    page.wait_for_function(
        "(document.querySelector('#export-status')?.innerText || '').includes('not empty')", timeout=30_000)
    page.wait_for_function("!(document.querySelector('#export-result')?.innerText || '').trim()"
                           " && !document.querySelector('#export-progress [role=progressbar]')", timeout=10_000)
