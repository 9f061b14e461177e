"""Tell an unregistered file's layout from its first rows: alpaca, sharegpt, or preference pairs in either; an
alpaca or sharegpt file with a true/false label column is KTO data.

The result is the dataset_info.json entry (less ``file_name``) that reads the file, and the column mapping it
relies on, which the upload form shows for confirmation before anything is registered.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.data.errors import DataError

KINDS = ("alpaca", "sharegpt", "preference")

# Column names each role is looked for under, in order of preference (LlamaBoard's names first).
_ALPACA_NAMES = {"prompt": ("instruction", "prompt", "question"), "query": ("input",),
                 "response": ("output", "response", "answer"), "system": ("system",), "history": ("history",)}
_MESSAGES_NAMES = ("conversations", "messages")
_TAG_LAYOUTS = ({"role_tag": "from", "content_tag": "value"}, {"role_tag": "role", "content_tag": "content"})
# A KTO label column (each answer desirable or not): "kto_tag" (the registry's own name) always is one, "label"
# when its values are true/false (an arena's KTO export writes "label"; a class label of other values is not one).
_KTO_NAMES = ("kto_tag", "label")
_LABEL_TEXTS = ("true", "false", "1", "0")  # as the loader reads a csv cell


def _kto_column(rows: list[dict], columns: list[str]) -> str | None:
    if "kto_tag" in columns:
        return "kto_tag"
    if "label" not in columns:
        return None
    values = [row["label"] for row in rows if row.get("label") is not None]
    if any(isinstance(v, bool) for v in values):
        return "label"  # JSON true/false: a label; any other value in a row is refused by the upload check
    labels = [v for v in values if v in (0, 1) or (isinstance(v, str) and v.strip().lower() in _LABEL_TEXTS)]
    return "label" if labels and len(labels) == len(values) else None


@dataclass
class Detection:
    """``kind``: one of KINDS. ``entry``: the registry entry without file_name. ``mapping``: (role, what it is in
    the file) pairs in the registry's vocabulary, e.g. ("prompt", "instruction"), ("user_tag", "human")."""

    kind: str
    entry: dict
    mapping: list[tuple[str, str]]


def _first(names: tuple[str, ...], columns: list[str]) -> str | None:
    return next((n for n in names if n in columns), None)


def _tags(rows: list[dict], column: str) -> dict:
    """The role/content keys and role values of the turns in ``column`` (and of chosen/rejected objects)."""
    turns = [turn for row in rows for turn in (row.get(column) or []) if isinstance(turn, dict)]
    turns += [row[key] for row in rows for key in ("chosen", "rejected") if isinstance(row.get(key), dict)]
    layout = next((lay for lay in _TAG_LAYOUTS if any(lay["role_tag"] in turn for turn in turns)), _TAG_LAYOUTS[0])
    roles = {turn.get(layout["role_tag"]) for turn in turns}
    tags = dict(layout)
    tags["user_tag"] = "human" if "human" in roles else "user" if "user" in roles else "human"
    tags["assistant_tag"] = "gpt" if "gpt" in roles else "assistant" if "assistant" in roles else "gpt"
    tags["system_tag"] = "system"
    return tags


def _missing(kind: str, what: str, names: tuple[str, ...], columns: list[str]) -> DataError:
    if not columns:
        return DataError(f"no_{what}_column_no_columns", kind=kind, names=", ".join(names))
    return DataError(f"no_{what}_column", kind=kind, names=", ".join(names), columns=", ".join(columns))


def detect(rows: list, kind: str | None = None) -> Detection:
    """The layout of ``rows`` (the file's first rows), as ``kind`` if given, else guessed: chosen and rejected
    columns make preference data, a conversations/messages column sharegpt, an instruction column alpaca.
    Raises a DataError naming what is missing."""
    if kind is not None and kind not in KINDS:
        raise DataError("unknown_kind", kind=kind, kinds=", ".join(KINDS))
    dicts = [row for row in rows if isinstance(row, dict)]
    columns = list(dict.fromkeys(key for row in dicts for key in row))
    messages = _first(_MESSAGES_NAMES, columns)
    prompt = _first(_ALPACA_NAMES["prompt"], columns)
    ranking = "chosen" in columns and "rejected" in columns
    if kind is None:
        if ranking:
            kind = "preference"
        elif messages:
            kind = "sharegpt"
        elif prompt:
            kind = "alpaca"
        else:
            if not columns:
                raise DataError("cannot_tell_no_columns")
            raise DataError("cannot_tell", columns=", ".join(columns))
    if kind == "preference" and not ranking:
        raise _missing(kind, "ranking", ("chosen", "rejected"), columns)
    entry: dict = {}
    mapping: list[tuple[str, str]] = []
    conversational = messages is not None if kind == "preference" else kind == "sharegpt"
    if conversational:
        if messages is None:
            raise _missing(kind, "conversation", _MESSAGES_NAMES, columns)
        entry["formatting"] = "sharegpt"
        cols = {"messages": messages}
        if "system" in columns:
            cols["system"] = "system"
    else:
        if prompt is None:
            raise _missing(kind, "instruction", _ALPACA_NAMES["prompt"], columns)
        cols = {"prompt": prompt}
        for role in ("query", "response", "system", "history"):
            if role == "response" and kind == "preference":
                continue  # the two answers take its place
            found = _first(_ALPACA_NAMES[role], columns)
            if role == "response" and found is None:
                raise _missing(kind, "answer", _ALPACA_NAMES["response"], columns)
            if found:
                cols[role] = found
    if kind == "preference":
        entry["ranking"] = True
        cols.update(chosen="chosen", rejected="rejected")
    elif label := _kto_column(dicts, columns):
        cols["kto_tag"] = label
    entry["columns"] = cols
    mapping += list(cols.items())
    if conversational:
        entry["tags"] = _tags(dicts, messages)
        mapping += list(entry["tags"].items())
    return Detection(kind, entry, mapping)
