"""Japanese, Korean and Russian in a real browser: picking the language renames the tabs and the controls on each
tab, none of the English labels is left on the page, and an engine error (a bad form value) is worded and names
the field in the language."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from engine.core.config import ConfigError, RunConfig
from tests.helpers.runs import ARTIFACTS
from tests.helpers.ui import language_switched
from webui.errors import error_text
from webui.locales import FIELD_TEXT, LANGUAGES, MESSAGES, field_text, t

pytestmark = [pytest.mark.slow, pytest.mark.browser]

NAMES = {code: name for name, code in LANGUAGES}
# A few controls of each tab, found by their translated labels.
TAB_FIELDS = {"train": ("train.learning_rate", "train.num_train_epochs", "data.cutoff_len", "data.datasets"),
              "eval": ("eval.predict", "eval.compare_base"),
              "chat": (),
              "export": ("export.export_dir", "export.max_shard_size_gb"),
              "runs": ()}
TAB_MESSAGES = {"train": ("preview_dataset", "start"), "eval": ("preview_command",),
                "chat": ("load_model", "clear_history"), "export": ("export_button",),
                "runs": ("runs_refresh", "runs_delete")}


def _english_labels(lang: str) -> set[str]:
    """English labels and messages that read differently in ``lang`` (short words could occur inside names)."""
    texts = {entry["en"][0] for entry in FIELD_TEXT.values() if entry["en"][0] != entry[lang][0]}
    texts |= {entry["en"] for entry in MESSAGES.values() if entry["en"] != entry[lang]}
    return {text for text in texts if len(text) > 6 and "{" not in text}


@pytest.mark.parametrize("lang", ["ja", "ko", "ru"])
def test_tabs_in_the_language(app_server, page, lang: str):
    page.goto(app_server.url)
    page.get_by_label("Language").wait_for(timeout=60_000)
    page.get_by_label("Language", exact=True).click()
    page.get_by_role("option", name=NAMES[lang], exact=True).click()
    language_switched(page, lang)
    assert page.get_by_role("tab", name=t(lang, "tab_train"), exact=True).count() == 1
    assert page.get_by_label(t(lang, "lang"), exact=True).count() == 1
    english = _english_labels(lang)
    for tab in ("train", "eval", "chat", "export", "runs"):
        page.get_by_role("tab", name=t(lang, f"tab_{tab}"), exact=True).click()
        panel = page.locator(f"#tab-{tab}")
        for key in TAB_FIELDS[tab]:
            assert panel.get_by_label(field_text(lang, key)[0], exact=True).is_visible(), (lang, key)
        for key in TAB_MESSAGES[tab]:
            assert panel.get_by_role("button", name=t(lang, key), exact=True).is_visible(), (lang, key)
        text = page.locator("body").inner_text()
        assert [e for e in english if e in text] == [], (lang, tab)
        page.screenshot(path=str(ARTIFACTS / f"language-{lang}-{tab}.png"), full_page=True)

    # A bad value: the engine's own error, rendered in this language, in the warning toast. (Gradio 6 titles the
    # toast with its type, "Warning", whatever title it is given.)
    with pytest.raises(ConfigError) as refused:
        RunConfig.from_dict({"train": {"learning_rate": -1.0}}).validate()
    expected = t(lang, "invalid_value", error=error_text(lang, refused.value))
    assert field_text(lang, "train.learning_rate")[0] in expected and "must be" not in expected
    page.get_by_role("tab", name=t(lang, "tab_train"), exact=True).click()
    panel = page.locator("#tab-train")
    rate = panel.get_by_label(field_text(lang, "train.learning_rate")[0], exact=True)
    rate.fill("-1")
    rate.press("Tab")
    panel.get_by_role("button", name=t(lang, "save_arguments"), exact=True).click()
    toast = page.get_by_test_id("toast-body").last
    expect(toast.get_by_test_id("toast-text")).to_have_text(expected, timeout=30_000)
