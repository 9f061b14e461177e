"""Turn one raw row (alpaca or sharegpt layout) into a checked sample for a training stage."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.core.data.errors import DataError
from engine.core.data.registry import DatasetSpec


@dataclass
class Sample:
    """One example. ``messages``: user/assistant turns ending with the (chosen) answer; empty for pt.
    ``system``: system prompt or "". ``rejected``: the rejected final answer (rm/dpo/orpo), else None.
    ``kto_tag``: True if the final answer is desirable, False if not (kto), else None.
    ``text``: plain pre-training text (pt), else None.
    """

    messages: list = field(default_factory=list)
    system: str = ""
    rejected: str | None = None
    kto_tag: bool | None = None
    text: str | None = None

    def chat_messages(self) -> list[dict]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.messages

    def rejected_messages(self) -> list[dict]:
        """chat_messages() with the rejected answer in place of the chosen one."""
        if self.rejected is None:
            raise ValueError("sample has no rejected answer")
        return self.chat_messages()[:-1] + [{"role": "assistant", "content": self.rejected}]

    def pretrain_text(self) -> str:
        """The text to train on for pt; a conversation's contents joined if the sample has no text."""
        if self.text is not None:
            return self.text
        return "\n".join(m["content"] for m in self.chat_messages())


def _text(row: dict, key: str, file: str, index: int, required: bool) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and value != value):  # NaN from csv/parquet
        if required:
            raise DataError("missing", file=file, row=index, field=key)
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError("not_text", kind=type(value).__name__, file=file, row=index, field=key)
    return str(value)


