"""The Add dataset panel in a real browser: a good file is detected, confirmed, registered and offered in the
Dataset list; a broken one shows the problem by row and field and registers nothing; the identity builder writes
a dataset the list then offers. The data dir is a copy of the demo data, never the repository's assets."""

from __future__ import annotations

import json
import shutil

import pytest

from engine.core.data import load_samples, read_registry
from engine.core.paths import DEFAULT_DATA_DIR
from tests.helpers.runs import ARTIFACTS
from webui.locales import t

pytestmark = [pytest.mark.slow, pytest.mark.browser]

GOOD = [{"messages": [{"role": "user", "content": f"What is {n} + {n}?"},
                      {"role": "assistant", "content": f"{n} + {n} = {2 * n}."}]} for n in range(1, 6)]


@pytest.fixture
def data_dir(tmp_path):
    return shutil.copytree(DEFAULT_DATA_DIR, tmp_path / "data")


def _jsonl(path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _open_panel(page, url: str, data_dir) -> None:
    page.goto(url)
    page.get_by_label("Language").wait_for(timeout=60_000)
    folder = page.get_by_label("Data dir", exact=True)
    folder.fill(str(data_dir))
    folder.press("Enter")
    page.locator("#add-dataset").get_by_text(t("en", "group_add_dataset"), exact=True).click()
    page.locator("#upload-file input[type=file]").wait_for(state="attached", timeout=10_000)


def _wait_text(page, selector: str, text: str, timeout: float = 30_000) -> str:
    page.wait_for_function("([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)",
                           arg=[selector, text], timeout=timeout)
    return page.locator(selector).inner_text()


def _dataset_options(page) -> list[str]:
    page.get_by_label("Dataset", exact=True).click()
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    return [o.strip() for o in options]


def test_good_upload_is_registered_and_offered(app_server, page, data_dir, tmp_path):
    before = read_registry(data_dir)
    _open_panel(page, app_server.url, data_dir)
    assert "100 MB" in page.locator("#upload-limit").inner_text()
    page.locator("#upload-file input[type=file]").set_input_files(_jsonl(tmp_path / "math_chat.jsonl", GOOD))
    report = _wait_text(page, "#upload-report", "all valid")
    assert "5 rows" in report and "messages" in report and "role" in report
    assert page.locator("#upload-kind input").input_value() == t("en", "kind_sharegpt")
    assert page.locator("#upload-name").get_by_role("textbox").input_value() == "math_chat"
    # A wrong format chosen by hand is refused, with what is missing; the right one is accepted again.
    page.get_by_label("Format", exact=True).click()
    page.get_by_role("option", name=t("en", "kind_alpaca"), exact=True).click()
    assert "cannot read it as alpaca: no instruction column" in _wait_text(page, "#upload-report", "cannot read")
    assert page.locator("#upload-register").is_disabled()
    page.get_by_label("Format", exact=True).click()
    page.get_by_role("option", name=t("en", "kind_sharegpt"), exact=True).click()
    _wait_text(page, "#upload-report", "all valid")
    assert "math_chat" not in _dataset_options(page)
    page.locator("#upload-register").click()
    _wait_text(page, "#upload-report", "Registered dataset")
    assert "math_chat" in _dataset_options(page)
    after = read_registry(data_dir)
    assert {k: v for k, v in after.items() if k != "math_chat"} == before
    assert len(load_samples(data_dir, ["math_chat"])) == 5
    page.screenshot(path=str(ARTIFACTS / "dataset-upload-good.png"), full_page=True)


def test_broken_upload_shows_row_and_field_and_registers_nothing(app_server, page, data_dir, tmp_path):
    registry = (data_dir / "dataset_info.json").read_bytes()
    rows = [{"instruction": "Say hi", "input": "", "output": "Hi!"}, '{"instruction": "oops", ',
            {"instruction": "Say bye", "input": ""}, {"instruction": "Say hi", "input": "", "output": "Hi!"}]
    _open_panel(page, app_server.url, data_dir)
    page.locator("#upload-file input[type=file]").set_input_files(_jsonl(tmp_path / "broken.jsonl", rows))
    report = _wait_text(page, "#upload-report", "nothing is registered")
    assert "2 problem(s) in 3 rows" in report
    assert "broken.jsonl, row 2: not valid JSON" in report
    assert "broken.jsonl, row 3, field 'output': missing" in report
    assert page.locator("#upload-register").is_disabled()
    page.screenshot(path=str(ARTIFACTS / "dataset-upload-broken.png"), full_page=True)
    assert (data_dir / "dataset_info.json").read_bytes() == registry
    assert not (data_dir / "broken.jsonl").exists()
    assert "broken" not in _dataset_options(page)


def test_identity_builder_writes_and_offers_a_dataset(app_server, page, data_dir):
    _open_panel(page, app_server.url, data_dir)
    page.locator("#identity-dataset").get_by_role("textbox").fill("nova_identity")
    page.locator("#identity-name").get_by_role("textbox").fill("Nova")
    page.locator("#identity-author").get_by_role("textbox").fill("Acme Lab")
    page.locator("#identity-purpose").get_by_role("textbox").fill("physics homework help")
    page.locator("#identity-build").click()
    _wait_text(page, "#identity-status", "Wrote dataset")
    assert "nova_identity" in _dataset_options(page)
    answers = [s.messages[-1]["content"] for s in load_samples(data_dir, ["nova_identity"])]
    assert any("Nova" in a and "Acme Lab" in a and "开发" in a for a in answers)
    assert any("physics homework help" in a for a in answers)
    page.locator("#identity-build").click()  # the same name again: refused, said so, nothing lost
    _wait_text(page, "#identity-status", "already registered")
    assert len(load_samples(data_dir, ["nova_identity"])) == len(answers)
