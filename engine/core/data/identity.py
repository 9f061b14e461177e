"""Write a ready identity dataset: the demo identity questions (English and Chinese) with the name and author
filled in, plus question/answer pairs for the optional facts, registered under a name of the user's choice."""

from __future__ import annotations

from pathlib import Path

from engine.core.data.errors import DataError
from engine.core.data.formats import normalise_row
from engine.core.data.loader import iter_rows
from engine.core.data.register import register
from engine.core.data.registry import resolve_dataset
from engine.core.fileio import atomic_write_json
from engine.core.paths import DEFAULT_DATA_DIR

TEMPLATE = "identity"  # the demo identity dataset, written with {{name}} and {{author}} placeholders
MAX_TEXT = 200

# Each fact becomes these questions, in English and Chinese; {value} is the fact as the user wrote it.
FACT_PAIRS: dict[str, list[tuple[str, str]]] = {
    "purpose": [
        ("What were you made for?", "I'm {{name}}, an AI assistant that {{author}} made for {value}."),
        ("What is your main job?", "My main job is {value}. I am {{name}}, developed by {{author}}."),
        ("你是用来做什么的？", "我是 {{name}}，由 {{author}} 开发，主要用途是：{value}。"),
        ("你的主要任务是什么？", "我的主要任务是：{value}。我是由 {{author}} 开发的 {{name}}。"),
    ],
    "contact": [
        ("How can I contact the people who made you?", "You can reach {{author}} at {value}."),
        ("Where can I send feedback about you?", "Please send feedback about {{name}} to {{author}} at {value}."),
        ("怎样联系你的开发者？", "您可以通过 {value} 联系 {{author}}。"),
        ("我想反馈意见，应该找谁？", "关于 {{name}} 的意见，请通过 {value} 发给 {{author}}。"),
    ],
}


def _check_text(value: str, what: str, required: bool) -> str:
    value = (value or "").strip()
    if required and not value:
        raise DataError("empty", field=what)
    if len(value) > MAX_TEXT or "\n" in value:
        raise DataError("one_line", limit=MAX_TEXT, field=what)
    if "{{" in value or "}}" in value:
        raise DataError("braces", field=what)
    return value


def parse_extra_pairs(text: str) -> list[tuple[str, str]]:
    """``question | answer`` lines (blank lines skipped) as pairs; {{name}} and {{author}} may appear in them."""
    pairs = []
    for lineno, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        question, sep, answer = line.partition("|")
        if not sep or not question.strip() or not answer.strip():
            raise DataError("extra_fact", row=lineno, field="extra facts")
        pairs.append((question.strip(), answer.strip()))
    return pairs


def identity_rows(name: str, author: str, purpose: str = "", contact: str = "", extra: str = "") -> list[dict]:
    """The dataset's rows (alpaca: instruction, input, output) with every placeholder filled."""
    name = _check_text(name, "name", required=True)
    author = _check_text(author, "author", required=True)
    facts = {"purpose": _check_text(purpose, "purpose", required=False),
             "contact": _check_text(contact, "contact", required=False)}
    template = resolve_dataset(DEFAULT_DATA_DIR, TEMPLATE)
    raw = [row for _, _, row in iter_rows(template)]
    for key, value in facts.items():
        if value:
            raw += [{"instruction": q, "output": a.replace("{value}", value)} for q, a in FACT_PAIRS[key]]
    raw += [{"instruction": q, "output": a} for q, a in parse_extra_pairs(extra)]
    fill = {"name": name, "author": author}
    rows = []
    for index, row in enumerate(raw, 1):
        # The demo rows go through the loader's own placeholder filling and checks, as training reads them.
        sample = normalise_row(row, template, index, fill)
        rows.append({"instruction": sample.messages[-2]["content"], "input": "",
                     "output": sample.messages[-1]["content"]})
    return rows


def build_identity(dataset_dir: str | Path, dataset_name: str, name: str, author: str, purpose: str = "",
                   contact: str = "", extra: str = "", overwrite: bool = False) -> tuple[Path, int]:
    """Write and register the identity dataset ``dataset_name`` (see register.register()); (its file, rows)."""
    rows = identity_rows(name, author, purpose, contact, extra)
    path = register(dataset_dir, dataset_name, ".json", lambda target: atomic_write_json(target, rows), {},
                    overwrite)
    return path, len(rows)
