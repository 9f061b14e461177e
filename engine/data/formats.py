"""Turn one raw row (alpaca or sharegpt layout) into a checked conversation."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.data.errors import DataError
from engine.data.registry import DatasetSpec


@dataclass
class Sample:
    """A conversation: optional system prompt, then user/assistant turns ending with an answer."""

    messages: list = field(default_factory=list)
    system: str = ""

    def chat_messages(self) -> list[dict]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.messages


def _text(row: dict, key: str, file: str, index: int, required: bool) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and value != value):  # NaN from csv/parquet
        if required:
            raise DataError("missing", file=file, row=index, field=key)
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"must be text, got {type(value).__name__}", file=file, row=index, field=key)
    return str(value)


def _alpaca(row: dict, spec: DatasetSpec, file: str, index: int) -> Sample:
    cols = spec.columns
    prompt = _text(row, cols["prompt"], file, index, required=True)
    query = _text(row, cols["query"], file, index, required=False)
    response = _text(row, cols["response"], file, index, required=True)
    system = _text(row, cols["system"], file, index, required=False)
    messages = []
    history = row.get(cols["history"])
    if history is not None:
        if not isinstance(history, list):
            raise DataError("must be a list of [question, answer] pairs", file=file, row=index, field=cols["history"])
        for turn in history:
            if not (isinstance(turn, (list, tuple)) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
                raise DataError("each item must be a [question, answer] pair of texts", file=file, row=index,
                                field=cols["history"])
            messages += [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": turn[1]}]
    user = "\n".join(part for part in (prompt, query) if part)
    if not user.strip():
        raise DataError("empty instruction", file=file, row=index, field=cols["prompt"])
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": response}]
    return Sample(messages=messages, system=system)


_ROLE_KEYS = ("user_tag", "assistant_tag", "system_tag")


def _sharegpt(row: dict, spec: DatasetSpec, file: str, index: int) -> Sample:
    cols, tags = spec.columns, spec.tags
    key = cols["messages"]
    turns = row.get(key)
    if turns is None and key == "conversations" and "messages" in row:
        key, turns = "messages", row["messages"]  # OpenAI layout without a columns entry
    if not isinstance(turns, list) or not turns:
        raise DataError("must be a non-empty list of turns", file=file, row=index, field=key)
    role_tag, content_tag = tags["role_tag"], tags["content_tag"]
    # Accept the OpenAI layout (role/content, user/assistant) alongside from/value.
    roles = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant", tags["system_tag"]: "system",
             "user": "user", "assistant": "assistant", "system": "system"}
    system = _text(row, cols["system"], file, index, required=False)
    messages = []
    for n, turn in enumerate(turns, 1):
        if not isinstance(turn, dict):
            raise DataError(f"turn {n} must be an object", file=file, row=index, field=key)
        raw_role = turn.get(role_tag, turn.get("role"))
        content = turn.get(content_tag, turn.get("content"))
        role = roles.get(raw_role)
        if role is None:
            raise DataError(f"turn {n} has unknown role {raw_role!r}", file=file, row=index, field=key)
        if not isinstance(content, str):
            raise DataError(f"turn {n} content must be text", file=file, row=index, field=key)
        if role == "system":
            if n != 1:
                raise DataError(f"turn {n}: a system turn may only come first", file=file, row=index, field=key)
            system = content
            continue
        expected = "user" if len(messages) % 2 == 0 else "assistant"
        if role != expected:
            raise DataError(f"turn {n} should be a {expected} turn, got {role}", file=file, row=index, field=key)
        messages.append({"role": role, "content": content})
    if not messages or messages[-1]["role"] != "assistant":
        raise DataError("the conversation has no assistant answer at the end", file=file, row=index, field=key)
    return Sample(messages=messages, system=system)


def normalise_row(row: object, spec: DatasetSpec, index: int, fill: dict | None = None) -> Sample:
    """Check and convert one row; ``fill`` replaces ``{{key}}`` placeholders (identity data)."""
    file = spec.path.name
    if not isinstance(row, dict):
        raise DataError(f"must be an object, got {type(row).__name__}", file=file, row=index)
    sample = _alpaca(row, spec, file, index) if spec.formatting == "alpaca" else _sharegpt(row, spec, file, index)
    if fill:
        sample.system = _fill(sample.system, fill)
        for m in sample.messages:
            m["content"] = _fill(m["content"], fill)
    return sample


def _fill(text: str, fill: dict) -> str:
    for key, value in fill.items():
        text = text.replace("{{" + key + "}}", value)
    return text
