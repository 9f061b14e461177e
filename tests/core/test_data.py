"""Datasets: registry, json/jsonl/csv/parquet readers, alpaca/sharegpt normalisation, errors, preview, demo data,
and the data each training stage (pt, sft, rm/dpo/orpo, kto) reads."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from engine.core.data import DataError, Sample, list_datasets, load_samples, preview_page, resolve_dataset
from engine.core.paths import DEFAULT_DATA_DIR

ALPACA_ROWS = [
    {"instruction": "Translate to French", "input": "cat", "output": "chat"},
    {"instruction": "Say hi", "input": "", "output": "Hi!", "system": "Be brief."},
]
ALPACA_MESSAGES = [
    [{"role": "user", "content": "Translate to French\ncat"}, {"role": "assistant", "content": "chat"}],
    [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi!"}],
]
ALPACA_SYSTEMS = ["", "Be brief."]


def make_dir(tmp_path: Path, registry, files: dict | None = None) -> Path:
    """A data folder with dataset_info.json (object or raw text) and files (name -> list of rows, or text)."""
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    reg = registry if isinstance(registry, str) else json.dumps(registry, ensure_ascii=False)
    (d / "dataset_info.json").write_text(reg, encoding="utf-8")
    for name, content in (files or {}).items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            p.write_text(content, encoding="utf-8")
        elif isinstance(content, bytes):
            p.write_bytes(content)
        elif name.endswith(".jsonl"):
            p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in content), encoding="utf-8")
        else:
            p.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
    return d


def load_one(d: Path, name: str, **kw) -> list[Sample]:
    return load_samples(d, [name], **kw)


def messages(samples: list[Sample]) -> list[list[dict]]:
    return [s.messages for s in samples]


# -- alpaca in each file type ------------------------------------------------

def _write_csv(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    pd.DataFrame(rows).to_csv(path, index=False)


def _write_parquet(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    pd.DataFrame(rows).to_parquet(path, index=False)


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv", ".parquet"])
def test_alpaca_each_file_type(tmp_path, suffix):
    file_name = "alpaca" + suffix
    d = make_dir(tmp_path, {"ds": {"file_name": file_name}})
    rows = [dict(r) for r in ALPACA_ROWS]
    rows[0]["system"] = ""  # give table formats a uniform column set
    if suffix == ".json":
        (d / file_name).write_text(json.dumps(rows), encoding="utf-8")
    elif suffix == ".jsonl":
        (d / file_name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif suffix == ".csv":
        _write_csv(d / file_name, rows)
    else:
        _write_parquet(d / file_name, rows)
    samples = load_one(d, "ds")
    assert messages(samples) == ALPACA_MESSAGES
    assert [s.system for s in samples] == ALPACA_SYSTEMS
    assert samples[1].chat_messages() == [{"role": "system", "content": "Be brief."}] + ALPACA_MESSAGES[1]
    assert samples[0].chat_messages() == ALPACA_MESSAGES[0]


def test_csv_with_empty_cells_and_numbers(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "t.csv"}},
                 {"t.csv": "instruction,input,output\nWhat is 6*7?,,42\n\"Quote, comma\",x,\"multi\nline\"\n"})
    assert messages(load_one(d, "ds")) == [
        [{"role": "user", "content": "What is 6*7?"}, {"role": "assistant", "content": "42"}],
        [{"role": "user", "content": "Quote, comma\nx"}, {"role": "assistant", "content": "multi\nline"}],
    ]


def test_parquet_with_missing_values(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "t.parquet"}})
    _write_parquet(d / "t.parquet", [{"instruction": "q1", "input": None, "output": "a1"},
                                     {"instruction": "q2", "input": "more", "output": "a2"}])
    assert messages(load_one(d, "ds")) == [
        [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}],
        [{"role": "user", "content": "q2\nmore"}, {"role": "assistant", "content": "a2"}],
    ]


def test_parquet_nested_columns(tmp_path):
    # sharegpt turns and alpaca history are list columns in parquet.
    d = make_dir(tmp_path, {"sg": {"file_name": "sg.parquet", "formatting": "sharegpt"},
                            "al": {"file_name": "al.parquet"}})
    _write_parquet(d / "sg.parquet", [{"conversations": [{"from": "human", "value": "q"},
                                                         {"from": "gpt", "value": "a"}]}])
    _write_parquet(d / "al.parquet", [{"instruction": "i", "input": "", "output": "o", "history": [["h1", "a1"]]}])
    assert messages(load_one(d, "sg")) == [[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]]
    assert messages(load_one(d, "al")) == [[
        {"role": "user", "content": "h1"}, {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "i"}, {"role": "assistant", "content": "o"},
    ]]


def test_history_in_alpaca(tmp_path):
    row = {"instruction": "And 3+3?", "input": "", "output": "6", "system": "Math tutor.",
           "history": [["1+1?", "2"], ["2+2?", "4"]]}
    d = make_dir(tmp_path, {"ds": {"file_name": "h.json"}}, {"h.json": [row]})
    [sample] = load_one(d, "ds")
    assert sample.system == "Math tutor."
    assert sample.messages == [
        {"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"},
        {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"}, {"role": "assistant", "content": "6"},
    ]


def test_custom_alpaca_columns(tmp_path):
    reg = {"ds": {"file_name": "c.json", "columns": {"prompt": "question", "query": "context", "response": "answer",
                                                     "system": "sys", "history": "past"}}}
    row = {"question": "Q", "context": "C", "answer": "A", "sys": "S", "past": [["q0", "a0"]],
           "instruction": "ignored", "output": "ignored"}
    d = make_dir(tmp_path, reg, {"c.json": [row]})
    [sample] = load_one(d, "ds")
    assert sample.system == "S"
    assert sample.messages == [{"role": "user", "content": "q0"}, {"role": "assistant", "content": "a0"},
                               {"role": "user", "content": "Q\nC"}, {"role": "assistant", "content": "A"}]


# -- sharegpt and OpenAI layouts -----------------------------------------------

SHAREGPT_ROW = {"conversations": [
    {"from": "system", "value": "You are terse."},
    {"from": "human", "value": "Hello"},
    {"from": "gpt", "value": "Hi."},
    {"from": "human", "value": "Bye"},
    {"from": "gpt", "value": "Bye."},
]}
EXPECTED_TURNS = [
    {"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi."},
    {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Bye."},
]


def test_sharegpt_from_value(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "s.json", "formatting": "sharegpt"}}, {"s.json": [SHAREGPT_ROW]})
    [sample] = load_one(d, "ds")
    assert sample.system == "You are terse."
    assert sample.messages == EXPECTED_TURNS
    assert sample.chat_messages()[0] == {"role": "system", "content": "You are terse."}


def test_sharegpt_system_column(tmp_path):
    row = {"conversations": SHAREGPT_ROW["conversations"][1:], "system": "From the column."}
    d = make_dir(tmp_path, {"ds": {"file_name": "s.json", "formatting": "sharegpt"}}, {"s.json": [row]})
    [sample] = load_one(d, "ds")
    assert sample.system == "From the column."
    assert sample.messages == EXPECTED_TURNS


def _openai_row():
    return {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello"},
                         {"role": "assistant", "content": "Hi."}, {"role": "user", "content": "Bye"},
                         {"role": "assistant", "content": "Bye."}]}


def test_openai_messages_with_columns_and_tags(tmp_path):
    reg = {"ds": {"file_name": "m.jsonl", "formatting": "sharegpt", "columns": {"messages": "messages"},
                  "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                           "assistant_tag": "assistant", "system_tag": "system"}}}
    d = make_dir(tmp_path, reg, {"m.jsonl": [_openai_row()]})
    [sample] = load_one(d, "ds")
    assert sample.system == "You are terse."
    assert sample.messages == EXPECTED_TURNS


def test_openai_messages_without_columns(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "m.jsonl", "formatting": "sharegpt"}}, {"m.jsonl": [_openai_row()]})
    [sample] = load_one(d, "ds")
    assert sample.system == "You are terse."
    assert sample.messages == EXPECTED_TURNS


def test_sharegpt_custom_column_and_tags(tmp_path):
    reg = {"ds": {"file_name": "s.json", "formatting": "sharegpt", "columns": {"messages": "dialog"},
                  "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "me", "assistant_tag": "bot"}}}
    row = {"dialog": [{"speaker": "me", "text": "Ping"}, {"speaker": "bot", "text": "Pong"}]}
    d = make_dir(tmp_path, reg, {"s.json": [row]})
    assert messages(load_one(d, "ds")) == [[{"role": "user", "content": "Ping"},
                                            {"role": "assistant", "content": "Pong"}]]


def test_utf8_bom_files(tmp_path):
    bom = "\ufeff"
    d = make_dir(tmp_path, {"j": {"file_name": "b.json"}, "l": {"file_name": "b.jsonl"}, "c": {"file_name": "b.csv"}})
    (d / "dataset_info.json").write_text(bom + (d / "dataset_info.json").read_text(encoding="utf-8"), encoding="utf-8")
    row = {"instruction": "你好", "input": "", "output": "您好"}
    (d / "b.json").write_text(bom + json.dumps([row], ensure_ascii=False), encoding="utf-8")
    (d / "b.jsonl").write_text(bom + json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    (d / "b.csv").write_text(bom + "instruction,input,output\n你好,,您好\n", encoding="utf-8")
    assert (d / "b.json").read_bytes().startswith(b"\xef\xbb\xbf")
    expected = [[{"role": "user", "content": "你好"}, {"role": "assistant", "content": "您好"}]]
    for name in ("j", "l", "c"):
        assert messages(load_one(d, name)) == expected, name


def test_placeholder_fill(tmp_path):
    rows = [{"instruction": "Who are you?", "input": "", "output": "I am {{name}}, made by {{author}}.",
             "system": "You are {{name}}."}]
    d = make_dir(tmp_path, {"ds": {"file_name": "i.json"}}, {"i.json": rows})
    [sample] = load_one(d, "ds", fill={"name": "Nova", "author": "ACME"})
    assert sample.system == "You are Nova."
    assert sample.messages[1]["content"] == "I am Nova, made by ACME."
    [raw] = load_one(d, "ds")  # no fill: placeholders stay
    assert raw.messages[1]["content"] == "I am {{name}}, made by {{author}}."


def test_directory_dataset(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "parts"}},
                 {"parts/a.json": ALPACA_ROWS[:1], "parts/b.jsonl": ALPACA_ROWS[1:], "parts/readme.txt": "x"})
    assert messages(load_one(d, "ds")) == ALPACA_MESSAGES
    assert "ds" in list_datasets(d)


def test_list_datasets_filters_unusable(tmp_path):
    reg = {"a": {"file_name": "a.json"}, "hub": {"hf_hub_url": "org/data"}, "txt": {"file_name": "x.txt"},
           "bad": "nope", "b": {"file_name": "b.parquet"}}
    d = make_dir(tmp_path, reg)
    assert list_datasets(d) == ["a", "b"]
    assert list_datasets(tmp_path / "missing") == []


# -- errors ---------------------------------------------------------------------

def _data_error(d: Path, name: str, **kw) -> DataError:
    with pytest.raises(DataError) as info:
        load_samples(d, [name], **kw)
    return info.value


def test_invalid_json_names_file_and_line(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "bad.json"}},
                 {"bad.json": '[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output": "d"}\n]'})
    err = _data_error(d, "ds")
    assert err.file == "bad.json"
    assert "bad.json" in str(err)
    assert "line 3" in str(err)


def test_invalid_jsonl_line_names_row(tmp_path):
    good = json.dumps(ALPACA_ROWS[0])
    d = make_dir(tmp_path, {"ds": {"file_name": "bad.jsonl"}}, {"bad.jsonl": f"{good}\n{good}\n{{oops\n{good}\n"})
    err = _data_error(d, "ds")
    assert (err.file, err.row) == ("bad.jsonl", 3)
    assert str(err).startswith("bad.jsonl, row 3: not valid JSON")


def test_jsonl_rows_are_numbered_by_line(tmp_path):
    # blank lines are skipped, but a bad row is still named by its line in the file
    good = json.dumps(ALPACA_ROWS[0])
    bad = json.dumps({"instruction": "no answer"})
    d = make_dir(tmp_path, {"ds": {"file_name": "r.jsonl"}}, {"r.jsonl": f"{good}\n\n{bad}\n"})
    err = _data_error(d, "ds")
    assert (err.row, err.field) == (3, "output")


def test_missing_output_names_row_and_field(tmp_path):
    rows = [ALPACA_ROWS[0], ALPACA_ROWS[1], {"instruction": "no answer", "input": ""}]
    d = make_dir(tmp_path, {"ds": {"file_name": "m.json"}}, {"m.json": rows})
    err = _data_error(d, "ds")
    assert (err.file, err.row, err.field) == ("m.json", 3, "output")
    assert str(err) == "m.json, row 3, field 'output': missing"


def test_missing_custom_column_names_that_column(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "m.json", "columns": {"response": "answer"}}},
                 {"m.json": [{"instruction": "q", "output": "not the configured column"}]})
    err = _data_error(d, "ds")
    assert (err.row, err.field) == (1, "answer")


@pytest.mark.parametrize("value", [{"text": "x"}, ["x"], True], ids=["object", "list", "bool"])
def test_non_string_field(tmp_path, value):
    d = make_dir(tmp_path, {"ds": {"file_name": "n.json"}},
                 {"n.json": [ALPACA_ROWS[0], {"instruction": "q", "output": value}]})
    err = _data_error(d, "ds")
    assert (err.row, err.field) == (2, "output")
    assert "must be text" in str(err)


def test_row_not_an_object(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "n.json"}}, {"n.json": [ALPACA_ROWS[0], "just text"]})
    err = _data_error(d, "ds")
    assert err.row == 2 and "must be an object" in str(err)


def test_json_file_not_a_list(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "o.json"}}, {"o.json": {"instruction": "q", "output": "a"}})
    err = _data_error(d, "ds")
    assert err.file == "o.json" and "list" in str(err)


def test_bad_history(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "h.json"}},
                 {"h.json": [{"instruction": "q", "output": "a", "history": [["only question"]]}]})
    err = _data_error(d, "ds")
    assert (err.row, err.field) == (1, "history")


def test_empty_instruction(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "e.json"}}, {"e.json": [{"instruction": " ", "output": "a"}]})
    err = _data_error(d, "ds")
    assert (err.row, err.field) == (1, "instruction")


@pytest.mark.parametrize(
    ("turns", "reason"),
    [
        pytest.param([{"from": "human", "value": "q"}], "no assistant answer", id="only-user"),
        pytest.param([{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}, {"from": "human", "value": "q2"}],
                     "no assistant answer", id="ends-with-user"),
        pytest.param([{"from": "system", "value": "s"}], "no assistant answer", id="only-system"),
        pytest.param([{"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}], "turn 1 should be a user turn",
                     id="assistant-first"),
        pytest.param([{"from": "human", "value": "q"}, {"from": "human", "value": "q2"}, {"from": "gpt", "value": "a"}],
                     "turn 2 should be a assistant turn", id="two-users"),
        pytest.param([{"from": "human", "value": "q"}, {"from": "system", "value": "s"}, {"from": "gpt", "value": "a"}],
                     "turn 2: a system turn may only come first", id="late-system"),
        pytest.param([{"from": "human", "value": "q"}, {"from": "robot", "value": "a"}], "unknown role 'robot'",
                     id="unknown-role"),
        pytest.param([{"from": "human", "value": "q"}, {"from": "gpt", "value": None}], "turn 2 content must be text",
                     id="null-content"),
        pytest.param([], "non-empty list", id="empty"),
        pytest.param("hello", "non-empty list", id="not-a-list"),
        pytest.param(["hello"], "turn 1 must be an object", id="turn-not-object"),
    ],
)
def test_sharegpt_errors(tmp_path, turns, reason):
    d = make_dir(tmp_path, {"ds": {"file_name": "s.json", "formatting": "sharegpt"}},
                 {"s.json": [SHAREGPT_ROW, {"conversations": turns}]})
    err = _data_error(d, "ds")
    assert (err.file, err.row, err.field) == ("s.json", 2, "conversations")
    assert reason in err.reason


def test_unregistered_dataset(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "a.json"}}, {"a.json": ALPACA_ROWS})
    err = _data_error(d, "other")
    assert "'other' is not registered" in str(err)


def test_missing_registry(tmp_path):
    with pytest.raises(DataError, match="no dataset_info.json"):
        load_samples(tmp_path, ["ds"])


@pytest.mark.parametrize("content", ['["a", "b"]', '"text"', "42", "null"])
def test_registry_not_an_object(tmp_path, content):
    d = make_dir(tmp_path, content)
    with pytest.raises(DataError, match="must be a JSON object"):
        resolve_dataset(d, "ds")


def test_registry_invalid_json(tmp_path):
    d = make_dir(tmp_path, '{"ds": {"file_name": "a.json"},\n}')
    with pytest.raises(DataError, match=r"dataset_info\.json: not valid JSON \(line 2"):
        resolve_dataset(d, "ds")


def test_missing_file(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "gone.json"}})
    err = _data_error(d, "ds")
    assert err.field == "ds" and "'gone.json' does not exist" in str(err)


@pytest.mark.parametrize(
    "entry",
    [{"hf_hub_url": "org/ds"}, {"file_name": 5}, "a.json", {"file_name": "a.json", "formatting": "openai"},
     {"file_name": "a.json", "columns": ["prompt"]}],
    ids=["hub", "non-text-file-name", "entry-not-object", "bad-formatting", "columns-not-object"],
)
def test_bad_registry_entries(tmp_path, entry):
    d = make_dir(tmp_path, {"ds": entry}, {"a.json": ALPACA_ROWS})
    err = _data_error(d, "ds")
    assert err.field == "ds"
    assert err.file.endswith("dataset_info.json")


def test_unsupported_file_type(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "a.txt"}}, {"a.txt": "hello"})
    assert "unsupported file type" in str(_data_error(d, "ds"))


def test_not_utf8(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "a.json"}},
                 {"a.json": '[{"instruction": "caf\xe9"}]'.encode("latin-1")})
    assert "not UTF-8" in str(_data_error(d, "ds"))


def test_empty_dataset(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "a.json"}}, {"a.json": []})
    assert "has no samples" in str(_data_error(d, "ds"))


# -- file names may not escape the data folder ----------------------------------------

SECRET_ROWS = [{"instruction": "secret", "output": "leaked"}]


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(SECRET_ROWS), encoding="utf-8")
    return outside


def _assert_refused(d: Path, name: str = "ds") -> DataError:
    err = _data_error(d, name)
    assert err.field == name
    assert "leaked" not in str(err) and "secret" not in str(err)
    return err


def test_dotdot_escape_refused(tmp_path):
    _outside(tmp_path)
    d = make_dir(tmp_path, {"ds": {"file_name": "../outside.json"}})
    assert "outside" in str(_assert_refused(d))


def test_absolute_path_refused(tmp_path):
    outside = _outside(tmp_path)
    d = make_dir(tmp_path, {"ds": {"file_name": str(outside)}})
    assert "absolute" in str(_assert_refused(d))


def test_home_path_refused(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "~/outside.json"}})
    _assert_refused(d)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlink_outside_refused(tmp_path):
    outside = _outside(tmp_path)
    d = make_dir(tmp_path, {"ds": {"file_name": "link.json"}, "dirlink": {"file_name": "sub/outside.json"}})
    (d / "link.json").symlink_to(outside)
    (d / "sub").symlink_to(tmp_path, target_is_directory=True)
    assert "outside" in str(_assert_refused(d))
    _assert_refused(d, "dirlink")
    with pytest.raises(DataError):
        preview_page(d, "ds", 0)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlink_inside_allowed(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "link.json"}}, {"real.json": ALPACA_ROWS})
    (d / "link.json").symlink_to(d / "real.json")
    assert messages(load_one(d, "ds")) == ALPACA_MESSAGES


# -- max_samples and preview --------------------------------------------------------

def _numbered(prefix: str, n: int) -> list[dict]:
    return [{"instruction": f"{prefix} q{i}", "input": "", "output": f"{prefix} a{i}"} for i in range(1, n + 1)]


def test_max_samples_caps_each_dataset(tmp_path):
    d = make_dir(tmp_path, {"a": {"file_name": "a.json"}, "b": {"file_name": "b.jsonl"}},
                 {"a.json": _numbered("A", 5), "b.jsonl": _numbered("B", 4)})
    samples = load_samples(d, ["a", "b"], max_samples=3)
    assert [s.messages[0]["content"] for s in samples] == ["A q1", "A q2", "A q3", "B q1", "B q2", "B q3"]
    assert len(load_samples(d, ["a", "b"], max_samples=0)) == 9
    assert len(load_samples(d, ["a", "b"], max_samples=100)) == 9
    # a bad row after the cap is never read
    (d / "a.json").write_text(json.dumps(_numbered("A", 2) + [{"instruction": "no answer"}]), encoding="utf-8")
    assert len(load_samples(d, ["a"], max_samples=2)) == 2
    with pytest.raises(DataError):
        load_samples(d, ["a"], max_samples=3)


def test_preview_page(tmp_path):
    rows = _numbered("R", 23)
    rows[11] = {"instruction": "broken row"}  # row 12: no output
    rows[3] = {"instruction": "q4", "input": "ctx", "output": "a4", "system": "sys4", "history": [["h", "ha"]]}
    d = make_dir(tmp_path, {"ds": {"file_name": "p.json"}}, {"p.json": rows})

    total, page0 = preview_page(d, "ds", 0, page_size=10)
    assert total == 23
    assert [r["row"] for r in page0] == list(range(1, 11))
    assert page0[0] == {"row": 1, "system": "", "prompt": "R q1", "response": "R a1", "error": ""}
    assert page0[3] == {"row": 4, "system": "sys4", "prompt": "[user] h\n[assistant] ha\nq4\nctx",
                        "response": "a4", "error": ""}

    total, page1 = preview_page(d, "ds", 1, page_size=10)
    assert total == 23
    assert [r["row"] for r in page1] == list(range(11, 21))
    bad = page1[1]
    assert bad["row"] == 12
    assert bad["prompt"] == bad["response"] == ""
    assert "missing" in str(bad["error"]) and "output" in str(bad["error"])
    assert all(r["error"] == "" for r in page1 if r["row"] != 12)

    total, page2 = preview_page(d, "ds", 2, page_size=10)
    assert (total, [r["row"] for r in page2]) == (23, [21, 22, 23])
    assert preview_page(d, "ds", 3, page_size=10) == (23, [])
    assert preview_page(d, "ds", -1, page_size=10)[1] == page0


def test_preview_page_fills_placeholders(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "i.json"}},
                 {"i.json": [{"instruction": "who?", "output": "{{name}} by {{author}}"}]})
    _, rows = preview_page(d, "ds", 0, fill={"name": "Nova", "author": "ACME"})
    assert rows[0]["response"] == "Nova by ACME"


def test_preview_page_sharegpt(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "s.json", "formatting": "sharegpt"}}, {"s.json": [SHAREGPT_ROW]})
    total, rows = preview_page(d, "ds", 0)
    assert total == 1
    assert rows == [{"row": 1, "system": "You are terse.", "prompt": "[user] Hello\n[assistant] Hi.\nBye",
                     "response": "Bye.", "error": ""}]


# -- the shipped demo data ----------------------------------------------------------

DEMO_MINIMUMS = {
    "identity": 80,
    "general_mix": 30,
    "alpaca_demo_en": 50,
    "alpaca_demo_zh": 50,
    "sharegpt_demo": 25,
    "messages_demo": 15,
    "arithmetic_answer": 200,  # GRPO's demo (a conversation dataset: SFT reads it too)
}
_CJK = re.compile(r"[\u4e00-\u9fff]")


# Demo datasets made for another stage than sft: name -> (stage, rows).
DEMO_STAGE_DATASETS = {
    "dpo_demo": ("dpo", 40),
    "dpo_demo_sharegpt": ("dpo", 10),
    "kto_demo": ("kto", 40),
    "pt_demo": ("pt", 30),
}


def test_demo_registry_lists_all():
    assert set(list_datasets(DEFAULT_DATA_DIR)) == set(DEMO_MINIMUMS) | set(DEMO_STAGE_DATASETS)


@pytest.mark.parametrize(("name", "minimum"), sorted(DEMO_MINIMUMS.items()))
def test_demo_dataset_loads(name, minimum):
    samples = load_samples(DEFAULT_DATA_DIR, [name], fill={"name": "Nova", "author": "ACME"})
    assert len(samples) >= minimum
    for s in samples:
        assert s.messages and s.messages[-1]["role"] == "assistant"
        assert all(m["content"].strip() for m in s.messages)
        assert [m["role"] for m in s.messages] == ["user", "assistant"] * (len(s.messages) // 2)
        assert "{{" not in "".join(m["content"] for m in s.messages) + s.system
    total, page = preview_page(DEFAULT_DATA_DIR, name, 0)
    assert total == len(samples)
    assert all(r["error"] == "" for r in page)


def test_demo_identity_is_bilingual_with_placeholders():
    raw = load_samples(DEFAULT_DATA_DIR, ["identity"])
    assert len(raw) >= 80
    answers = [s.messages[-1]["content"] for s in raw]
    assert all("{{name}}" in a for a in answers)
    prompts = [s.messages[0]["content"] for s in raw]
    chinese = [p for p in prompts if _CJK.search(p)]
    english = [p for p in prompts if re.search(r"[A-Za-z]", p) and not _CJK.search(p)]
    assert chinese and english
    filled = load_samples(DEFAULT_DATA_DIR, ["identity"], fill={"name": "Nova", "author": "ACME"})
    assert all("Nova" in s.messages[-1]["content"] for s in filled)
    assert any("ACME" in s.messages[-1]["content"] for s in filled)


def test_demo_multi_turn_datasets_have_multi_turn_samples():
    for name in ("sharegpt_demo", "messages_demo"):
        samples = load_samples(DEFAULT_DATA_DIR, [name])
        assert any(len(s.messages) >= 4 for s in samples), name
    assert any(s.system for s in load_samples(DEFAULT_DATA_DIR, ["messages_demo"]))


# -- training stages: pt, preference (rm/dpo/orpo), kto -------------------------------

FILL = {"name": "Nova", "author": "ACME"}
PREFERENCE = ("rm", "dpo", "orpo")


@pytest.mark.parametrize(("name", "stage", "rows"), [(n, *v) for n, v in sorted(DEMO_STAGE_DATASETS.items())])
def test_demo_stage_dataset_loads_and_previews(name, stage, rows):
    assert len(load_samples(DEFAULT_DATA_DIR, [name], fill=FILL, stage=stage)) == rows
    for page in range(rows // 10 + 1):
        total, shown = preview_page(DEFAULT_DATA_DIR, name, page, fill=FILL)
        assert total == rows
        assert all(r["error"] == "" and "{{" not in json.dumps(r, ensure_ascii=False) for r in shown)


def _all_text(sample: Sample) -> str:
    return ("".join(m["content"] for m in sample.messages) + sample.system + (sample.rejected or "")
            + (sample.text or ""))


@pytest.mark.parametrize("stage", PREFERENCE)
def test_demo_dpo_alpaca(stage):
    samples = load_samples(DEFAULT_DATA_DIR, ["dpo_demo"], fill=FILL, stage=stage)
    assert len(samples) == 40
    for s in samples:
        assert [m["role"] for m in s.messages] == ["user", "assistant"]
        assert s.rejected and s.rejected != s.messages[-1]["content"]
        assert s.kto_tag is None and s.text is None
        assert "{{" not in _all_text(s)
    chosen = [s.messages[-1]["content"] for s in samples]
    assert 15 <= sum("Nova" in c for c in chosen) <= 25  # about half are identity questions
    assert any("ACME" in c for c in chosen)
    assert not any("Nova" in s.rejected for s in samples)  # the rejected identity is a wrong one
    prompts = [s.messages[0]["content"] for s in samples]
    assert any(_CJK.search(p) for p in prompts) and any(not _CJK.search(p) for p in prompts)
    assert all(len(_all_text(s)) < 400 for s in samples)  # short answers keep CPU training quick


def test_demo_dpo_placeholders_unfilled_without_fill():
    samples = load_samples(DEFAULT_DATA_DIR, ["dpo_demo"], stage="dpo")
    assert any("{{name}}" in s.messages[-1]["content"] for s in samples)
    assert any("{{author}}" in s.messages[-1]["content"] for s in samples)


def test_demo_dpo_sharegpt():
    samples = load_samples(DEFAULT_DATA_DIR, ["dpo_demo_sharegpt"], fill=FILL, stage="dpo")
    assert len(samples) == 10
    assert any(len(s.messages) >= 4 for s in samples)  # a multi-turn prompt
    assert any(s.system for s in samples)
    for s in samples:
        assert [m["role"] for m in s.messages] == ["user", "assistant"] * (len(s.messages) // 2)
        assert s.rejected and "{{" not in _all_text(s)
    assert any("Nova" in s.messages[-1]["content"] for s in samples)
    pair = samples[0]
    assert pair.rejected_messages()[:-1] == pair.chat_messages()[:-1]
    assert pair.rejected_messages()[-1] == {"role": "assistant", "content": pair.rejected}


def test_demo_kto():
    samples = load_samples(DEFAULT_DATA_DIR, ["kto_demo"], fill=FILL, stage="kto")
    assert len(samples) == 40
    tags = [s.kto_tag for s in samples]
    assert all(isinstance(t, bool) for t in tags)
    assert 10 <= tags.count(True) <= 30
    assert all(s.rejected is None and s.messages[-1]["role"] == "assistant" for s in samples)
    assert all("{{" not in _all_text(s) for s in samples)
    good = [s.messages[-1]["content"] for s in samples if s.kto_tag]
    assert any("Nova" in a for a in good)
    assert not any("Nova" in s.messages[-1]["content"] for s in samples if not s.kto_tag)


def test_demo_pt():
    samples = load_samples(DEFAULT_DATA_DIR, ["pt_demo"], fill=FILL, stage="pt")
    assert len(samples) == 30
    for s in samples:
        assert s.text and s.text.strip() and s.messages == [] and "{{" not in s.text
        assert s.pretrain_text() == s.text
    assert any("Nova" in s.text for s in samples) and any("ACME" in s.text for s in samples)
    assert any(_CJK.search(s.text) for s in samples)


def test_pt_dataset_refused_for_sft():
    # pre-training text has no answers; sft names the missing response column
    err = _data_error(DEFAULT_DATA_DIR, "pt_demo")
    assert (err.file, err.row, err.field) == ("pt_demo.json", 1, "output")


def test_kto_from_ranking_data_doubles_samples():
    pairs = load_samples(DEFAULT_DATA_DIR, ["dpo_demo"], fill=FILL, stage="dpo")
    samples = load_samples(DEFAULT_DATA_DIR, ["dpo_demo"], fill=FILL, stage="kto")
    assert len(samples) == 2 * len(pairs)
    for pair, good, bad in zip(pairs, samples[0::2], samples[1::2]):
        assert (good.kto_tag, bad.kto_tag) == (True, False)
        assert good.messages == pair.messages
        assert bad.messages[:-1] == pair.messages[:-1]
        assert bad.messages[-1] == {"role": "assistant", "content": pair.rejected}
        assert good.rejected is None and bad.rejected is None
    # max_samples counts rows: each row still gives its pair
    assert len(load_samples(DEFAULT_DATA_DIR, ["dpo_demo"], max_samples=3, stage="kto")) == 6


def test_ranking_data_for_sft_uses_chosen():
    samples = load_samples(DEFAULT_DATA_DIR, ["dpo_demo", "dpo_demo_sharegpt"], 0, FILL)  # positional, sft default
    pairs = load_samples(DEFAULT_DATA_DIR, ["dpo_demo", "dpo_demo_sharegpt"], 0, FILL, "dpo")
    assert [s.messages for s in samples] == [p.messages for p in pairs]
    assert all(s.rejected is None and s.kto_tag is None for s in samples)


def test_kto_data_for_sft_ignores_labels():
    samples = load_samples(DEFAULT_DATA_DIR, ["kto_demo"], stage="sft")
    assert len(samples) == 40 and all(s.kto_tag is None for s in samples)


def test_pt_from_alpaca_and_sharegpt(tmp_path):
    reg = {"al": {"file_name": "a.json"}, "sg": {"file_name": "s.json", "formatting": "sharegpt"},
           "txt": {"file_name": "t.csv", "columns": {"prompt": "text"}}}
    d = make_dir(tmp_path, reg, {"a.json": ALPACA_ROWS, "s.json": [SHAREGPT_ROW],
                                 "t.csv": "text\nLine one.\n\"Two,\nlines\"\n"})
    assert [s.text for s in load_one(d, "al", stage="pt")] == ["Translate to French\ncat\nchat", "Say hi\nHi!"]
    assert [s.text for s in load_one(d, "sg", stage="pt")] == ["You are terse.\nHello\nHi.\nBye\nBye."]
    assert [s.text for s in load_one(d, "txt", stage="pt")] == ["Line one.", "Two,\nlines"]
    [sample] = load_one(d, "sg")  # an sft sample's conversation as pre-training text
    assert sample.text is None and sample.pretrain_text() == "You are terse.\nHello\nHi.\nBye\nBye."


def test_pt_without_response_column_and_fill(tmp_path):
    d = make_dir(tmp_path, {"ds": {"file_name": "p.jsonl", "columns": {"prompt": "text"}}},
                 {"p.jsonl": [{"text": "{{name}} was made by {{author}}."}, {"text": "Plain text."}]})
    assert [s.text for s in load_one(d, "ds", stage="pt", fill=FILL)] == ["Nova was made by ACME.", "Plain text."]


@pytest.mark.parametrize(
    ("files", "entry", "field", "reason"),
    [
        pytest.param({"p.json": [{"text": "ok"}, {"text": "  "}]}, {"columns": {"prompt": "text"}}, "text",
                     "empty text", id="empty-text"),
        pytest.param({"p.json": [{"text": "ok"}, {"body": "no text column"}]}, {"columns": {"prompt": "text"}}, "text",
                     "missing", id="missing-text"),
        pytest.param({"p.json": [{"text": "ok"}, {"text": ["a"]}]}, {"columns": {"prompt": "text"}}, "text",
                     "must be text", id="text-not-text"),
        pytest.param({"p.json": [SHAREGPT_ROW, {"conversations": [{"from": "human", "value": 5}]}]},
                     {"formatting": "sharegpt"}, "conversations", "turn 1 must be an object with text",
                     id="sharegpt-turn-not-text"),
    ],
)
def test_pt_errors(tmp_path, files, entry, field, reason):
    d = make_dir(tmp_path, {"ds": {"file_name": "p.json", **entry}}, files)
    err = _data_error(d, "ds", stage="pt")
    assert (err.file, err.row, err.field) == ("p.json", 2, field)
    assert reason in err.reason


@pytest.mark.parametrize("stage", PREFERENCE)
def test_non_ranking_dataset_refused_for_preference_stages(stage):
    err = _data_error(DEFAULT_DATA_DIR, "identity", stage=stage)
    assert err.field == "identity" and err.file.endswith("dataset_info.json")
    assert f"stage {stage} needs preference data with chosen/rejected answers" in str(err)
    assert '"ranking": true' in str(err)


def test_unlabelled_dataset_refused_for_kto():
    err = _data_error(DEFAULT_DATA_DIR, "sharegpt_demo", stage="kto")
    assert err.field == "sharegpt_demo"
    assert '"kto_tag"' in str(err) and '"ranking": true' in str(err)


def test_unknown_stage():
    with pytest.raises(DataError, match="unknown stage 'nonsense'"):
        load_samples(DEFAULT_DATA_DIR, ["identity"], stage="nonsense")


@pytest.mark.parametrize("value", [True, "true"], ids=["bool", "text"])
def test_registry_ranking_flag(tmp_path, value):
    d = make_dir(tmp_path, {"ds": {"file_name": "r.json", "ranking": value}},
                 {"r.json": [{"instruction": "q", "chosen": "good", "rejected": "bad"}]})
    if value is True:
        assert resolve_dataset(d, "ds").ranking is True
        assert resolve_dataset(DEFAULT_DATA_DIR, "identity").ranking is False
        return
    err = _data_error(d, "ds", stage="dpo")
    assert err.field == "ds" and "ranking must be true or false" in str(err)


def test_ranking_alpaca_custom_columns_and_history(tmp_path):
    reg = {"ds": {"file_name": "r.json", "ranking": True, "columns": {"chosen": "better", "rejected": "worse"}}}
    row = {"instruction": "And 2+2?", "history": [["1+1?", "2"]], "system": "Math.", "better": "4", "worse": "5"}
    d = make_dir(tmp_path, reg, {"r.json": [row]})
    [s] = load_one(d, "ds", stage="rm")
    assert s.system == "Math." and s.rejected == "5"
    assert s.messages[-2:] == [{"role": "user", "content": "And 2+2?"}, {"role": "assistant", "content": "4"}]
    assert len(s.messages) == 4


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        pytest.param({"instruction": "q", "chosen": "good"}, "rejected", "missing", id="missing-rejected"),
        pytest.param({"instruction": "q", "rejected": "bad"}, "chosen", "missing", id="missing-chosen"),
        pytest.param({"instruction": "q", "output": "a"}, "chosen", "missing", id="sft-row"),
        pytest.param({"instruction": "q", "chosen": "good", "rejected": {"from": "gpt", "value": "bad"}}, "rejected",
                     "must be text", id="rejected-object"),
        pytest.param({"instruction": "q", "chosen": ["good"], "rejected": "bad"}, "chosen", "must be text",
                     id="chosen-list"),
    ],
)
def test_ranking_alpaca_errors(tmp_path, row, field, reason):
    ok = {"instruction": "q0", "chosen": "good", "rejected": "bad"}
    d = make_dir(tmp_path, {"ds": {"file_name": "r.json", "ranking": True}}, {"r.json": [ok, row]})
    for stage in ("dpo", "sft"):  # a ranking dataset's rows are checked whatever the stage
        err = _data_error(d, "ds", stage=stage)
        assert (err.file, err.row, err.field) == ("r.json", 2, field)
        assert reason in err.reason


SG_PROMPT = [{"from": "human", "value": "q"}]
SG_GOOD = {"conversations": SG_PROMPT, "chosen": {"from": "gpt", "value": "good"},
           "rejected": {"from": "gpt", "value": "bad"}}


def test_ranking_sharegpt_openai_layout(tmp_path):
    reg = {"ds": {"file_name": "r.jsonl", "formatting": "sharegpt", "ranking": True,
                  "columns": {"messages": "messages"},
                  "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                           "assistant_tag": "assistant"}}}
    row = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}],
           "chosen": {"role": "assistant", "content": "good"}, "rejected": {"role": "assistant", "content": "bad"}}
    d = make_dir(tmp_path, reg, {"r.jsonl": [row]})
    [s] = load_one(d, "ds", stage="orpo")
    assert (s.system, s.rejected) == ("S", "bad")
    assert s.messages == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}]


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        pytest.param({"chosen": {"from": "human", "value": "good"}}, "chosen",
                     "must be an assistant message, got role 'human'", id="chosen-user-role"),
        pytest.param({"rejected": {"from": "system", "value": "bad"}}, "rejected", "must be an assistant message",
                     id="rejected-system-role"),
        pytest.param({"chosen": "good"}, "chosen", 'must be one message object like {"from": "gpt", "value": "..."}',
                     id="chosen-string"),
        pytest.param({"rejected": None}, "rejected", "missing", id="missing-rejected"),
        pytest.param({"chosen": {"from": "gpt", "value": 3}}, "chosen", "content must be text", id="chosen-not-text"),
        pytest.param({"conversations": SG_PROMPT + [{"from": "gpt", "value": "a"}]}, "conversations",
                     "must end with the user's question", id="prompt-ends-with-answer"),
        pytest.param({"conversations": [{"from": "gpt", "value": "a"}]}, "conversations",
                     "turn 1 should be a user turn", id="prompt-starts-with-answer"),
    ],
)
def test_ranking_sharegpt_errors(tmp_path, change, field, reason):
    d = make_dir(tmp_path, {"ds": {"file_name": "r.json", "formatting": "sharegpt", "ranking": True}},
                 {"r.json": [SG_GOOD, {**SG_GOOD, **change}]})
    err = _data_error(d, "ds", stage="dpo")
    assert (err.file, err.row, err.field) == ("r.json", 2, field)
    assert reason in err.reason


KTO_REG = {"ds": {"file_name": "k.json", "formatting": "sharegpt",
                  "columns": {"messages": "messages", "kto_tag": "label"}}}


def _kto_row(label) -> dict:
    return {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "label": label}


@pytest.mark.parametrize(("label", "tag"), [(True, True), (False, False), ("true", True), (" False ", False),
                                            (1, True), (0, False), ("1", True), ("0", False), (1.0, True)])
def test_kto_labels_accepted(tmp_path, label, tag):
    d = make_dir(tmp_path, KTO_REG, {"k.json": [_kto_row(label)]})
    [s] = load_one(d, "ds", stage="kto")
    assert s.kto_tag is tag


@pytest.mark.parametrize(("label", "reason"), [("yes", "must be true or false"), (2, "must be true or false"),
                                               ([True], "must be true or false"), (None, "missing")])
def test_kto_bad_label(tmp_path, label, reason):
    d = make_dir(tmp_path, KTO_REG, {"k.json": [_kto_row(True), _kto_row(label)]})
    err = _data_error(d, "ds", stage="kto")
    assert (err.file, err.row, err.field) == ("k.json", 2, "label")
    assert reason in err.reason


def test_kto_labels_from_csv(tmp_path):
    reg = {"ds": {"file_name": "k.csv", "columns": {"kto_tag": "ok"}}}
    d = make_dir(tmp_path, reg, {"k.csv": "instruction,output,ok\nq1,a1,true\nq2,a2,0\nq3,a3,maybe\n"})
    err = _data_error(d, "ds", stage="kto")
    assert (err.row, err.field) == (3, "ok")
    assert [s.kto_tag for s in load_one(d, "ds", stage="kto", max_samples=2)] == [True, False]


# -- preview of ranking, kto and pre-training data -------------------------------------------

def test_preview_ranking():
    total, rows = preview_page(DEFAULT_DATA_DIR, "dpo_demo", 0, page_size=2, fill=FILL)
    assert total == 40
    assert list(rows[0]) == ["row", "system", "prompt", "chosen", "rejected", "error"]
    assert rows[0]["prompt"] == "Who are you?" and "Nova" in rows[0]["chosen"] and "SmolLM" in rows[0]["rejected"]
    _, rows = preview_page(DEFAULT_DATA_DIR, "dpo_demo_sharegpt", 0, fill=FILL)
    multi = next(r for r in rows if "[user]" in r["prompt"])
    assert multi["prompt"].startswith("[user] Hello!\n[assistant] ") and multi["chosen"] and multi["rejected"]


def test_preview_kto_and_pt():
    _, rows = preview_page(DEFAULT_DATA_DIR, "kto_demo", 0, page_size=4)
    assert list(rows[0]) == ["row", "system", "prompt", "response", "kto_tag", "error"]
    assert [r["kto_tag"] for r in rows] == [True, False, True, False]
    _, rows = preview_page(DEFAULT_DATA_DIR, "pt_demo", 0, page_size=3, fill=FILL)  # guessed from columns
    assert [list(r) for r in rows] == [["row", "text", "error"]] * 3
    assert rows[0]["text"].startswith("Nova is an AI assistant")
    _, rows = preview_page(DEFAULT_DATA_DIR, "identity", 0, page_size=1, stage="pt")  # any data, read as pt
    assert rows[0]["text"].startswith("Who are you?\nI am {{name}}")
    _, rows = preview_page(DEFAULT_DATA_DIR, "kto_demo", 0, page_size=1, stage="sft")
    assert list(rows[0]) == ["row", "system", "prompt", "response", "error"]


def test_preview_bad_rows_and_stage_mismatch(tmp_path):
    d = make_dir(tmp_path, KTO_REG, {"k.json": [_kto_row(True), _kto_row("maybe")]})
    _, rows = preview_page(d, "ds", 0)
    error = str(rows[1]["error"])
    assert rows[1]["kto_tag"] == "" and "label" in error and "must be true or false" in error
    with pytest.raises(DataError, match="needs preference data"):
        preview_page(d, "ds", 0, stage="dpo")
