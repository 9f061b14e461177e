"""Check dataset in a real browser: the histogram's bars and the counts line are the engine's direct count for
the form's datasets, template, tokenizer and identity names, they follow the cutoff, and a previewed row is
shown as the model sees it (masked prompt, trained answer, part beyond the cutoff), in English and Chinese."""

from __future__ import annotations

import pytest

from engine.core.data import load_row
from engine.core.length_stats import cutoff_counts, dataset_sizes, length_histogram
from engine.core.presets import demo_config
from engine.core.sample_view import CUT_AWAY, MASKED, TRAINED, sample_views
from engine.facade import training_tokenizer
from tests.helpers.runs import ARTIFACTS
from tests.helpers.ui import fill_until_held
from webui.locales import t

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _counts_line(lang: str, cfg) -> str:
    """The counts line the page should show for ``cfg``, counted by the engine (Markdown bold removed)."""
    c = cutoff_counts(dataset_sizes(cfg), cfg.train.stage, cfg.data.cutoff_len)
    return t(lang, "length_counts", samples=c.samples, cut=c.cut, dropped=c.dropped, cutoff=cfg.data.cutoff_len,
             longest=c.longest, mean=f"{c.mean:.1f}").replace("**", "")


def _wait_text(page, selector: str, text: str, timeout: float = 60_000) -> None:
    page.wait_for_function("([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)",
                           arg=[selector, text], timeout=timeout)


def _bars(page) -> list[int]:
    page.wait_for_function("document.querySelectorAll('#check-plot .barlayer .point').length > 0", timeout=30_000)
    return page.evaluate("document.querySelector('#check-plot .js-plotly-plot').data[0].y")


def _kind_text(page, kind: str) -> str:
    return "".join(page.locator(f"#formatted-sample .tb-{kind}").all_text_contents())


def test_check_dataset_and_formatted_prompt(app_server, page):
    cfg = demo_config()  # what the form holds when the page opens
    page.goto(app_server.url)
    page.get_by_label("Language").wait_for(timeout=60_000)
    tab = page.locator("#tab-train")

    page.get_by_role("button", name="Check dataset", exact=True).click()
    line = _counts_line("en", cfg)
    _wait_text(page, "#check-counts", line)
    sizes = dataset_sizes(cfg)
    edges, counts = length_histogram([s.tokens for s in sizes])
    assert _bars(page) == counts and sum(counts) == len(sizes) == 132
    assert page.locator("#check-plot .barlayer .point").count() == len(counts)
    assert f"cutoff {cfg.data.cutoff_len}" in page.locator("#check-plot").inner_text()

    # a smaller cutoff: the counts follow (cut samples first, then dropped ones) and the line moves
    cutoff = tab.get_by_label("Cutoff length", exact=True)
    for value in (64, 40):
        cfg.data.cutoff_len = value
        cutoff.fill(str(value))
        _wait_text(page, "#check-counts", _counts_line("en", cfg), timeout=30_000)
        _wait_text(page, "#check-plot", f"cutoff {value}", timeout=30_000)
    assert cutoff_counts(sizes, "sft", 64).cut > 0 and cutoff_counts(sizes, "sft", 40).dropped > 0
    assert _bars(page) == counts  # the lengths do not depend on the cutoff

    # the identity placeholders are part of the samples: a longer name makes them longer
    tab.get_by_text("Identity placeholders", exact=True).click()
    cfg.data.identity_name = "Nova, the very long named assistant"
    fill_until_held(tab.get_by_label("Assistant name", exact=True), cfg.data.identity_name)
    _wait_text(page, "#check-counts", _counts_line("en", cfg), timeout=30_000)
    page.locator("#check-panel").screenshot(path=str(ARTIFACTS / "dataset-check-en.png"))

    # a previewed row as the model sees it: click the second row of the table
    page.get_by_role("button", name="Preview dataset", exact=True).click()
    _wait_text(page, "#preview-info", "1 / 10")
    page.locator("#preview-table [data-testid='cell-1-2']").click()
    page.wait_for_function("document.querySelector('#formatted-sample .tb-trained') !== null", timeout=60_000)
    assert page.locator("#formatted-number input").input_value() == "2"
    [sample] = load_row(cfg.data.dataset_dir, "identity", 1, {"name": cfg.data.identity_name,
                                                                 "author": cfg.data.identity_author})
    fate, [view] = sample_views(cfg, training_tokenizer(cfg.model.model_name_or_path), sample)
    for kind in (MASKED, TRAINED, CUT_AWAY):
        assert _kind_text(page, kind) == "".join(s.text for s in view.spans if s.kind == kind), kind
    assert "<|im_start|>user" in _kind_text(page, MASKED)  # special tokens shown as text, escaped
    assert sample.messages[0]["content"] in _kind_text(page, MASKED)
    assert fate == "cut" and "Nova" in _kind_text(page, CUT_AWAY)  # the name lies beyond the cutoff of 40
    legend = page.locator("#formatted-sample .tb-legend").inner_text()
    for kind, key in ((MASKED, "legend_masked"), (TRAINED, "legend_trained"), (CUT_AWAY, "legend_cut")):
        assert f"{t('en', key)}: {view.tokens(kind)} tokens" in legend
    assert t("en", f"fate_{fate}", cutoff=40) in page.locator("#formatted-sample").inner_text()

    # a row typed in, and one that does not exist
    number = page.locator("#formatted-number input")
    number.fill("3")
    page.get_by_role("button", name="Show as the model sees it", exact=True).click()
    third = load_row(cfg.data.dataset_dir, "identity", 2)[0].messages[0]["content"]
    page.wait_for_function("([t]) => (document.querySelector('#formatted-sample .tb-masked')?.textContent || '')"
                           ".includes('user\\n' + t + '<|im_end|>')", arg=[third], timeout=30_000)
    number.fill("101")
    page.get_by_role("button", name="Show as the model sees it", exact=True).click()
    _wait_text(page, "#formatted-sample", "has no row 101: it holds 100", timeout=30_000)
    number.fill("2")
    page.get_by_role("button", name="Show as the model sees it", exact=True).click()
    page.wait_for_function("document.querySelector('#formatted-sample .tb-trained') !== null", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "dataset-check-formatted-en.png"), full_page=True)

    # in Chinese: the counts line and the legend are redrawn in the new language
    page.get_by_label("Language", exact=True).click()
    page.get_by_role("option", name="中文", exact=True).click()
    _wait_text(page, "#check-counts", _counts_line("zh", cfg), timeout=30_000)
    page.get_by_role("button", name=t("zh", "show_formatted"), exact=True).click()
    _wait_text(page, "#formatted-sample", t("zh", "legend_trained"), timeout=30_000)
    assert page.get_by_role("button", name=t("zh", "check_dataset"), exact=True).is_visible()
    page.screenshot(path=str(ARTIFACTS / "dataset-check-zh.png"), full_page=True)
