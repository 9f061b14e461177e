"""Adding datasets: layout detection on the real demo files, row-level errors on broken uploads, registration that
keeps every other entry and stays inside the data folder, and the identity builder's output read by the loader."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from engine.core.data import DataError, load_samples, read_registry, resolve_dataset
from engine.core.data.detect import detect
from engine.core.data.identity import FACT_PAIRS, build_identity, identity_rows
from engine.core.data.register import register
from engine.core.data.upload import MAX_ERRORS, inspect_file, register_upload
from engine.core.fileio import atomic_write_json
from engine.core.paths import DEFAULT_DATA_DIR


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A copy of the demo data folder: tests never write into the repository's assets."""
    return Path(shutil.copytree(DEFAULT_DATA_DIR, tmp_path / "data"))


def _write(path: Path, rows: list) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                                for r in rows), encoding="utf-8")
    else:
        path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


# Demo files, the layout they must be detected as, and their registry entry as written in dataset_info.json.
DEMO = [("identity.json", "alpaca", "identity"), ("general_mix.json", "alpaca", "general_mix"),
        ("sharegpt_demo.json", "sharegpt", "sharegpt_demo"), ("messages_demo.jsonl", "sharegpt", "messages_demo"),
        ("dpo_demo.json", "preference", "dpo_demo"), ("dpo_demo_sharegpt.json", "preference", "dpo_demo_sharegpt")]


@pytest.mark.parametrize("file_name, kind, registered", DEMO)
def test_demo_files_are_detected_as_registered(data_dir, tmp_path, file_name, kind, registered):
    upload = Path(shutil.copy(DEFAULT_DATA_DIR / file_name, tmp_path / file_name))
    inspection = inspect_file(upload)
    assert inspection.ok, inspection.errors
    assert inspection.detection.kind == kind
    assert inspection.rows == len(load_samples(DEFAULT_DATA_DIR, [registered]))
    # Registered from the upload, the samples are those of the hand-written entry.
    register_upload(data_dir, f"up_{registered}", upload)
    assert load_samples(data_dir, [f"up_{registered}"], stage="dpo" if kind == "preference" else "sft") == \
        load_samples(data_dir, [registered], stage="dpo" if kind == "preference" else "sft")


def test_each_table_type_is_detected(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame([{"instruction": "Say hi", "input": "", "output": "Hi!"},
                          {"instruction": "Say bye", "input": "", "output": "Bye!"}])
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.to_parquet(tmp_path / "a.parquet")
    for name in ("a.csv", "a.parquet"):
        inspection = inspect_file(tmp_path / name)
        assert inspection.ok and inspection.rows == 2 and inspection.detection.kind == "alpaca", name


def test_detection_mapping_and_tags():
    rows = [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}], "system": "s"}]
    found = detect(rows)
    assert found.kind == "sharegpt"
    assert ("messages", "conversations") in found.mapping and ("system", "system") in found.mapping
    assert found.entry["tags"]["user_tag"] == "human" and found.entry["tags"]["role_tag"] == "from"
    alpaca = detect([{"question": "q", "answer": "a"}])
    assert alpaca.entry == {"columns": {"prompt": "question", "response": "answer"}}


def test_format_chosen_by_the_user_and_undetectable_files():
    rows = [{"instruction": "q", "output": "a"}]
    with pytest.raises(DataError, match="cannot read it as sharegpt: no conversation column"):
        detect(rows, "sharegpt")
    with pytest.raises(DataError, match="no chosen and rejected column"):
        detect(rows, "preference")
    with pytest.raises(DataError, match="cannot tell the format.*the file has text"):
        detect([{"text": "plain"}])
    with pytest.raises(DataError, match="unknown format"):
        detect(rows, "kto")


def test_broken_json_line_missing_field_and_wrong_type_name_row_and_field(tmp_path):
    good = {"instruction": "Say hi", "input": "", "output": "Hi!"}
    path = _write(tmp_path / "broken.jsonl", [good, '{"instruction": "x", "output": ', good,
                                              {"instruction": "Say bye"}, {"instruction": "Hm", "output": ["a"]}, good])
    inspection = inspect_file(path)
    assert not inspection.ok and inspection.detection.kind == "alpaca"
    assert inspection.rows == 5 and inspection.error_count == 3
    where = [(e.file, e.row, e.field) for e in inspection.errors]
    assert where == [("broken.jsonl", 2, None), ("broken.jsonl", 4, "output"), ("broken.jsonl", 5, "output")]
    assert "not valid JSON" in str(inspection.errors[0])
    assert str(inspection.errors[1]) == "broken.jsonl, row 4, field 'output': missing"
    assert "must be text, got list" in str(inspection.errors[2])



