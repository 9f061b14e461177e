"""The checkpoint arena's errors in the user's language: every ArenaError key raised has a message in each
language with the English template's fields, and webui.errors.error_text renders one; it survives pickling."""

from __future__ import annotations

import pickle

from engine.core.arena import ARENA_MESSAGES, ArenaError
from tests.webui.test_locales import CODES, OTHERS, _engine_error_keys, _fields
from webui.errors import error_text
from webui.locales import MESSAGES


def test_every_arena_error_key_is_translated_with_its_format_fields():
    wrong = [(key, lang) for key, english in ARENA_MESSAGES.items() for lang in CODES
             if _fields(MESSAGES.get(f"arena_err_{key}", {}).get(lang) or "-") != _fields(english)
             or not (MESSAGES[f"arena_err_{key}"].get(lang) or "").strip()]
    assert wrong == [], wrong
    raised = _engine_error_keys("ArenaError", 0)
    assert len(raised) >= len(ARENA_MESSAGES)
    assert [(where, key) for where, key in raised if key not in ARENA_MESSAGES] == []


def test_an_arena_error_renders_in_each_language_and_pickles():
    exc = ArenaError("too_few_models", count=1)
    assert error_text("en", exc) == str(exc) == "pick at least two different models for the arena (got 1)"
    assert error_text("zh", exc) == "请为竞技场选择至少两个不同的模型（当前 1 个）"
    for lang in OTHERS:
        text = error_text(lang, exc)
        assert "1" in text and "arena" not in text, (lang, text)
    back = pickle.loads(pickle.dumps(exc))  # noqa: S301 - a round trip of our own object
    assert type(back) is ArenaError and str(back) == str(exc) and back.params == exc.params
