"""The hardware panel in Chromium: live while open in the tab on screen, silent (no requests) while closed or in
a tab that is not shown, in English and Chinese."""

from __future__ import annotations

import contextlib
import json

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _tick_ids(page) -> dict[str, int]:
    """The event id of each panel's timer tick, from the page's Gradio config: the tick whose output is the view."""
    config = page.evaluate("window.gradio_config")
    view_ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    ids = {}
    for prefix in ("train", "chat"):
        view = view_ids[f"{prefix}-hw-view"]
        ids[prefix] = next(d["id"] for d in config["dependencies"]
                           if d["outputs"] == [view] and any(target[1] == "tick" for target in d["targets"]))
    return ids


def _count_ticks(page, seen: list[int], fn: int, seconds: float) -> int:
    start = len(seen)
    page.wait_for_timeout(seconds * 1000)
    return sum(1 for f in seen[start:] if f == fn)


def test_hardware_panel_refreshes_only_while_seen(app_server, page):
    page.goto(app_server.url)
    page.get_by_label("Max samples", exact=True).wait_for(timeout=60_000)
    ticks = _tick_ids(page)
    seen: list[int] = []

    def on_request(request):
        if request.method == "POST" and request.post_data:
            with contextlib.suppress(ValueError, AttributeError):
                seen.append(json.loads(request.post_data).get("fn_index"))

    page.on("request", on_request)
    assert _count_ticks(page, seen, ticks["train"], 3) == 0  # closed by default: no cost

    panel = page.locator("#train-hw")
    panel.get_by_text("Hardware", exact=True).click()
    view = page.locator("#train-hw-view")
    expect(view).to_contain_text("CPU:", timeout=10_000)
    expect(view).to_contain_text("TuneBoard and its jobs")
    expect(view.get_by_role("progressbar", name="Memory")).to_be_visible()
    assert _count_ticks(page, seen, ticks["train"], 5) >= 2

    page.get_by_role("tab", name="Chat").click()  # open, but in a tab not shown: paused
    page.wait_for_timeout(500)
    assert _count_ticks(page, seen, ticks["train"], 5) == 0
    page.get_by_role("tab", name="Train").click()
    assert _count_ticks(page, seen, ticks["train"], 5) >= 2

    panel.get_by_text("Hardware", exact=True).click()  # closed again
    page.wait_for_timeout(500)
    assert _count_ticks(page, seen, ticks["train"], 5) == 0

    page.get_by_label("Language", exact=True).click()
    page.get_by_role("option", name="中文", exact=True).click()
    page.get_by_role("tab", name="对话").click()
    page.locator("#chat-hw").get_by_text("硬件", exact=True).click()
    chat_view = page.locator("#chat-hw-view")
    expect(chat_view).to_contain_text("内存：已用", timeout=10_000)
    expect(chat_view).to_contain_text("TuneBoard 及其任务占用")
    assert _count_ticks(page, seen, ticks["chat"], 5) >= 2
    assert _count_ticks(page, seen, ticks["train"], 1) == 0
