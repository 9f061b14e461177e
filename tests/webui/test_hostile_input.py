"""Hostile and broken input (issue 5): every case gets a message naming what is wrong and where (file, row, field),
the app's handlers answer instead of crashing, and nothing already saved is changed.

Cases test_data.py / test_config.py / test_rundir.py already cover exactly are not repeated here:
invalid JSON and JSONL lines (test_invalid_json_names_file_and_line, test_invalid_jsonl_line_names_row), a UTF-8
BOM on json/jsonl/csv/dataset_info.json (test_utf8_bom_files), missing and custom columns
(test_missing_output_names_row_and_field, test_missing_custom_column_names_that_column), lists/objects/bools
where text is expected (test_non_string_field), a sharegpt conversation without an assistant answer
(test_sharegpt_errors), ``../``, absolute, ``~`` and symlinked file_name entries (test_dotdot_escape_refused,
test_absolute_path_refused, test_home_path_refused, test_symlink_outside_refused), dataset_info.json that is not
JSON or whose entry is not an object (test_registry_invalid_json, test_bad_registry_entries), extra_args that is a
list, broken JSON or a forbidden key (test_extra_args_allow_list), and confined() itself (test_confined_refuses).
"""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from pathlib import Path
from typing import get_type_hints

import gradio as gr
import pytest

from engine.core.config import ConfigError, RunConfig, iter_fields
from engine.core.data import DataError, Sample, list_datasets, load_samples, preview_page, read_registry, scan_registry
from engine.core.paths import DEFAULT_DATA_DIR
from tests.helpers.handlers import call_as_gradio

# Refused Save/Load arguments raise gr.Warning, which outside a browser session is a UserWarning.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ROW = {"instruction": "Say hi", "input": "", "output": "Hi!"}


def data_dir(tmp_path: Path, registry, files: dict | None = None) -> Path:
    """A data folder: dataset_info.json (an object, or raw text) and files (name -> rows, text or bytes)."""
    d = tmp_path / "data"
    d.mkdir(parents=True, exist_ok=True)
    reg = registry if isinstance(registry, str) else json.dumps(registry)
    (d / "dataset_info.json").write_text(reg, encoding="utf-8")
    for name, content in (files or {}).items():
        if isinstance(content, bytes):
            (d / name).write_bytes(content)
        elif isinstance(content, str):
            (d / name).write_text(content, encoding="utf-8")
        else:
            (d / name).write_text(json.dumps(content), encoding="utf-8")
    return d


def data_error(d: Path, name: str = "ds", **kw) -> DataError:
    with pytest.raises(DataError) as info:
        load_samples(d, [name], **kw)
    return info.value


def snapshot(*roots: Path) -> dict[str, bytes]:
    """Every file under ``roots`` with its bytes (symlinks as their target), to prove nothing was touched."""
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_symlink():
                found[str(path)] = b"-> " + os.readlink(path).encode()
            elif path.is_file():
                found[str(path)] = path.read_bytes()
    return found


# -- broken dataset files ----------------------------------------------------------------------------------

def _parquet_bytes(tmp_path: Path) -> bytes:
    import pandas as pd

    path = tmp_path / "real.parquet"
    pd.DataFrame([ROW] * 50).to_parquet(path, index=False)
    return path.read_bytes()


@pytest.mark.parametrize("file_name, content", [
    ("e.json", ""), ("e.jsonl", ""), ("e.csv", ""), ("e.parquet", ""), ("blank.json", " \n\t\n"),
])
def test_empty_file_is_called_empty(tmp_path, file_name, content):
    # Before: "Expecting value", "No columns to parse", a pyarrow message, or an empty preview for jsonl.
    d = data_dir(tmp_path, {"ds": {"file_name": file_name}}, {file_name: content})
    err = data_error(d)
    assert err.file == file_name and "the file is empty" in str(err)
    with pytest.raises(DataError, match="the file is empty"):
        preview_page(d, "ds", 0)


def test_empty_registry_is_called_empty(tmp_path):
    d = data_dir(tmp_path, "")
    err = data_error(d)
    assert err.file.endswith("dataset_info.json") and "the file is empty" in str(err)


def test_truncated_files_name_file_and_place(tmp_path):
    good = json.dumps(ROW)
    d = data_dir(tmp_path, {"j": {"file_name": "t.json"}, "l": {"file_name": "t.jsonl"}, "c": {"file_name": "t.csv"},
                            "p": {"file_name": "t.parquet"}},
                 {"t.json": f"[{good},\n{good[:20]}", "t.jsonl": f"{good}\n{good}\n{good[:20]}",
                  "t.csv": 'instruction,input,output\nq,,a\n"cut off,,', "t.parquet": _parquet_bytes(tmp_path)[:-200]})
    err = data_error(d, "j")
    assert err.file == "t.json" and "not valid JSON (line 2" in str(err)
    err = data_error(d, "l")
    assert (err.file, err.row) == ("t.jsonl", 3) and "not valid JSON" in str(err)
    for name, file in (("c", "t.csv"), ("p", "t.parquet")):
        err = data_error(d, name)
        assert err.file == file and "cannot be read" in str(err)


def test_csv_with_other_columns_names_the_missing_one(tmp_path):
    d = data_dir(tmp_path, {"ds": {"file_name": "w.csv"}}, {"w.csv": "question,answer\nq1,a1\nq2,a2\n"})
    err = data_error(d)
    assert (err.file, err.row, err.field) == ("w.csv", 1, "instruction") and err.reason == "missing"
    total, rows = preview_page(d, "ds", 0)  # the preview shows every row's problem instead of failing
    assert total == 2 and [str(r["error"]) for r in rows] == ["field 'instruction': missing"] * 2


