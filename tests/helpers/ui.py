"""Small Playwright helpers shared by the browser tests."""

from __future__ import annotations

import time

from playwright.sync_api import expect


def fill_until_held(field, value: str) -> None:
    """Fill a field of a group just opened. On a busy machine the group's fields may still be mounting when the
    first fill lands, and mounting writes the form's value back over it (CI saw the default identity name stay,
    in two tests): fill again until the value holds."""
    field.wait_for(state="visible", timeout=30_000)
    for _ in range(5):
        field.fill(value)
        try:
            expect(field).to_have_value(value, timeout=3_000)
            time.sleep(1)
            expect(field).to_have_value(value, timeout=1_000)
            return
        except AssertionError:
            continue
    expect(field).to_have_value(value)


def language_switched(page, lang: str) -> None:
    """Wait until a language switch has been answered: the tab names change in the page at once, the rest when the
    server's answer lands, which clears the picker's busy mark."""
    from webui.locales import t

    expect(page.locator("#top-lang [data-testid=block-info]")).to_have_text(t(lang, "lang"), timeout=30_000)
    expect(page.locator("#top-lang[aria-busy=true]")).to_have_count(0, timeout=30_000)
