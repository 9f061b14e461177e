"""The device queue in Chromium: a second Start waits in line (said where it stands, shown in the queue
panel), can be removed from the queue, and a third starts by itself once the device is free."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from engine.core.rundir import FINISHED, QUEUED, RUNNING, STOPPED
from tests.helpers.runs import wait_for_state
from webui import runner

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _start(page, name: str, epochs: str) -> None:
    page.get_by_label("Epochs", exact=True).fill(epochs)
    output_dir = page.get_by_label("Output dir", exact=True)
    output_dir.fill(name)
    page.get_by_role("button", name="Start", exact=True).click()
    # Start answers with a fresh name for the next run. Until that answer lands, a name typed for the next Start
    # is written over (CI saw the second run start as train_<time> instead of queue-ui-second).
    expect(output_dir).not_to_have_value(name, timeout=60_000)


def test_queue_in_the_browser(app_server, page):
    page.goto(app_server.url)
    page.get_by_label("Max samples", exact=True).wait_for(timeout=60_000)
    page.get_by_label("Max samples", exact=True).fill("8")
    first = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", "queue-ui-first")
    try:
        _walk_the_queue(page, first)
    finally:  # a failure must not leave the 100-epoch run holding the device for the tests after this one
        for name in ("queue-ui-third", "queue-ui-second", "queue-ui-first"):
            run = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", name)
            if run.path.exists() and runner.stop(run):
                wait_for_state(run, 300)


def _walk_the_queue(page, first) -> None:
    _start(page, "queue-ui-first", "100")  # holds the device until stopped below, however fast the machine
    wait_for_state(first, 120, (RUNNING,))

    _start(page, "queue-ui-second", "1")
    status = page.locator("#train-status")
    # The Start message, soon replaced by the monitor's own line: either says where it stands.
    expect(status).to_contain_text(re.compile("queued behind 1 job|number 1 in line"), timeout=30_000)
    table = page.locator("#queue-table")
    expect(table).to_contain_text("queue-ui-first", timeout=30_000)
    expect(table).to_contain_text("queue-ui-second")
    _start(page, "queue-ui-third", "1")
    expect(status).to_contain_text("number 2 in line", timeout=30_000)
    page.screenshot(path="test-artifacts/queue-panel.png", full_page=True)

    # Remove the second from the queue through the panel.
    page.get_by_label("Queued run", exact=True).click()
    page.get_by_role("option", name="1. SmolLM2-135M-Instruct/lora/queue-ui-second", exact=True).click()
    page.get_by_role("button", name="Remove from queue", exact=True).click()
    expect(page.locator("#queue-message")).to_contain_text("Removing", timeout=10_000)
    second = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", "queue-ui-second")
    cancelled = wait_for_state(second, 30)
    assert cancelled["state"] == STOPPED and cancelled["cancelled"] is True
    expect(table).not_to_contain_text("queue-ui-second", timeout=30_000)

    third = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", "queue-ui-third")
    assert third.read_status()["state"] == QUEUED
    assert runner.stop(first)  # the device comes free: the third starts by itself
    assert wait_for_state(first, 300)["state"] == STOPPED
    done = wait_for_state(third, 300)
    assert done["state"] == FINISHED and done["started_at"] >= first.read_status()["finished_at"]
    # The page watching the third run follows it to the end.
    expect(status).to_contain_text("Training finished", timeout=60_000)
    expect(table).to_contain_text("The device is free", timeout=30_000)
