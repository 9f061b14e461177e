"""Every UI text in every language: no key misses a language, translations keep the English one's format fields,
code spans and placeholders, and a label that reads the same as the English one is a name on a short list."""

from __future__ import annotations

import json
import re
import string
import time

import pytest

from webui.locales import CHOICE_TEXT, FIELD_TEXT, LANGUAGES, MESSAGES, choice_labels, field_text, t

CODES = [code for _, code in LANGUAGES]
OTHERS = [code for code in CODES if code != "en"]
# Texts that are names or identifiers in every language.
SAME_EVERYWHERE = {"CPU", "DPO", "ORPO", "KTO", "PPO", "GRPO", "ROUGE-1", "ROUGE-2", "ROUGE-L", "BLEU-4", "Top-p",
                   "Hugging Face", "ModelScope", "Modelers (openMind)"}  # the model hubs' names
# LlamaBoard's Chinese keeps these as they are.
SAME_IN = {"zh": {"Ftx gamma", "DeepSpeed stage"}}
CODE_SPAN = re.compile(r"`[^`]+`")
PLACEHOLDER = re.compile(r"\{\{\w+\}\}")  # identity data's {{name}}, shown as it is


def _fields(text: str) -> list[tuple]:
    """The str.format replacement fields of ``text``: (name, format spec, conversion), sorted."""
    return sorted((name, spec, conv) for _, name, spec, conv in string.Formatter().parse(text) if name is not None)


def _all_texts():
    """(kind, key, lang, text) for every label, info, choice label and message, in every language present."""
    for key, entry in FIELD_TEXT.items():
        for lang, (label, info) in entry.items():
            yield "label", key, lang, label
            yield "info", key, lang, info
    for key, values in CHOICE_TEXT.items():
        for value, entry in values.items():
            for lang, label in entry.items():
                yield "choice", f"{key}={value}", lang, label
    for key, entry in MESSAGES.items():
        for lang, text in entry.items():
            yield "message", key, lang, text


def _english(kind: str, key: str) -> str:
    if kind in ("label", "info"):
        return FIELD_TEXT[key]["en"][kind == "info"]
    if kind == "choice":
        field, value = key.split("=", 1)
        return CHOICE_TEXT[field][value]["en"]
    return MESSAGES[key]["en"]


def test_languages_are_listed_by_their_own_names():
    assert LANGUAGES == (("English", "en"), ("中文", "zh"), ("日本語", "ja"), ("한국어", "ko"), ("Русский", "ru"))


def test_every_key_has_every_language():
    missing = [(key, lang) for key, entry in FIELD_TEXT.items() for lang in CODES
               if lang not in entry or not all(part.strip() for part in entry[lang])]
    missing += [(f"{key}={value}", lang) for key, values in CHOICE_TEXT.items() for value, entry in values.items()
                for lang in CODES if not (entry.get(lang) or "").strip()]
    missing += [(key, lang) for key, entry in MESSAGES.items() for lang in CODES if not (entry.get(lang) or "").strip()]
    assert missing == [], f"untranslated: {missing}"
    extra = [(kind, key, lang) for kind, key, lang, _ in _all_texts() if lang not in CODES]
    assert extra == [], f"languages missing from LANGUAGES: {extra}"


def test_translations_keep_format_fields_code_spans_and_placeholders():
    wrong = []
    for kind, key, lang, text in _all_texts():
        english = _english(kind, key)
        if kind == "message" and _fields(text) != _fields(english):
            wrong.append((key, lang, "format fields", _fields(text), _fields(english)))
        for pattern, what in ((CODE_SPAN, "code spans"), (PLACEHOLDER, "placeholders")):
            if sorted(pattern.findall(text)) != sorted(pattern.findall(english)):
                wrong.append((key, lang, what, pattern.findall(text), pattern.findall(english)))
    assert wrong == [], wrong