def test_upload_problems_are_listed_in_the_ui_language(data_dir, tmp_path):
    """The upload panel's real handlers in Chinese: each row problem and the refusal say where and why in Chinese;
    the file name and the JSON parser's own words stay as they are."""
    from engine.core.data.errors import DATA_MESSAGES, DATA_WHERE
    from webui.dataset_upload import on_file, on_register

    good = {"instruction": "Say hi", "input": "", "output": "Hi!"}
    path = _write(tmp_path / "broken.jsonl", [good, '{"instruction": "x", "output": ', {"instruction": "Say bye"},
                                              {"instruction": "Hm", "output": ["a"]}])
    _, _, text, _ = on_file("zh", str(path))
    assert "- broken.jsonl，第 2 行：不是有效的 JSON（" in text
    assert "- broken.jsonl，第 3 行，字段 'output'：缺失" in text
    assert "- broken.jsonl，第 4 行，字段 'output'：必须是文本，实际为 list" in text
    english = [DATA_MESSAGES[key].split("{")[0].strip() for key in ("json_line", "missing", "not_text")]
    english += [DATA_WHERE["row"].split("{")[0].strip(), DATA_WHERE["field"].split("{")[0].strip()]
    assert not [words for words in english if words in text], text
    with pytest.warns(UserWarning, match="^未注册：broken.jsonl，第 2 行"):  # the pop-up says the same
        message, _ = on_register("zh", str(data_dir), str(path), "broken", None, False, [])
    assert message.startswith("未注册：broken.jsonl，第 2 行：不是有效的 JSON（")
    assert message.endswith("（另有 2 个问题）；未注册任何内容")
    assert "nothing was registered" not in message and "more problems" not in message

def test_broken_sharegpt_turn_names_row_and_field(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
            {"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "yo"}]}]
    inspection = inspect_file(_write(tmp_path / "chat.json", rows))
    assert [(e.row, e.field) for e in inspection.errors] == [(2, "messages")]
    assert "turn 2 has unknown role 'robot'" in str(inspection.errors[0])


def test_errors_are_capped_but_counted(tmp_path):
    path = _write(tmp_path / "many.json", [{"instruction": "q", "output": None}] * (MAX_ERRORS + 15))
    inspection = inspect_file(path)
    assert len(inspection.errors) == MAX_ERRORS and inspection.error_count == MAX_ERRORS + 15


def test_unreadable_files_are_refused(tmp_path):
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "object.json").write_text('{"a": 1}')
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "latin.jsonl").write_bytes(b'{"instruction": "caf\xe9", "output": "x"}\n')
    for name, message in (("empty.json", "empty"), ("object.json", "must hold a JSON list"),
                          ("notes.txt", "unsupported file type"), ("latin.jsonl", "not UTF-8")):
        inspection = inspect_file(tmp_path / name)
        assert not inspection.ok and message in str(inspection.errors[0]), name


def test_broken_upload_registers_nothing(data_dir, tmp_path):
    before = (data_dir / "dataset_info.json").read_bytes()
    path = _write(tmp_path / "bad.json", [{"instruction": "q", "output": "a"}, {"instruction": "q"}])
    with pytest.raises(DataError, match=r"bad.json, row 2, field 'output': missing; nothing was registered"):
        register_upload(data_dir, "bad", path)
    assert (data_dir / "dataset_info.json").read_bytes() == before
    assert not (data_dir / "bad.json").exists()


def test_registration_keeps_every_other_entry(data_dir, tmp_path):
    before = read_registry(data_dir)
    path = _write(tmp_path / "up.jsonl", [{"instruction": "q", "output": "a"}])
    target = register_upload(data_dir, "uploaded", path)
    after = read_registry(data_dir)
    assert target == data_dir.resolve() / "uploaded.jsonl"
    assert list(after) == list(before) + ["uploaded"]
    assert {k: v for k, v in after.items() if k != "uploaded"} == before
    assert after["uploaded"]["file_name"] == "uploaded.jsonl"
    assert not list(data_dir.glob(".*"))  # no temporary or lock file left behind


def test_concurrent_registrations_lose_no_entry(data_dir, tmp_path):
    rows = [{"instruction": "q", "output": "a"}]
    errors = []

    def add(n: int) -> None:
        try:
            register(data_dir, f"ds{n}", ".json", lambda target: atomic_write_json(target, rows), {})
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert {f"ds{n}" for n in range(8)} <= set(read_registry(data_dir))


@pytest.mark.parametrize("name", ["../evil", "a/b", "/etc/x", ".hidden", "", "  ", "x" * 65, "a\x00b", "-rf",
                                  "name with space"])
