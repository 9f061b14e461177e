"""Datasets: registry, json/jsonl/csv/parquet readers, alpaca/sharegpt normalisation, errors, preview, demo data."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from engine.data import DataError, Sample, list_datasets, load_samples, preview_page, resolve_dataset
from engine.paths import DEFAULT_DATA_DIR

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
    assert messages(load_one(d, "ds")) == [[{"role": "user", "content": "Ping"}, {"role": "assistant", "content": "Pong"}]]


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
    d = make_dir(tmp_path, {"ds": {"file_name": "a.json"}}, {"a.json": '[{"instruction": "caf\xe9"}]'.encode("latin-1")})
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
    assert "missing" in bad["error"] and "output" in bad["error"]
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
}
_CJK = re.compile(r"[\u4e00-\u9fff]")


def test_demo_registry_lists_all():
    assert set(list_datasets(DEFAULT_DATA_DIR)) == set(DEMO_MINIMUMS)


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