def test_nothing_is_left_in_english():
    """A text the same as the English one, or without a letter of its own script, is an untranslated copy, unless it
    is a name on the list or has no words at all (", ", " + {adapter}")."""
    copies = []
    for kind, key, lang, text in _all_texts():
        if lang == "en" or text in SAME_EVERYWHERE or text in SAME_IN.get(lang, ()):
            continue
        words = re.sub(r"\{[^{}]*\}", "", CODE_SPAN.sub("", text))
        if not re.search(r"[A-Za-z]", words):
            continue
        if text == _english(kind, key) or not re.search(r"[^\W\d_A-Za-z]", words):
            copies.append((kind, key, lang, text))
    assert copies == [], copies


def test_labels_tell_fields_apart_as_in_english():
    """Two controls share a label in a language only where they share it in English (tests find controls by it)."""
    for lang in OTHERS:
        by_label: dict[str, set[str]] = {}
        for key in FIELD_TEXT:
            by_label.setdefault(field_text(lang, key)[0], set()).add(field_text("en", key)[0])
        assert {label: en for label, en in by_label.items() if len(en) > 1} == {}, lang


@pytest.mark.parametrize("lang", CODES)
def test_every_message_formats(lang):
    for key, entry in MESSAGES.items():
        args = {name: 1.5 for name, _, _ in _fields(entry["en"])}
        text = t(lang, key, **args)
        assert text and "{" not in text.replace("{{", ""), (lang, key, text)
    for key in CHOICE_TEXT:
        values = list(CHOICE_TEXT[key])
        assert [v for _, v in choice_labels(lang, key, values)] == values


def test_queue_table_is_in_the_language():
    from webui.queue_panel import QueueView, queue_markdown

    class Waiting:  # a RunDir as the table reads it
        path = "saves/m/lora/run"

        def read_status(self):
            return {"command": "eval", "created_at": time.time() - 185}

    for lang in CODES:
        text = queue_markdown(lang, QueueView(None, (Waiting(),)))
        assert t(lang, "queue_waited_min", minutes=3) in text and t(lang, "queue_kind_eval") in text, (lang, text)


def test_custom_model_entry_is_in_the_language():
    from engine.core.catalogue import CUSTOM_MODEL
    from webui.top_bar import model_name_choices

    for lang in CODES:
        assert model_name_choices(lang)[-1] == (t(lang, "custom_model"), CUSTOM_MODEL)