def _alpaca(row: dict, spec: DatasetSpec, file: str, index: int) -> Sample:
    cols = spec.columns
    prompt = _text(row, cols["prompt"], file, index, required=True)
    query = _text(row, cols["query"], file, index, required=False)
    rejected = None
    if spec.ranking:  # the two answers replace the response column
        response = _text(row, cols["chosen"], file, index, required=True)
        rejected = _text(row, cols["rejected"], file, index, required=True)
    else:
        response = _text(row, cols["response"], file, index, required=True)
    system = _text(row, cols["system"], file, index, required=False)
    messages = []
    history = row.get(cols["history"])
    if history is not None:
        if not isinstance(history, list):
            raise DataError("history_not_list", file=file, row=index, field=cols["history"])
        for turn in history:
            if not (isinstance(turn, (list, tuple)) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
                raise DataError("history_item", file=file, row=index,
                                field=cols["history"])
            messages += [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": turn[1]}]
    user = "\n".join(part for part in (prompt, query) if part)
    if not user.strip():
        raise DataError("empty_instruction", file=file, row=index, field=cols["prompt"])
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": response}]
    return Sample(messages=messages, system=system, rejected=rejected)


def _turns(row: dict, spec: DatasetSpec, file: str, index: int) -> tuple[str, list]:
    """(column name, non-empty list of raw turns)."""
    key = spec.columns["messages"]
    turns = row.get(key)
    if turns is None and key == "conversations" and "messages" in row:
        key, turns = "messages", row["messages"]  # OpenAI layout without a columns entry
    if not isinstance(turns, list) or not turns:
        raise DataError("no_turns", file=file, row=index, field=key)
    return key, turns


def _role_content(turn: dict, tags: dict) -> tuple[str | None, object, object]:
    """(user/assistant/system or None, role as written, content).

    The OpenAI layout (role/content, user/assistant) is accepted alongside the dataset's tags.
    """
    roles = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant", tags["system_tag"]: "system",
             "user": "user", "assistant": "assistant", "system": "system"}
    raw_role = turn.get(tags["role_tag"], turn.get("role"))
    return roles.get(raw_role), raw_role, turn.get(tags["content_tag"], turn.get("content"))


def _answer(row: dict, spec: DatasetSpec, column: str, file: str, index: int) -> str:
    """The text of a sharegpt chosen/rejected column: one assistant message object."""
    key = spec.columns[column]
    turn = row.get(key)
    if turn is None:
        raise DataError("missing", file=file, row=index, field=key)
    tags = spec.tags
    example = f'{{"{tags["role_tag"]}": "{tags["assistant_tag"]}", "{tags["content_tag"]}": "..."}}'
    if not isinstance(turn, dict):
        raise DataError("answer_not_object", example=example, kind=type(turn).__name__,
                        file=file, row=index, field=key)
    role, raw_role, content = _role_content(turn, tags)
    if role != "assistant":
        raise DataError("answer_role", role=raw_role, file=file, row=index, field=key)
    if not isinstance(content, str):
        raise DataError("answer_content", file=file, row=index, field=key)
    return content


def _sharegpt(row: dict, spec: DatasetSpec, file: str, index: int) -> Sample:
    key, turns = _turns(row, spec, file, index)
    system = _text(row, spec.columns["system"], file, index, required=False)
    messages = []
    for n, turn in enumerate(turns, 1):
        if not isinstance(turn, dict):
            raise DataError("turn_not_object", n=n, file=file, row=index, field=key)
        role, raw_role, content = _role_content(turn, spec.tags)
        if role is None:
            raise DataError("turn_role", n=n, role=raw_role, file=file, row=index, field=key)
        if not isinstance(content, str):
            raise DataError("turn_content", n=n, file=file, row=index, field=key)
        if role == "system":
            if n != 1:
                raise DataError("system_first", n=n, file=file, row=index, field=key)
            system = content
            continue
        expected = "user" if len(messages) % 2 == 0 else "assistant"
        if role != expected:
            raise DataError("turn_order", n=n, expected=expected, role=role, file=file, row=index, field=key)
        messages.append({"role": role, "content": content})
    if spec.ranking:  # the prompt turns end with the question; the answers are in chosen/rejected
        if not messages or messages[-1]["role"] != "user":
            raise DataError("ranking_ends_with_user", file=file, row=index, field=key)
        chosen = _answer(row, spec, "chosen", file, index)
        rejected = _answer(row, spec, "rejected", file, index)
        messages.append({"role": "assistant", "content": chosen})
        return Sample(messages=messages, system=system, rejected=rejected)
    if not messages or messages[-1]["role"] != "assistant":
        raise DataError("no_final_answer", file=file, row=index, field=key)
    return Sample(messages=messages, system=system)


def _pretrain(row: dict, spec: DatasetSpec, file: str, index: int) -> Sample:
    """Plain text: alpaca prompt (+ query, response if present), or every sharegpt turn's content."""
    if spec.formatting == "alpaca":
        cols = spec.columns
        parts = [_text(row, cols["prompt"], file, index, required=True)]
        parts += [_text(row, cols[c], file, index, required=False) for c in ("query", "response")]
        key = cols["prompt"]
    else:
        key, turns = _turns(row, spec, file, index)
        parts = []
        for n, turn in enumerate(turns, 1):
            content = _role_content(turn, spec.tags)[2] if isinstance(turn, dict) else None
            if not isinstance(content, str):
                raise DataError("turn_no_text", n=n, file=file, row=index, field=key)
            parts.append(content)
    text = "\n".join(p for p in parts if p)
    if not text.strip():
        raise DataError("empty_text", file=file, row=index, field=key)
    return Sample(text=text)


def _kto_tag(row: dict, key: str, file: str, index: int) -> bool:
    value = row.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")  # csv cells are text
    if value is None or (isinstance(value, float) and value != value):
        raise DataError("missing", file=file, row=index, field=key)
    raise DataError("kto_tag", value=value, file=file, row=index, field=key)


def normalise_row(row: object, spec: DatasetSpec, index: int, fill: dict | None = None,
                  stage: str = "sft", file: str | None = None) -> Sample:
    """Check and convert one row as ``stage`` reads it; ``fill`` replaces ``{{key}}`` placeholders (identity data).

    pt gives ``text``; other stages a conversation, with ``rejected`` for ranking data and, for kto,
    ``kto_tag`` when the dataset names a kto_tag column. Which stage may use which dataset is checked
    by ``check_stage``; loader.load_samples shapes the samples for the stage. ``file`` names the row's file in
    errors (default: the dataset's file).
    """
    file = file or spec.path.name
    if not isinstance(row, dict):
        raise DataError("row_not_object", kind=type(row).__name__, file=file, row=index)
    if stage == "pt":
        sample = _pretrain(row, spec, file, index)
    elif spec.formatting == "alpaca":
        sample = _alpaca(row, spec, file, index)
    else:
        sample = _sharegpt(row, spec, file, index)
    if stage == "kto" and "kto_tag" in spec.columns:
        sample.kto_tag = _kto_tag(row, spec.columns["kto_tag"], file, index)
    if fill:
        sample.system = _fill(sample.system, fill)
        for m in sample.messages:
            m["content"] = _fill(m["content"], fill)
        if sample.rejected is not None:
            sample.rejected = _fill(sample.rejected, fill)
        if sample.text is not None:
            sample.text = _fill(sample.text, fill)
    return sample


def _fill(text: str, fill: dict) -> str:
    for key, value in fill.items():
        text = text.replace("{{" + key + "}}", value)
    return text
