"""Every UI text in every language: no key misses a language, translations keep the English one's format fields,
code spans and placeholders, and a label that reads the same as the English one is a name on a short list."""

from __future__ import annotations

import re
import string
import time

import pytest

from webui.locales import CHOICE_TEXT, FIELD_TEXT, LANGUAGES, MESSAGES, choice_labels, field_text, t

CODES = [code for _, code in LANGUAGES]
OTHERS = [code for code in CODES if code != "en"]
# Texts that are names or identifiers in every language.
SAME_EVERYWHERE = {"CPU", "DPO", "ORPO", "KTO", "ROUGE-1", "ROUGE-2", "ROUGE-L", "BLEU-4", "Top-p"}
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
    from engine.models import CUSTOM_MODEL
    from webui.top_bar import model_name_choices

    for lang in CODES:
        assert model_name_choices(lang)[-1] == (t(lang, "custom_model"), CUSTOM_MODEL)