def _engine_error_keys(error_class: str, key_arg: int) -> list[tuple[str, str]]:
    """(file:line, key or key prefix + "*") of every ``error_class(...)`` call in engine/ and webui/, its key the
    positional argument ``key_arg``: a literal key
    (or two, of ``a if c else b``), or the literal start of an f-string key (``f"extra_args_{kind}"``)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    found = []
    for path in sorted((root / "engine").rglob("*.py")) + sorted((root / "webui").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == error_class:
                key = node.args[key_arg] if len(node.args) > key_arg else None
                where = f"{path.relative_to(root)}:{node.lineno}"
                options = [key.body, key.orelse] if isinstance(key, ast.IfExp) else [key]  # "a" if int else "b"
                if all(isinstance(option, ast.Constant) for option in options):
                    found += [(where, option.value) for option in options]
                elif isinstance(key, ast.JoinedStr) and isinstance(key.values[0], ast.Constant):
                    found.append((where, key.values[0].value + "*"))
                elif isinstance(key, ast.Attribute) and key.attr == "key":
                    continue  # a copy of a caught error (exc.key): checked where that one is raised
                elif isinstance(key, ast.Subscript) and getattr(key.slice, "value", None) == "key":
                    continue  # rebuilt from a job's status.json (record["key"]): checked where it was raised
                else:
                    found.append((where, ast.dump(key) if key else "no key"))
    return found


def test_every_config_error_key_is_translated_with_its_format_fields():
    """Each engine.core.config.CONFIG_MESSAGES key has a cfg_err_ message in every language, with the English template's
    format fields (the UI fills them with the error's params), and every ConfigError raised names such a key."""
    from engine.core.config import CONFIG_MESSAGES

    wrong = []
    for key, english in CONFIG_MESSAGES.items():
        entry = MESSAGES.get(f"cfg_err_{key}", {})
        for lang in CODES:
            if not (entry.get(lang) or "").strip():
                wrong.append((key, lang, "missing"))
            elif _fields(entry[lang]) != _fields(english):
                wrong.append((key, lang, _fields(entry[lang]), _fields(english)))
    assert wrong == [], wrong
    assert [k for k in MESSAGES if k.startswith("cfg_err_") and k[8:] not in CONFIG_MESSAGES] == []  # none stale
    raised = _engine_error_keys("ConfigError", 1)
    assert len(raised) > 40
    known = set(CONFIG_MESSAGES) | {key[:i] + "*" for key in CONFIG_MESSAGES for i in range(1, len(key))}
    unknown = [(where, key) for where, key in raised if key not in known]
    assert unknown == [], unknown


@pytest.mark.parametrize("text, key", [('[1]', "list"), ('"x"', "string"), ("3", "number"), ("true", "bool"),
                                       ("null", "null")])
def test_extra_args_of_each_json_kind_have_their_own_message(text, key):
    """The f-string keys of extra_args exist for every JSON kind (the static check above only sees their prefix)."""
    from engine.core.config import ConfigError, RunConfig
    from webui.errors import error_text

    cfg = RunConfig()
    cfg.train.extra_args = text
    with pytest.raises(ConfigError) as info:
        cfg.extra_arguments()
    assert info.value.key == f"extra_args_{key}"
    assert "JSON" in error_text("zh", info.value) and "must be" not in error_text("zh", info.value)
    for arg, value, wanted in (("weight_decay", "x", "number"), ("torch_compile", 1, "bool"),
                               ("lr_scheduler_kwargs", 1, "object"), ("optim_args", 1, "text")):
        cfg.train.extra_args = json.dumps({arg: value})
        with pytest.raises(ConfigError) as info:
            cfg.extra_arguments()
        assert info.value.key == f"extra_arg_{wanted}"
        assert error_text("ru", info.value).startswith(f"Дополнительные аргументы › {arg}: ожидал")


def test_config_error_renders_in_each_language_with_the_field_label():
    """A bad value through RunConfig.from_dict: the UI text names the form's label and says why in that language,
    while str() keeps the dotted name and the English the command line prints."""
    from engine.core.config import CONFIG_MESSAGES, ConfigError, RunConfig
    from webui.errors import error_text
    from webui.locales import field_label

    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"data": {"datasets": ["identity"], "cutoff_len": -5}})
    exc = info.value
    assert str(exc) == "data.cutoff_len: must be at least 8, got -5"
    assert error_text("en", exc) == "Cutoff length: must be at least 8, got -5" == \
        f"{field_label('en', 'data.cutoff_len')}: must be at least 8, got -5"
    english_words = CONFIG_MESSAGES["at_least"].split("{")[0].strip()  # "must be at least"
    for lang in OTHERS:
        text = error_text(lang, exc)
        assert text.startswith(field_label(lang, "data.cutoff_len")), (lang, text)
        assert "8" in text and "-5" in text and english_words not in text and "cutoff_len" not in text, (lang, text)
    assert error_text("zh", exc) == "截断长度：不能小于 8，实际为 -5"


def test_every_data_error_key_is_translated_with_its_format_fields():
    """As for ConfigError: each engine.core.data.errors.DATA_MESSAGES key has a data_err_ message in every language with
    the English template's format fields, and every DataError raised names such a key."""
    from engine.core.data.errors import DATA_MESSAGES

    wrong = [(key, lang) for key, english in DATA_MESSAGES.items() for lang in CODES
             if _fields(MESSAGES.get(f"data_err_{key}", {}).get(lang) or "-") != _fields(english)
             or not (MESSAGES[f"data_err_{key}"].get(lang) or "").strip()]
    assert wrong == [], wrong
    assert [k for k in MESSAGES if k.startswith("data_err_") and k[9:] not in DATA_MESSAGES] == []
    raised = _engine_error_keys("DataError", 0)
    assert len(raised) > 60
    known = set(DATA_MESSAGES) | {key[:i] + "*" for key in DATA_MESSAGES for i in range(1, len(key))}
    assert [(where, key) for where, key in raised if key not in known] == []