def test_numbers_are_taken_as_text_but_not_in_conversations(tmp_path):
    d = data_dir(tmp_path, {"a": {"file_name": "a.json"}, "s": {"file_name": "s.json", "formatting": "sharegpt"}},
                 {"a.json": [{"instruction": 42, "output": 3.5}],
                  "s.json": [{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": 7}]}]})
    [sample] = load_samples(d, ["a"])
    assert sample.messages == [{"role": "user", "content": "42"}, {"role": "assistant", "content": "3.5"}]
    err = data_error(d, "s")
    assert (err.row, err.field) == (1, "conversations") and "turn 2 content must be text" in str(err)


def test_folder_dataset_errors_name_the_file_inside(tmp_path):
    # Row numbers restart in each file of a folder dataset: the message must say which file.
    d = data_dir(tmp_path, {"ds": {"file_name": "parts"}})
    (d / "parts").mkdir()
    (d / "parts" / "a.json").write_text(json.dumps([ROW, ROW]), encoding="utf-8")
    (d / "parts" / "b.json").write_text(json.dumps([ROW, {"instruction": "no answer"}]), encoding="utf-8")
    err = data_error(d)
    assert (err.file, err.row, err.field) == ("parts/b.json", 2, "output")
    _, rows = preview_page(d, "ds", 0)
    assert [r["row"] for r in rows] == ["parts/a.json:1", "parts/a.json:2", "parts/b.json:1", "parts/b.json:2"]
    assert str(rows[3]["error"]) == "field 'output': missing"


# -- a huge file: the preview reads one page, not the file -----------------------------------------------

def _page_cost(d: Path, name: str, page: int) -> tuple[tuple[int, list], float, int]:
    """(preview result, seconds, peak bytes allocated while it ran)."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = preview_page(d, name, page, page_size=10)
        return result, time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_huge_jsonl_preview_reads_only_its_page(tmp_path):
    line = json.dumps({"instruction": "q" * 500, "input": "", "output": "a" * 500}) + "\n"
    n = 50_000_000 // len(line)  # about 50 MB
    # A bad line on page 2: page 1 and a deep page show only if the count and the skip do not parse lines.
    d = data_dir(tmp_path, {"ds": {"file_name": "big.jsonl"}})
    with open(d / "big.jsonl", "w", encoding="utf-8") as fh:
        fh.write(line * 14 + "{oops\n" + line * (n - 15))
    (total, rows), seconds, peak = _page_cost(d, "ds", 0)
    assert total == n and [r["row"] for r in rows] == list(range(1, 11))
    assert peak < 5_000_000, f"page 1 of a 50 MB file took {peak / 1e6:.0f} MB"
    assert seconds < 20
    (total, rows), _, peak = _page_cost(d, "ds", n // 10 - 1)
    assert total == n and [r["row"] for r in rows] == list(range(n - 9 - n % 10, n + 1 - n % 10))
    assert peak < 5_000_000
    with pytest.raises(DataError, match="^big.jsonl, row 15: not valid JSON"):
        preview_page(d, "ds", 1)  # the page holding the bad line names it
    assert data_error(d).row == 15  # and Start would refuse the file, naming the line


@pytest.mark.parametrize("file_name, body", [
    ("late.jsonl", "".join(json.dumps(ROW) + "\n" for _ in range(50))),
    ("late.csv", "instruction,input,output\n" + "q,,a\n" * 50),
])
def test_bad_bytes_beyond_the_page_are_named(tmp_path, file_name, body):
    # Page 1 reads only its rows, but the count reads on: a latin-1 byte there must still give a clear message.
    d = data_dir(tmp_path, {"ds": {"file_name": file_name}}, {file_name: body.encode() + "caf\xe9".encode("latin-1")})
    with pytest.raises(DataError, match=rf"^{file_name}: not UTF-8 text"):
        preview_page(d, "ds", 0)


def test_huge_csv_preview_is_streamed(tmp_path):
    d = data_dir(tmp_path, {"small": {"file_name": "small.csv"}, "ds": {"file_name": "big.csv"}},
                 {"small.csv": "instruction,input,output\nq,,a\n"})
    preview_page(d, "small", 0)  # pandas is imported now, not while memory is measured
    n = 20_000
    with open(d / "big.csv", "w", encoding="utf-8") as fh:
        fh.write("instruction,input,output\n" + ("q" * 500 + ",," + "a" * 500 + "\n") * n)  # about 20 MB
    (total, rows), _, peak = _page_cost(d, "ds", 0)
    assert total == n and len(rows) == 10 and rows[0]["prompt"] == "q" * 500
    assert peak < 10_000_000, f"page 1 of a 20 MB csv took {peak / 1e6:.0f} MB"  # the whole file: about 60 MB


@pytest.mark.parametrize("file_name", ["p.jsonl", "p.csv", "p.parquet", "p.json"])
def test_pages_match_a_full_read(tmp_path, file_name):
    # Pages are read by skipping rows (and csv/parquet chunks of 1000 rows): together they are the whole file,
    # numbered the same, also across a chunk boundary and with a BOM and blank lines in a jsonl file.
    import pandas as pd

    rows = [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(1, 2501)]
    d = data_dir(tmp_path, {"ds": {"file_name": file_name}})
    path = d / file_name
    if file_name.endswith(".jsonl"):
        lines = (json.dumps(r) + ("\n\n" if i % 7 == 0 else "\n") for i, r in enumerate(rows))
        path.write_text("\ufeff" + "".join(lines), encoding="utf-8")
    elif file_name.endswith(".json"):
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif file_name.endswith(".csv"):
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        pd.DataFrame(rows).to_parquet(path, index=False)
    expected = [s.messages[0]["content"] for s in load_samples(d, ["ds"])]
    assert len(expected) == 2500
    for page in (0, 99, 100, 101, 249):
        total, shown = preview_page(d, "ds", page, page_size=10)
        assert total == 2500
        assert [r["prompt"] for r in shown] == expected[page * 10:page * 10 + 10], page
    assert preview_page(d, "ds", 250, page_size=10) == (2500, [])


# -- samples longer than the cutoff -------------------------------------------------------------------------

def test_samples_beyond_the_cutoff_are_cut_or_skipped_and_the_log_says_so():
    from engine.core.encode import encode_samples
    from engine.core.templates import IGNORE_INDEX
    from engine.modeling.models import load_tokenizer

    tokenizer = load_tokenizer("demo/SmolLM2-135M-Instruct")  # the tokenizer only, no model
    chat = lambda question, answer: Sample(messages=[{"role": "user", "content": question},  # noqa: E731
                                                     {"role": "assistant", "content": answer}])
    samples = [chat("Hi", "Hello."), chat("Hi", "word " * 200), chat("word " * 200, "Hello.")]
    cfg = RunConfig.from_dict({"data": {"datasets": ["x"], "cutoff_len": 64}})
    log: list[str] = []
    rows = encode_samples(cfg, tokenizer, samples, log.append)
    assert len(rows) == 2 and all(len(r["input_ids"]) <= 64 for r in rows)
    assert len(rows[1]["input_ids"]) == 64 and rows[1]["labels"][-1] != IGNORE_INDEX  # cut inside the answer
    assert log == ["cut 1 of 3 samples longer than cutoff_len=64 tokens to that length",
                   "skipped 1 samples whose answer lies beyond cutoff_len=64"]
    # a sample that fits exactly is not reported as cut
    exact = len(encode_samples(cfg, tokenizer, samples[:1], log.append)[0]["input_ids"])
    cfg.data.cutoff_len, log[:] = exact, []
    encode_samples(cfg, tokenizer, samples[:1], log.append)
    assert log == []
    # preference pairs are cut too, and counted
    cfg = RunConfig.from_dict({"data": {"datasets": ["x"], "cutoff_len": 64}, "train": {"stage": "dpo"}})
    pair = Sample(messages=samples[1].messages, rejected="no " * 200)
    [row] = encode_samples(cfg, tokenizer, [pair], log.append)
    assert len(row["prompt_ids"]) + len(row["chosen_ids"]) <= 64 and log == [
        "cut 1 of 1 samples longer than cutoff_len=64 tokens to that length"]


# -- hyper-parameters ----------------------------------------------------------------------------------------

HOSTILE_NUMBERS = ["nan", "NaN", "inf", "-inf", "1e400", "abc", "五", "1,5", "0x10", "", "  ", None, [], {},
                   True, float("nan"), float("inf"), -float("inf")]


def _numeric_fields() -> list[tuple[str, str, type, dict]]:
    cfg = RunConfig()
    typed = [(section, f, get_type_hints(type(getattr(cfg, section)))[f.name]) for section, f, _ in iter_fields(cfg)]
    return [(section, f.name, typ, dict(f.metadata)) for section, f, typ in typed if typ in (int, float)]


@pytest.mark.parametrize("section, name, typ, meta", _numeric_fields(),
                         ids=[f"{s}.{n}" for s, n, *_ in _numeric_fields()])
def test_every_number_field_refuses_hostile_values(section, name, typ, meta):
    # All numeric fields, not a sample of them: each refusal names exactly that field.
    values = list(HOSTILE_NUMBERS)
    if meta["min"] is not None:
        values.append(meta["min"] - 1 if typ is int else meta["min"] - 0.5)
        if meta["min_exclusive"]:
            values.append(meta["min"])
    if meta["max"] is not None:
        values.append(meta["max"] + 1)
    if typ is int:
        values += [2.5, "2.5"]
    for value in values:
        raw = {"data": {"datasets": ["x"]}}
        raw.setdefault(section, {})[name] = value
        with pytest.raises(ConfigError) as info:
            RunConfig.from_dict(raw)
        assert info.value.field_name == f"{section}.{name}", (value, str(info.value))


def test_empty_number_says_empty():
    for section, name in (("train", "learning_rate"), ("lora", "rank")):
        for value in (None, "", " "):
            with pytest.raises(ConfigError, match=rf"^{section}\.{name}: is empty; enter a"):
                RunConfig.from_dict({"data": {"datasets": ["x"]}, section: {name: value}})


@pytest.mark.parametrize("text, key, reason", [
    ('"weight_decay"', "train.extra_args", "got a string"),
    ("42", "train.extra_args", "got a number"),
    ("null", "train.extra_args", "got null"),
    ("true", "train.extra_args", "got true/false"),
    ('{"weight_decay": NaN}', "train.extra_args.weight_decay", "expected number"),
    ('{"adam_epsilon": Infinity}', "train.extra_args.adam_epsilon", "expected number"),
    ('{"max_steps": 1e400}', "train.extra_args.max_steps", "expected number"),
    ('{"lr_scheduler_kwargs": [1]}', "train.extra_args.lr_scheduler_kwargs", "expected an object"),
    ('{"learning_rate": 1}', "train.extra_args.learning_rate", "not an allowed argument"),
    ('{"deepspeed": "/etc/ds.json"}', "train.extra_args.deepspeed", "not an allowed argument"),
    ('{"weight_decay": 0.1} trailing', "train.extra_args", "not valid JSON"),
])
def test_extra_args_that_are_not_an_allowed_object(text, key, reason):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"data": {"datasets": ["x"]}, "train": {"extra_args": text}})
    assert info.value.field_name == key and reason in str(info.value)


# -- broken dataset_info.json: the dataset list says why it is empty ------------------------------------------

def test_broken_registry_is_reported_not_an_empty_list(tmp_path):
    from webui.dataset_preview import registry_notice

    d = data_dir(tmp_path, '{"ds": {"file_name": "a.json"},\n}')
    assert list_datasets(d) == []
    names, problems = scan_registry(d)
    assert names == [] and len(problems) == 1
    assert "dataset_info.json: not valid JSON (line 2" in str(problems[0])
    notice = registry_notice("en", str(d))
    assert "dataset_info.json: not valid JSON (line 2" in notice and "Datasets missing" in notice
    zh = registry_notice("zh", str(d))
    assert "dataset_info.json" in zh and "未出现在列表中" in zh
    assert "no dataset_info.json" in registry_notice("en", str(tmp_path / "nowhere"))
    assert "NUL" in registry_notice("en", "data\x00")


def test_bad_entries_are_named_and_good_ones_still_listed(tmp_path):
    d = data_dir(tmp_path, {"good": {"file_name": "a.json"}, "text": "a.json", "nofile": {"formatting": "alpaca"},
                            "hub": {"hf_hub_url": "org/ds"}, "txt": {"file_name": "notes.txt"}},
                 {"a.json": [ROW]})
    names, problems = scan_registry(d)
    assert names == ["good"]
    reg = str(d / "dataset_info.json")
    assert [str(p) for p in problems] == [
        f"{reg}, field 'text': entry must be an object",
        f"{reg}, field 'nofile': entry has no file_name",
        f"{reg}, field 'hub': hub datasets are not supported; download the file and set file_name",
        f"{reg}, field 'txt': unsupported file type '.txt' (use .json, .jsonl, .csv, .parquet)"]
    assert scan_registry(data_dir(tmp_path / "demo", {"ok": {"file_name": "a.json"}})) == (["ok"], [])


def test_nul_in_file_name_is_refused_naming_the_entry(tmp_path):
    d = data_dir(tmp_path, {"ds": {"file_name": "a\x00.json"}})
    err = data_error(d)
    assert err.field == "ds" and err.file.endswith("dataset_info.json") and "NUL" in str(err)


# -- the app's handlers: messages, not crashes; nothing saved changes --------------------------------------------

@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """Own saves/configs/exports folders for this module, and a folder outside them all."""
    base = tmp_path_factory.mktemp("hostile")
    dirs = {name: base / name for name in ("saves", "configs", "exports", "outside")}
    for d in dirs.values():
        d.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        for name in ("saves", "configs", "exports"):
            mp.setenv(f"TUNEBOARD_{name.upper()}", str(dirs[name]))
        yield dirs


@pytest.fixture(scope="module")
def app(roots):
    from webui.app import create_app

    return create_app()


def _block(app, elem_id: str):
    [block] = [b for b in app.blocks.values() if getattr(b, "elem_id", None) == elem_id]
    return block


def _handler(app, elem_id: str, event: str = "click", output: str | None = None):
    """The function run on ``event`` of the element ``elem_id`` (the one writing to ``output``, if given)."""
    block = _block(app, elem_id)
    fns = [f for f in app.fns.values() if (block._id, event) in [tuple(t) for t in f.targets]]
    if output is not None:
        fns = [f for f in fns if _block(app, output) in f.outputs]
    [fn] = fns
    return fn


def call(app, elem_id: str, **values):
    """Run the click handler of ``elem_id`` with the form's initial values, some replaced (keys: elem ids with
    '-' written '_')."""
    fn = _handler(app, elem_id)
    args = []
    for block in fn.inputs:
        key = (getattr(block, "elem_id", None) or "").replace("-", "_")
        args.append(values.pop(key) if key in values else block.value)
    assert not values, f"no such inputs: {values}"
    return call_as_gradio(fn.fn, args)


# Names that must never leave their folder; each message names the folder field.
ESCAPES = ["../escape", "../../escape", "sub/../../escape", "/tmp/escape", "~/escape", "~", "a\x00b", "link/x",
           "link"]


def _link_into(folder: Path, outside: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "link").is_symlink():
        (folder / "link").symlink_to(outside, target_is_directory=True)


def test_config_file_name_is_confined(app, roots):
    _link_into(roots["configs"], roots["outside"])
    for name in ESCAPES + ["../escape.yaml", "/tmp/escape.yaml", "~/escape.yaml", "link/escape.yaml"]:
        for button in ("btn-save-args", "btn-load-args"):
            result = call(app, button, train_config_path=name)
            message = result if isinstance(result, str) else result[-1]
            # The field by its label, and the reason (a keyed error, so it reads in the UI's language too).
            assert message.startswith("Invalid value — Config path: "), (button, name, message)
    assert not any(roots["outside"].iterdir())


def test_output_dir_is_confined(app, roots):
    from webui import runner
    from webui.top_bar import model_label

    fn = _handler(app, "btn-preview-command")
    initial = {getattr(b, "elem_id", None): b.value for b in fn.inputs}
    method_dir = runner.method_dir(model_label(initial["top-model-name"], initial["top-model-path"]),
                                   initial["top-method"])
    _link_into(method_dir, roots["outside"])
    for name in ESCAPES:
        command, message = call(app, "btn-preview-command", train_output_dir=name)
        assert message.lower().startswith("invalid value — output dir"), (name, message)
        assert command == {"__type__": "update", "visible": False}
    command, message = call(app, "btn-preview-command", train_output_dir="fine")
    assert message == "" and str(method_dir / "fine") in command["value"]


def test_export_dir_is_confined(app, roots):
    _link_into(roots["exports"], roots["outside"])
    for name in ESCAPES:
        command, message = call(app, "export-preview-command", export_dir=name)
        assert message.lower().startswith("invalid value — export dir"), (name, message)
    command, message = call(app, "export-preview-command", export_dir="fine")
    assert message == "" and str(roots["exports"] / "fine") in command["value"]


@pytest.mark.parametrize("field, value, reason", [
    ("field_train_learning_rate", "nan", "expected a finite number"),
    ("field_train_learning_rate", "abc", "expected a number"),
    ("field_train_num_train_epochs", "inf", "expected a finite number"),
    ("field_train_num_train_epochs", "-1", "must be greater than 0"),
    ("field_train_per_device_train_batch_size", None, "is empty"),  # what an emptied number box sends
    ("field_data_cutoff_len", -5, "must be at least 8"),
    ("field_lora_rank", None, "is empty"),
    ("field_train_extra_args", '["weight_decay", 0.1]', "must be a JSON object"),
])
def test_form_values_are_refused_with_the_field_named(app, roots, field, value, reason):
    from webui.locales import field_label

    key = field.removeprefix("field_").replace("_", ".", 1)
    message = call(app, "btn-save-args", train_config_path="bad.yaml", **{field: value})
    assert message.startswith(f"Invalid value — {field_label('en', key)}: ") and reason in message, message
    assert not (roots["configs"] / "bad.yaml").exists()



def test_form_values_are_refused_in_the_ui_language(app, roots):
    """The train tab in Chinese: the frame, the field's label and the reason are Chinese; only the typed value stays."""
    message = call(app, "btn-save-args", top_lang="zh", train_config_path="bad.yaml", field_train_learning_rate="-1")
    assert message == "参数无效 — 学习率：必须大于 0，实际为 -1.0", message
    message = call(app, "btn-save-args", top_lang="zh", train_config_path="bad.yaml", field_data_cutoff_len=None)
    assert message == "参数无效 — 截断长度：为空；请输入整数", message
    assert not (roots["configs"] / "bad.yaml").exists()

def test_unreadable_config_files_are_refused(app, roots):
    configs = roots["configs"]
    (configs / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage")
    (configs / "broken.yaml").write_text("train: [unclosed\n", encoding="utf-8")
    (configs / "nan.yaml").write_text("train:\n  learning_rate: .nan\n", encoding="utf-8")
    (configs / "folder.yaml").mkdir(exist_ok=True)
    for name, reason in (("binary.yaml", "not UTF-8 text"), ("broken.yaml", "not valid YAML"),
                         ("nan.yaml", "Learning rate: expected a finite number"),
                         ("folder.yaml", "does not exist")):
        *fields, message = call(app, "btn-load-args", train_config_path=name)
        assert message.startswith("Invalid value") and reason in message, (name, message)
        assert len(fields) + 1 == len(_handler(app, "btn-load-args").outputs)  # an answer for every output
        assert all(f == {"__type__": "update"} for f in fields)  # the form keeps what it had
    message = call(app, "btn-save-args", train_config_path="folder.yaml")  # a folder where the file would go
    assert message.startswith("Invalid value — config file") and "folder.yaml" in message


def test_preview_of_broken_data_names_the_problem(app, roots, tmp_path):
    d = data_dir(tmp_path, {"ds": {"file_name": "bad.jsonl"}}, {"bad.jsonl": json.dumps(ROW) + "\n{oops\n"})
    panel, info, table, page = call(app, "preview-dataset", field_data_dataset_dir=str(d), field_data_datasets=["ds"])
    assert info.startswith("Dataset problem — bad.jsonl, row 2: not valid JSON") and page == 0
    with pytest.warns(UserWarning, match="^数据集有问题 — bad.jsonl，第 2 行：不是有效的 JSON（"):
        zh = call(app, "preview-dataset", top_lang="zh", field_data_dataset_dir=str(d), field_data_datasets=["ds"])
    assert zh[1].startswith("数据集有问题 — bad.jsonl，第 2 行：不是有效的 JSON（"), zh[1]
    (d / "dataset_info.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.warns(UserWarning, match="dataset_info.json: must be a JSON object"):  # not "choose a dataset"
        call(app, "preview-dataset", field_data_dataset_dir=str(d), field_data_datasets=[])
    with pytest.warns(UserWarning, match="dataset_info.json：必须是将数据集名称映射到条目的 JSON 对象"):
        call(app, "preview-dataset", top_lang="zh", field_data_dataset_dir=str(d), field_data_datasets=[])


def test_preview_rows_show_their_problem_in_the_ui_language(app, tmp_path):
    d = data_dir(tmp_path, {"ds": {"file_name": "a.json"}}, {"a.json": [ROW, {"instruction": "no answer"}]})
    for lang, problem in (("en", "field 'output': missing"), ("zh", "字段 'output'：缺失"),
                          ("ru", "поле 'output': отсутствует")):
        _, _, table, _ = call(app, "preview-dataset", top_lang=lang, field_data_dataset_dir=str(d),
                              field_data_datasets=["ds"])
        assert [row[-1] for row in table["value"]] == ["", problem], (lang, table)


def test_dataset_notice_follows_the_data_folder(app, tmp_path):
    notice = _block(app, "dataset-notice")
    assert notice.value == ""  # the demo registry is sound: nothing to say
    d = data_dir(tmp_path, {"ok": {"file_name": "a.json"}, "broken": {"formatting": "alpaca"}}, {"a.json": [ROW]})
    on_change = _handler(app, "field-data-dataset_dir", "change", output="dataset-notice")
    text = on_change.fn("en", str(d))
    assert "field 'broken': entry has no file_name" in text and "'ok'" not in text
    assert on_change.fn("en", str(DEFAULT_DATA_DIR)) == ""


def test_failed_operations_leave_every_file_byte_identical(app, roots, tmp_path):
    configs, saves = roots["configs"], roots["saves"]
    call(app, "btn-save-args", train_config_path="good.yaml")
    assert (configs / "good.yaml").is_file()
    (saves / "m" / "lora" / "run1").mkdir(parents=True, exist_ok=True)
    (saves / "m" / "lora" / "run1" / "status.json").write_text('{"state": "finished"}', encoding="utf-8")
    (roots["outside"] / "secret.yaml").write_text("keep: me\n", encoding="utf-8")
    d = data_dir(tmp_path, {"ds": {"file_name": "a.jsonl"}, "bad": {"file_name": "../outside/secret.yaml"}},
                 {"a.jsonl": "\ufeff" + json.dumps(ROW) + "\n" + json.dumps({"instruction": "no answer"}) + "\n"})
    before = snapshot(tmp_path, *roots.values())

    for name in ("good.yaml", "../outside/secret.yaml", "link/secret.yaml"):  # invalid values do not overwrite
        message = call(app, "btn-save-args", train_config_path=name, field_train_learning_rate="nan")
        assert message.startswith("Invalid value"), message
    for name in ESCAPES:
        call(app, "btn-save-args", train_config_path=name)
        call(app, "btn-preview-command", train_output_dir=name)
        call(app, "export-preview-command", export_dir=name)
    for name in ("ds", "bad"):
        with pytest.raises(DataError):
            load_samples(d, [name])
        call(app, "preview-dataset", field_data_dataset_dir=str(d), field_data_datasets=[name])

    assert snapshot(tmp_path, *roots.values()) == before


def test_nan_number_box_payload():
    # A number box holding NaN would crash gradio's own rounding before any handler runs; the browser cannot send
    # one (JSON has no NaN: an invalid box arrives as null), and null is refused with the field named.

    from webui.form import config_from_values, field_control

    rank = field_control("lora", "rank", "en")
    assert isinstance(rank.component, gr.Number)
    with pytest.raises(ConfigError, match=r"^lora\.rank: is empty"):
        config_from_values([rank], [rank.component.preprocess(None)])
    for value in (float("nan"), float("inf")):
        with pytest.raises(ConfigError, match=r"^lora\.rank: expected a whole number"):
            config_from_values([rank], [value])


def test_add_dataset_refuses_escaping_names_and_changes_nothing(app, roots, tmp_path):
    d = data_dir(tmp_path, {"ds": {"file_name": "a.json"}}, {"a.json": [ROW]})
    _link_into(d, roots["outside"])
    upload = tmp_path / "up.jsonl"
    upload.write_text(json.dumps(ROW) + "\n", encoding="utf-8")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(ROW) + "\n{oops\n", encoding="utf-8")
    before = snapshot(tmp_path, *roots.values())
    names = [n for n in ESCAPES if n != "link"] + [".hidden", "a b"]  # "link" is a plain name: link.jsonl is fine
    for name, overwrite in [(name, True) for name in names] + [("ds", False)]:
        message, datasets = call(app, "upload-register", field_data_dataset_dir=str(d), upload_file=str(upload),
                                 upload_name=name, upload_overwrite=overwrite)
        assert message.startswith("Not registered") and datasets == {"__type__": "update"}, (name, message)
        status, _ = call(app, "identity-build", field_data_dataset_dir=str(d), identity_dataset=name,
                         identity_name="Nova", identity_author="Acme", identity_overwrite=overwrite)
        assert status.startswith("Not written"), (name, status)
    message, _ = call(app, "upload-register", field_data_dataset_dir=str(d), upload_file=str(broken),
                      upload_name="fine")
    assert "broken.jsonl, row 2: not valid JSON" in message and "nothing was registered" in message
    for folder in ("../outside", str(roots["outside"] / "missing")):  # a data folder that is not one
        message, _ = call(app, "upload-register", field_data_dataset_dir=folder, upload_file=str(upload),
                          upload_name="fine")
        assert message.startswith("Not registered"), message
    assert snapshot(tmp_path, *roots.values()) == before


# -- data folders stay inside the data roots (issue 18) ---------------------------------------------------------

def test_data_folder_outside_the_roots_is_refused_for_writing(app, roots, tmp_path, monkeypatch):
    """Before: Add dataset and the identity builder wrote into any folder the Data dir named: an absolute folder
    outside the project got a dataset_info.json and, with Replace, an overwritten JSON file; a run folder and the
    name "status" replaced the run's status.json with a list."""
    root = tmp_path / "root"
    monkeypatch.setenv("TUNEBOARD_DATA_ROOTS", str(root))
    inside = data_dir(root / "team", {"ds": {"file_name": "a.json"}}, {"a.json": [ROW]})  # a root's sub-folder
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "victim.json").write_text('{"keep": true}', encoding="utf-8")
    (root / "link").symlink_to(outside, target_is_directory=True)  # inside a root by name only
    run = roots["saves"] / "m" / "lora" / "run1"
    run.mkdir(parents=True, exist_ok=True)
    (run / "status.json").write_text('{"state": "finished"}', encoding="utf-8")
    upload = tmp_path / "up.json"
    upload.write_text(json.dumps([ROW]), encoding="utf-8")
    before = snapshot(tmp_path, roots["saves"])
    label = "Data dir: "
    for folder, name, reason in ((str(outside), "victim", "is outside the data folders this server allows"),
                                 (str(root / "link"), "victim", "is outside the data folders"),
                                 (str(root / "team" / ".." / ".." / "elsewhere"), "victim", "is outside"),
                                 (str(run), "status", "is outside")):
        message, datasets = call(app, "upload-register", field_data_dataset_dir=folder, upload_file=str(upload),
                                 upload_name=name, upload_overwrite=True)
        assert message.startswith(f"Not registered: {label}") and reason in message, (folder, message)
        assert str(root) in message.replace("\\", "") and datasets == {"__type__": "update"}, message
        status, _ = call(app, "identity-build", field_data_dataset_dir=folder, identity_dataset=name,
                         identity_name="Nova", identity_author="Acme", identity_overwrite=True)
        assert status.startswith(f"Not written: {label}") and reason in status, (folder, status)
    # A root that holds the runs folder still keeps Add dataset out of the runs.
    monkeypatch.setenv("TUNEBOARD_DATA_ROOTS", os.pathsep.join([str(root), str(roots["saves"].parent)]))
    message, _ = call(app, "upload-register", field_data_dataset_dir=str(run), upload_file=str(upload),
                      upload_name="status", upload_overwrite=True)
    assert "is inside the runs folder" in message, message
    with pytest.warns(UserWarning, match="^未注册：数据路径：.*不在本服务器允许的数据文件夹内"):
        call(app, "upload-register", top_lang="zh", field_data_dataset_dir=str(outside), upload_file=str(upload),
             upload_name="victim", upload_overwrite=True)
    assert snapshot(tmp_path, roots["saves"]) == before
    # Inside a root (a sub-folder too, written relative or absolute) both still work.
    message, datasets = call(app, "upload-register", field_data_dataset_dir=str(inside), upload_file=str(upload),
                             upload_name="new", upload_overwrite=False)
    assert message.startswith("Registered") and ("new", "new") in datasets["choices"], message
    status, _ = call(app, "identity-build", field_data_dataset_dir=str(inside), identity_dataset="me",
                     identity_name="Nova", identity_author="Acme")
    assert not status.startswith("Not written"), status
    assert set(json.loads((inside / "dataset_info.json").read_text(encoding="utf-8"))) == {"ds", "new", "me"}


def test_data_folder_outside_the_roots_is_refused_for_reading(app, roots, tmp_path, monkeypatch):
    from engine.core.paths import PathError, confined_data_dir, data_roots
    from webui.dataset_preview import dataset_listing, registry_notice

    root = tmp_path / "root"
    monkeypatch.setenv("TUNEBOARD_DATA_ROOTS", f"{root}{os.pathsep}{os.pathsep}")  # empty entries are no root
    assert data_roots() == [DEFAULT_DATA_DIR.resolve(), root.resolve()]
    outside = data_dir(tmp_path / "elsewhere", {"ds": {"file_name": "a.json"}}, {"a.json": [ROW]})
    assert dataset_listing(str(outside))[0] == []
    assert "is outside the data folders" in registry_notice("en", str(outside))
    with pytest.warns(UserWarning, match="is outside the data folders"):
        _, info, _, _ = call(app, "preview-dataset", field_data_dataset_dir=str(outside), field_data_datasets=["ds"])
    assert info.startswith("Dataset problem — Data dir: "), info
    with pytest.warns(UserWarning, match="is outside the data folders"):
        _, _, counts, _ = call(app, "check-dataset", field_data_dataset_dir=str(outside), field_data_datasets=["ds"])
    assert counts.startswith("Cannot check the dataset — Data dir: "), counts
    # The default root, relative or absolute, and the roots themselves are fine; the roots are a parameter.
    assert dataset_listing("assets/data")[0] == dataset_listing(str(DEFAULT_DATA_DIR))[0] != []
    assert confined_data_dir(str(outside), roots=[outside.parent]) == outside.resolve()
    with pytest.raises(PathError) as info:
        confined_data_dir("assets/data", roots=[root])
    assert info.value.key == "outside_data_roots" and info.value.field == "data.dataset_dir"


@pytest.mark.slow
def test_a_job_refuses_a_data_folder_outside_the_roots(workdirs, demo_model_dir, tmp_path, monkeypatch):
    """A forged run.yaml (or API call) naming another folder: the job reads no data from it and says why."""
    from engine.core.encode import training_samples
    from engine.core.paths import PathError
    from engine.evaluate.run import load_eval_samples
    from tests.helpers.runs import run_cold_job, tiny_train_config
    from webui import runner
    from webui.run_monitor import status_text

    cfg = tiny_train_config()
    data_dir(tmp_path / "elsewhere", {"identity": {"file_name": "a.json"}}, {"a.json": [ROW]})
    cfg.data.dataset_dir = str(tmp_path / "elsewhere" / "data")
    monkeypatch.setenv("TUNEBOARD_DATA_ROOTS", str(tmp_path / "root"))
    for read in (training_samples, load_eval_samples):
        with pytest.raises(PathError, match="is outside the data folders"):
            read(cfg)
    run, status = run_cold_job(cfg, tmp_path / "run")
    assert status["state"] == "failed" and "is outside the data folders" in status["error"], status
    assert status["error_record"]["kind"] == "path", status
    zh = status_text("zh", "train", runner.snapshot(run))
    assert "数据路径：" in zh and "不在本服务器允许的数据文件夹内" in zh, zh


# -- issue 18: run-folder integrity, reading any content, reserved names, deep nesting, raw OS errors ----------------

def test_a_run_name_is_one_folder_name_the_file_system_takes(app, roots):
    """'parent/nested' or 'parent/checkpoint-50' would put a run inside another run's folder (its final save would
    overwrite that checkpoint); a 300-character name was '[Errno 36] File name too long', at the check and at Start."""
    before = snapshot(roots["saves"])
    for name in ("parent/nested", "parent/checkpoint-50", "parent/.", "x/.."):
        for button in ("btn-preview-command", "btn-start"):
            result = call(app, button, train_output_dir=name)
            message = result[1] if button == "btn-preview-command" else result[0]
            assert message.startswith("Invalid value — Output dir: ") and "one folder name" in message, message
    for button in ("btn-preview-command", "btn-start"):
        result = call(app, button, train_output_dir="a" * 300)
        message = result[1] if button == "btn-preview-command" else result[0]
        assert message == ("Invalid value — Output dir: a folder name of 300 bytes is longer than the file system "
                           "allows (255 bytes)"), message
    _, zh = call(app, "btn-preview-command", top_lang="zh", train_output_dir="a" * 300)
    assert zh == "参数无效 — 输出目录：文件夹名长 300 字节，超过了文件系统允许的 255 字节", zh
    assert snapshot(roots["saves"]) == before


def test_export_dir_errors_are_sentences_naming_the_field(app, roots):
    from engine.core.paths import exports_dir

    exports = exports_dir()  # roots["exports"], unless a session fixture has set its own since
    exports.mkdir(parents=True, exist_ok=True)
    (exports / "a-file").write_text("not a folder\n", encoding="utf-8")
    for name in ("a-file", "a-file/sub"):
        _, message = call(app, "export-preview-command", export_dir=name)
        assert message == f"Invalid value — Export dir: {exports / 'a-file'} is a file, not a folder", message
        message = call(app, "export-start", export_dir=name)[0]
        assert "Errno" not in message and "is a file, not a folder" in message, message
    _, message = call(app, "export-preview-command", top_lang="zh", export_dir="b" * 300)
    assert message.startswith("参数无效 — 导出目录：文件夹名长 300 字节"), message


def test_start_refuses_a_folder_that_is_not_a_resumable_run(app, roots):
    from webui import runner
    from webui.top_bar import model_label

    fn = _handler(app, "btn-preview-command")
    initial = {getattr(b, "elem_id", None): b.value for b in fn.inputs}
    method_dir = runner.method_dir(model_label(initial["top-model-name"], initial["top-model-path"]),
                                   initial["top-method"])
    taken = method_dir / "taken"  # what a checkpoint folder holds: weights, no run
    taken.mkdir(parents=True, exist_ok=True)
    (taken / "adapter_model.safetensors").write_bytes(b"weights")
    before = snapshot(method_dir)
    message = call(app, "btn-start", train_output_dir="taken")[0]
    assert message.startswith(f"Output dir {taken} already holds files that are not a run"), message
    assert snapshot(method_dir) == before


def _run(saves: Path, name: str, status, files: dict | None = None) -> Path:
    """saves/m/lora/<name> with status.json (an object, or raw bytes) and other files (name -> bytes)."""
    folder = saves / "m" / "lora" / name
    folder.mkdir(parents=True, exist_ok=True)
    raw = status if isinstance(status, bytes) else json.dumps(status).encode()
    (folder / "status.json").write_bytes(raw)
    for file_name, body in (files or {}).items():
        (folder / file_name).write_bytes(body)
    return folder


def test_delete_refuses_while_a_run_inside_is_queued_or_running(tmp_path):
    from engine.core.run_history import RunBusyError, delete_run

    parent = _run(tmp_path, "parent", {"state": "finished"})
    nested = parent / "checkpoint-50"  # a run an older version let start inside another
    nested.mkdir()
    (nested / "status.json").write_text(json.dumps({"state": "running", "pid": os.getpid()}), encoding="utf-8")
    with pytest.raises(RunBusyError, match="checkpoint-50 inside parent is running"):
        delete_run(parent, tmp_path)
    assert (nested / "status.json").is_file()
    (nested / "status.json").write_text(json.dumps({"state": "finished"}), encoding="utf-8")
    delete_run(parent, tmp_path)
    assert not parent.exists()


def test_nothing_brings_back_a_deleted_run_folder(tmp_path):
    from engine.core.rundir import STOPPED, RunDir

    run = RunDir(_run(tmp_path, "gone", {"state": "queued"}))
    import shutil

    shutil.rmtree(run.path)
    run.write_status(STOPPED, phase="cancelled")  # what the orphaned queue waiter did when it ended
    assert not run.path.exists()


@pytest.mark.slow
def test_a_queue_waiter_whose_run_folder_is_deleted_leaves_and_ends(tmp_path):
    import fcntl
    import shutil
    import subprocess
    import sys

    from engine.core.rundir import RunDir
    from engine.jobs.device_queue import lock_path, new_ticket, waiting

    env = dict(os.environ, TUNEBOARD_SAVES=str(tmp_path))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNEBOARD_SAVES", str(tmp_path))
        run = RunDir(_run(tmp_path, "waiting", {"state": "queued"}))
        ticket = new_ticket(run)
        lock_path().parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path(), "a+b") as held:  # another job holds the device
            fcntl.flock(held, fcntl.LOCK_EX)
            proc = subprocess.Popen([sys.executable, "-m", "engine.jobs.device_queue", str(ticket.path), "--", "true"],
                                    env=env, cwd=Path(__file__).resolve().parents[2], stderr=subprocess.PIPE,
                                    text=True)
            run.write_status("queued", pid=proc.pid)
            time.sleep(1.5)
            assert proc.poll() is None and [t.run.path for t in waiting()] == [run.path]
            shutil.rmtree(run.path)
            try:
                code = proc.wait(timeout=10)
            finally:
                proc.kill()
        assert code == 1 and "is gone; leaving the queue" in proc.stderr.read()
        assert not run.path.exists() and waiting() == []


# Content no run file of the app holds, each with what the Runs tab says about it.
BROKEN_STATUS = {
    "a-list": (b"[1, 2]", "must be an object, got list"),
    "a-number": (b"5", "must be an object, got int"),
    "bad-bytes": (b'{"state": "fin\xffished"}', "not UTF-8 text"),
    "deep": (b"[" * 1_000_000 + b"]" * 1_000_000, "nested too deeply to read"),
    "huge-line": (b'{"state": "finished", "x": "' + b"a" * (50 << 20) + b'"}', "over the 4 MB limit"),
    "wrong-type": (b'{"state": "finished", "created_at": "yesterday"}',
                   "field 'created_at': must be a number, got str"),
}


@pytest.fixture()
def broken_saves(tmp_path):
    """A saves/ folder where every run file holds something hostile, beside one sound run."""
    saves = tmp_path / "saves"
    for name, (body, _) in BROKEN_STATUS.items():
        _run(saves, name, body)
        for file_name in ("run.yaml", "events.jsonl"):  # a sound status.json, the other file broken
            _run(saves, f"{name}-{file_name}", {"state": "finished", "created_at": 1.0}, {file_name: body + b"\n"})
    _run(saves, "sound", {"state": "finished", "created_at": 2.0},
         {"events.jsonl": b'{"step": 1, "loss": 1.5}\n' + b'{"step": "x", "loss": 1}\n[3]\n'
                          + b'{"step": 2, "loss": 1.0}\n'})
    return saves


@pytest.mark.slow
def test_runs_tab_lists_unreadable_runs_with_the_reason(broken_saves, monkeypatch):
    from engine.core.run_history import all_runs, summarize
    from webui import runner
    from webui.runs_tab import _view

    monkeypatch.setenv("TUNEBOARD_SAVES", str(broken_saves))
    summaries = {s.name: s for s in map(summarize, all_runs(broken_saves))}
    assert len(summaries) == 3 * len(BROKEN_STATUS) + 1
    for name, (_, reason) in BROKEN_STATUS.items():
        assert summaries[name].state == "unreadable" and reason in str(summaries[name].status_error), name
        assert str(broken_saves / "m" / "lora" / name / "status.json") in str(summaries[name].status_error)
        assert summaries[f"{name}-run.yaml"].state == "finished" and summaries[f"{name}-run.yaml"].config_error
        assert summaries[f"{name}-events.jsonl"].final_loss is None
    assert summaries["sound"].final_loss == 1.0 and summaries["sound"].best_loss == 1.0
    head, table, *_ = _view("en", [], None)
    for name, (_, reason) in BROKEN_STATUS.items():
        assert f"The state of m / lora / {name} cannot be read: {broken_saves / 'm' / 'lora' / name / 'status.json'}" \
            in head and reason in head, name
    assert sum(row[4] == "unreadable" for row in table["value"]) == len(BROKEN_STATUS)
    zh_head = _view("zh", [], None)[0]
    assert "无法读取 m / lora / a-list 的状态" in zh_head and "必须是对象，实际为 list" in zh_head
    assert runner.active_runs(broken_saves) == []
    assert [run.name for run, _ in runner.checkpoint_entries("m", "lora")] == []
    for run in all_runs(broken_saves):
        runner.snapshot(run)


def test_app_starts_and_reattaches_with_unreadable_runs(broken_saves, monkeypatch):
    """One bad status.json under saves/ made create_app (the top bar lists checkpoints) exit with AttributeError."""
    from webui.app import create_app

    monkeypatch.setenv("TUNEBOARD_SAVES", str(broken_saves))
    app = create_app()
    # The page-load event: of the two handlers by that name, the one reading the tabs' forms (Chat's comes after).
    load = max((fn for fn in app.fns.values() if fn.name == "on_page_load"), key=lambda fn: len(fn.inputs))
    out = load.fn(None, *[component.value for component in load.inputs])
    watched = out[:15]  # each monitor's run path, timer, events shown, view, watching (webui.run_monitor.reattach)
    assert [value for value in watched if isinstance(value, str) and value] == []  # nothing to watch


def test_reading_a_huge_run_file_is_bounded(broken_saves):
    """A 50 MB line in status.json, events.jsonl or run.yaml is not read whole (nor held) to find it is too big."""
    from engine.core.config import ConfigError, RunConfig
    from engine.core.rundir import RunDir

    tracemalloc.start()
    try:
        run = RunDir(broken_saves / "m" / "lora" / "huge-line")
        assert run.read_status() == {} and "over the 4 MB limit" in str(run.status_error())
        assert RunDir(broken_saves / "m" / "lora" / "huge-line-events.jsonl").read_events() == []
        with pytest.raises(ConfigError, match="is over 4 MB"):
            RunConfig.load(broken_saves / "m" / "lora" / "huge-line-run.yaml" / "run.yaml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20, f"reading took {peak >> 20} MB: a huge line was read whole"


def test_reserved_dataset_names_are_refused(tmp_path):
    from engine.core.data.identity import build_identity
    from engine.core.data.upload import register_upload

    d = data_dir(tmp_path, {"ds": {"file_name": "a.json"}}, {"a.json": [ROW]})
    upload = tmp_path / "up.jsonl"
    upload.write_text(json.dumps(ROW) + "\n", encoding="utf-8")
    before = snapshot(d)
    for name in ("dataset_info", "Dataset_Info"):
        with pytest.raises(DataError, match=f"dataset name '{name}' is reserved"):
            register_upload(d, name, upload, overwrite=True)
        with pytest.raises(DataError, match="is reserved"):
            build_identity(d, name, "Nova", "Acme", overwrite=True)
    assert snapshot(d) == before


DEEP = "[" * 1_000_000 + "]" * 1_000_000


def test_deeply_nested_json_is_a_data_error_naming_file_and_row(tmp_path):
    from engine.core.data.upload import inspect_file

    d = data_dir(tmp_path, {"lines": {"file_name": "deep.jsonl"}, "whole": {"file_name": "deep.json"}},
                 {"deep.jsonl": json.dumps(ROW) + "\n" + DEEP + "\n", "deep.json": DEEP})
    err = data_error(d, "lines")
    assert (err.file, err.row, err.key) == ("deep.jsonl", 2, "too_deep") and str(err) == \
        "deep.jsonl, row 2: nested too deeply to read"
    assert str(data_error(d, "whole")) == "deep.json: nested too deeply to read"
    inspection = inspect_file(d / "deep.jsonl")
    assert [str(e) for e in inspection.errors] == ["deep.jsonl, row 2: nested too deeply to read"]
    (d / "dataset_info.json").write_text(DEEP, encoding="utf-8")
    with pytest.raises(DataError, match="dataset_info.json: nested too deeply to read"):
        read_registry(d)
    (d / "dataset_info.json").write_bytes(b'{"ds": "' + b"x" * (20 << 20) + b'"}')
    with pytest.raises(DataError, match=r"dataset_info.json: the file is 20 MB, over the 16 MB limit"):
        read_registry(d)


def test_escaping_names_are_refused_in_the_users_language(tmp_path):
    """confined()'s refusals carry keys: the page words them in its language, after the field's label."""
    from engine.core.paths import PathError, confined
    from webui.errors import error_text

    (tmp_path / "configs").mkdir()
    for name, key in (("../x.yaml", "outside"), ("/etc/x.yaml", "not_inside"), (".", "names_root"), ("", "empty"),
                      ("a\x00b", "nul")):
        with pytest.raises(PathError) as refused:
            confined(tmp_path / "configs", name, "config path", "config.path")
        assert refused.value.key == key
        zh = error_text("zh", refused.value)
        assert zh.startswith("配置路径："), zh
        assert "outside" not in zh and "absolute" not in zh, zh


def test_a_name_typed_before_the_page_load_answer_is_kept(app, roots):
    """The page-load event gives each name box a fresh name, unless the user typed one in the meantime."""
    [fn] = [f for f in app.fns.values() if any(event == "load" for _, event in f.targets)
            and _block(app, "train-output-dir") in f.outputs]
    boxes = ("train-output-dir", "eval-output-dir", "export-dir")

    def load(**typed) -> dict:
        args = [typed.get(getattr(b, "elem_id", None), b.value) for b in fn.inputs]
        out = fn.fn(None, *args)
        return {b.elem_id: v for b, v in zip(fn.outputs, out) if getattr(b, "elem_id", None) in boxes}

    fresh = load()
    assert all(isinstance(v, str) and v for v in fresh.values()), fresh  # served names replaced by new ones
    kept = load(**{box: f"typed-{i}" for i, box in enumerate(boxes)})
    assert kept == {box: {"__type__": "update"} for box in boxes}, kept  # gr.skip(): what was typed stays


def test_start_refuses_a_probe_dataset_that_gives_no_probes_and_a_bad_probe_line(app, roots):
    """Named before anything starts: the dataset by its registry entry, a probe line by its number."""
    message = call(app, "btn-start", field_train_probe_dataset="nope")[0]
    assert message.startswith("Invalid value — ") and "dataset 'nope' is not registered" in message, message
    message = call(app, "btn-start", field_train_probe_questions="Fine?\nYear? => regex: (19")[0]
    assert message.startswith("Invalid value — Probe questions: line 2: not a valid regular expression: "), message
    assert not list(roots["saves"].rglob("run.yaml"))


def test_probe_dataset_list_follows_the_data_folder(app, tmp_path):
    """The Probe dataset list offers none and the folder's usable datasets, refreshed with the Dataset list."""
    d = data_dir(tmp_path, {"ok": {"file_name": "a.json"}, "broken": {"formatting": "alpaca"}}, {"a.json": [ROW]})
    on_change = _handler(app, "field-data-dataset_dir", "change", output="field-train-probe_dataset")
    datasets, probe_datasets = call_as_gradio(on_change.fn, [str(d), []])
    assert datasets["choices"] == [("ok", "ok")] and probe_datasets["choices"] == [("", ""), ("ok", "ok")]
    _, probe_datasets = call_as_gradio(on_change.fn, [str(tmp_path / "nowhere"), []])
    assert probe_datasets["choices"] == [("", "")]