def test_unsafe_dataset_names_are_refused(data_dir, tmp_path, name):
    path = _write(tmp_path / "up.json", [{"instruction": "q", "output": "a"}])
    before = (data_dir / "dataset_info.json").read_bytes()
    with pytest.raises(DataError, match="dataset name .* is not allowed"):
        register_upload(data_dir, name, path)
    assert (data_dir / "dataset_info.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and p.parent != data_dir) == ["up.json"]


def test_names_and_files_of_other_datasets_are_protected(data_dir, tmp_path):
    path = _write(tmp_path / "up.json", [{"instruction": "q", "output": "a"}])
    identity = (data_dir / "identity.json").read_bytes()
    with pytest.raises(DataError, match="'identity' is already registered"):
        register_upload(data_dir, "identity", path)
    # Even with overwrite, a name whose file belongs to another entry is refused.
    registry = read_registry(data_dir)
    registry["other"] = registry.pop("identity")
    atomic_write_json(data_dir / "dataset_info.json", registry)
    with pytest.raises(DataError, match="file 'identity.json' belongs to dataset 'other'"):
        register_upload(data_dir, "identity", path, overwrite=True)
    assert (data_dir / "identity.json").read_bytes() == identity
    # An unregistered file of that name is kept unless overwriting is allowed.
    (data_dir / "stray.json").write_text("[]")
    with pytest.raises(DataError, match="a file 'stray.json' already exists"):
        register_upload(data_dir, "stray", path)
    register_upload(data_dir, "stray", path, overwrite=True)
    assert len(load_samples(data_dir, ["stray"])) == 1


def test_overwrite_replaces_the_entry_in_place(data_dir, tmp_path):
    first = _write(tmp_path / "one.json", [{"instruction": "q", "output": "a"}])
    second = _write(tmp_path / "two.json", [{"messages": [{"role": "user", "content": "hi"},
                                                          {"role": "assistant", "content": "yo"}]}] * 2)
    register_upload(data_dir, "mine", first)
    order = list(read_registry(data_dir))
    register_upload(data_dir, "mine", second, overwrite=True)
    assert list(read_registry(data_dir)) == order
    assert resolve_dataset(data_dir, "mine").formatting == "sharegpt"
    assert len(load_samples(data_dir, ["mine"])) == 2


def test_identity_builder_output_loads(data_dir):
    path, count = build_identity(data_dir, "nova_identity", "Nova", "Acme Lab", purpose="physics homework help",
                                 contact="help@acme.org", extra="Where are you based? | {{author}} is in Lyon.\n\n")
    template_rows = len(json.loads((DEFAULT_DATA_DIR / "identity.json").read_text(encoding="utf-8")))
    assert count == template_rows + len(FACT_PAIRS["purpose"]) + len(FACT_PAIRS["contact"]) + 1
    assert path == data_dir.resolve() / "nova_identity.json"
    samples = load_samples(data_dir, ["nova_identity"])
    assert len(samples) == count
    texts = [m["content"] for s in samples for m in s.messages]
    assert not any("{{" in text for text in texts)
    answers = [s.messages[-1]["content"] for s in samples]
    assert any("Nova" in a and "Acme Lab" in a and a.isascii() for a in answers)  # English
    assert any("Nova" in a and "开发" in a for a in answers)  # Chinese
    assert "Acme Lab is in Lyon." in answers
    assert any("physics homework help" in a and "主要用途" in a for a in answers)
    assert read_registry(data_dir)["nova_identity"] == {"file_name": "nova_identity.json"}
    assert (DEFAULT_DATA_DIR / "identity.json").read_text(encoding="utf-8").count("{{name}}") > 0  # template kept


def test_identity_builder_refuses_bad_input(data_dir):
    for kwargs, message in (({"name": ""}, "field 'name': must not be empty"),
                            ({"author": "{{x}}"}, "field 'author': must not contain"),
                            ({"extra": "ok | fine\nno separator"}, "row 2, field 'extra facts'"),
                            ({"purpose": "a\nb"}, "field 'purpose': must be one line")):
        args = {"name": "Nova", "author": "Acme", **kwargs}
        with pytest.raises(DataError, match=message):
            identity_rows(**args)
    with pytest.raises(DataError, match="'identity' is already registered"):
        build_identity(data_dir, "identity", "Nova", "Acme")


def test_empty_and_number_answers_are_problems_by_row_and_field(tmp_path):
    """An answer "" and an answer 42 load without complaint, but an upload names both; numbers pass where the user
    says they are text, and in Chinese the problems read in Chinese."""
    from webui.dataset_upload import on_file

    rows = [{"instruction": "Say hi", "output": "Hi!"}, {"instruction": "Say nothing", "output": ""},
            {"instruction": "Six times seven", "output": 42}, {"instruction": 7, "output": "seven"}]
    path = _write(tmp_path / "answers.jsonl", rows)
    inspection = inspect_file(path)
    assert not inspection.ok and inspection.error_count == 3
    assert [(e.row, e.field, e.key) for e in inspection.errors] == [
        (2, "output", "empty_answer"), (3, "output", "number_not_text"), (4, "instruction", "number_not_text")]
    as_text = inspect_file(path, numbers_as_text=True)
    assert [(e.row, e.key) for e in as_text.errors] == [(2, "empty_answer")]
    chat = _write(tmp_path / "chat.json", [{"messages": [{"role": "user", "content": "hi"},
                                                        {"role": "assistant", "content": "  "}]}])
    assert [(e.row, e.field, e.key) for e in inspect_file(chat).errors] == [(1, "messages", "empty_answer")]
    _, _, text, button = on_file("zh", str(path))
    assert "- answers.jsonl，第 2 行，字段 'output'：回答为空" in text
    assert "- answers.jsonl，第 3 行，字段 'output'：是数字（42）" in text and button["interactive"] is False