def test_data_error_renders_where_and_why_in_each_language():
    """The real format detection refusing a file, and a row problem: the file name as it is; the row, the field
    and the reason in the language."""
    from engine.core.data import DataError
    from engine.core.data.detect import detect
    from engine.core.data.errors import DATA_MESSAGES
    from webui.errors import error_text

    with pytest.raises(DataError) as info:
        detect([{"instruction": "q", "output": "a"}], "sharegpt")
    exc = info.value
    assert str(exc) == ("cannot read it as sharegpt: no conversation column (looked for conversations, messages; "
                        "the file has instruction, output)")
    assert error_text("zh", exc) == ("无法按 sharegpt 读取：没有对话列（查找了 conversations, messages；"
                                     "文件中的列为 instruction, output）")
    exc = DataError("missing", file="a.jsonl", row=3, field="output")
    assert error_text("en", exc) == str(exc) == "a.jsonl, row 3, field 'output': missing"
    assert error_text("zh", exc) == "a.jsonl，第 3 行，字段 'output'：缺失"
    for lang in OTHERS:
        text = error_text(lang, exc)
        assert text.startswith("a.jsonl") and "3" in text and "'output'" in text, (lang, text)
        assert "row" not in text and "field" not in text and DATA_MESSAGES["missing"] not in text, (lang, text)


def test_engine_errors_survive_pickling_with_key_and_params():
    """A worker process's error reaches the parent pickled: it must come back whole, not fail on its own text."""
    import pickle

    from engine.core.config import ConfigError
    from engine.core.data import DataError
    from engine.core.paths import PathError

    for exc in (ConfigError("data.cutoff_len", "at_least", low=8, value=-5),
                PathError("data folder 'x' is outside", "outside_data_roots", "data.dataset_dir", path="x", roots="r"),
                DataError("missing", file="a.jsonl", row=3, field="output"),
                DataError("refused_more", first=DataError("no_rows", file="b.json"), more=2)):
        back = pickle.loads(pickle.dumps(exc))  # noqa: S301 - a round trip of our own objects
        assert type(back) is type(exc) and str(back) == str(exc) and back.key == exc.key
        assert str(back.params) == str(exc.params)


# One broken text for each reason json's parser gives (JSONDecodeError.msg).
_BROKEN_JSON = ['', '{"a": 1,', '{"a" 1}', '[1 2]', '{"a": 1} x', '"abc', '"a\tb"', '"\\q"', '"\\u12"']


@pytest.mark.parametrize("text", _BROKEN_JSON)
def test_json_parser_reasons_read_in_each_language(text):
    """Invalid JSON in the Extra arguments box, a data file and a JSON Lines line: the parser's reason is shown in
    the page's language too (it is the one part of those messages that comes from Python), English as Python says it."""
    from engine.core.config import ConfigError, RunConfig
    from engine.core.data import DataError
    from engine.core.fileio import parse_json
    from webui.errors import error_text
    from webui.locales import JSON_REASONS

    with pytest.raises(json.JSONDecodeError) as parsed:
        json.loads(text)
    reason = parsed.value.msg
    assert reason in JSON_REASONS
    errors = []
    if text:  # (an empty box means no extra arguments)
        cfg = RunConfig()
        cfg.train.extra_args = text
        with pytest.raises(ConfigError) as info:
            cfg.extra_arguments()
        errors.append(info.value)
    for row in (None, 3):
        with pytest.raises(DataError) as info:
            parse_json(text, "data.json", row)
        errors.append(info.value)
    for exc in errors:
        assert reason in error_text("en", exc)
        for lang in OTHERS:
            shown = error_text(lang, exc)
            assert reason not in shown and t(lang, JSON_REASONS[reason]) in shown, (lang, shown)
