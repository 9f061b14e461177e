"""dataset_info.json: LlamaBoard's registry of datasets, read the same way.

An entry is ``"name": {"file_name": "file.json"}`` with optional ``formatting``
(``alpaca`` default, or ``sharegpt``), ``columns`` (mapping our column roles to
the file's column names) and, for sharegpt, ``tags`` (role/content keys and role
values). ``"ranking": true`` marks preference data: the ``chosen`` and ``rejected``
columns hold the two answers (texts for alpaca, one message object each for
sharegpt). A ``kto_tag`` column role names a boolean column marking each answer
desirable or not. Pre-training text is alpaca with ``"columns": {"prompt": "text"}``
and no response column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.core.data.errors import DataError
from engine.core.fileio import parse_json
from engine.core.paths import PathError, confined

REGISTRY_FILE = "dataset_info.json"
# A registry lists datasets by name, a few hundred bytes each: far past this it is not one.
MAX_REGISTRY_BYTES = 16 << 20
SUPPORTED_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")

ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "system": "system",
                  "history": "history", "chosen": "chosen", "rejected": "rejected"}
SHAREGPT_COLUMNS = {"messages": "conversations", "system": "system", "chosen": "chosen", "rejected": "rejected"}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "system_tag": "system"}


@dataclass
class DatasetSpec:
    name: str
    path: Path
    formatting: str = "alpaca"
    columns: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    ranking: bool = False  # rows hold chosen and rejected answers
    pretraining: bool = False  # alpaca entry naming a prompt column but no response: plain text


def read_registry(dataset_dir: str | Path) -> dict:
    """The parsed registry, or a DataError naming what is wrong with it."""
    path = Path(dataset_dir) / REGISTRY_FILE
    if not path.is_file():
        raise DataError("no_registry", registry=REGISTRY_FILE, file=str(path))
    size = path.stat().st_size
    if size > MAX_REGISTRY_BYTES:  # read whole on every listing: a huge file would take the server's memory
        raise DataError("too_big", size_mb=size / 1024 / 1024, limit_mb=MAX_REGISTRY_BYTES >> 20, file=str(path))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError("not_utf8", file=str(path)) from None
    if not text.strip():
        raise DataError("registry_empty", file=str(path))
    raw = parse_json(text, str(path))
    if not isinstance(raw, dict):
        raise DataError("registry_not_object", file=str(path))
    return raw


def unsupported_type(suffix: str, **where) -> DataError:
    return DataError("unsupported_type", suffix=suffix, suffixes=", ".join(SUPPORTED_SUFFIXES), **where)


def _entry_file_name(registry: dict, name: str, reg_file: str) -> str:
    """The entry's file_name as written, or a DataError naming dataset_info.json and the entry."""
    entry = registry[name]
    if not isinstance(entry, dict):
        raise DataError("entry_not_object", file=reg_file, field=name)
    file_name = entry.get("file_name")
    if not isinstance(file_name, str):
        if "hf_hub_url" in entry or "ms_hub_url" in entry:
            raise DataError("hub_dataset", file=reg_file, field=name)
        raise DataError("no_file_name", file=reg_file, field=name)
    return file_name


def scan_registry(dataset_dir: str | Path) -> tuple[list[str], list[DataError]]:
    """(names of the usable datasets: local files of a supported type, or folders; the DataError of the registry
    or of each unusable entry, naming dataset_info.json and the entry), so a broken registry is reported instead
    of showing as an empty list."""
    try:
        registry = read_registry(dataset_dir)
    except DataError as exc:
        return [], [exc]
    reg_file = str(Path(dataset_dir) / REGISTRY_FILE)
    names, problems = [], []
    for name in registry:
        try:
            file_name = _entry_file_name(registry, name, reg_file)
            suffix = Path(file_name).suffix.lower()
            if suffix not in SUPPORTED_SUFFIXES and not (Path(dataset_dir) / file_name).is_dir():
                raise unsupported_type(suffix or file_name, file=reg_file, field=name)
        except DataError as exc:
            problems.append(exc)
            continue
        names.append(name)
    return names, problems


def list_datasets(dataset_dir: str | Path) -> list[str]:
    """Names of the registered datasets that are usable (local files of a supported type)."""
    return scan_registry(dataset_dir)[0]


def resolve_dataset(dataset_dir: str | Path, name: str) -> DatasetSpec:
    registry = read_registry(dataset_dir)
    reg_file = str(Path(dataset_dir) / REGISTRY_FILE)
    if name not in registry:
        raise DataError("not_registered", name=name, file=reg_file)
    file_name = _entry_file_name(registry, name, reg_file)
    entry = registry[name]
    try:
        path = confined(dataset_dir, file_name, what=f"file_name of {name!r}")
    except PathError as exc:
        raise DataError("bad_path", error=exc, file=reg_file, field=name) from None
    if not path.exists():
        raise DataError("no_file", file_name=file_name, file=reg_file, field=name)
    return spec_from_entry(name, path, entry, reg_file)


def spec_from_entry(name: str, path: Path, entry: dict, reg_file: str = REGISTRY_FILE) -> DatasetSpec:
    """The spec of a registry entry (its file_name already resolved to ``path``): defaults filled in, values
    checked; also how an entry is tried on an uploaded file before it is registered."""
    formatting = entry.get("formatting", "alpaca")
    if formatting not in ("alpaca", "sharegpt"):
        raise DataError("bad_formatting", formatting=formatting, file=reg_file, field=name)
    columns = dict(ALPACA_COLUMNS if formatting == "alpaca" else SHAREGPT_COLUMNS)
    user_columns = entry.get("columns") or {}
    tags = dict(SHAREGPT_TAGS)
    user_tags = entry.get("tags") or {}
    if not isinstance(user_columns, dict) or not isinstance(user_tags, dict):
        raise DataError("columns_not_objects", file=reg_file, field=name)
    ranking = entry.get("ranking", False)
    if not isinstance(ranking, bool):
        raise DataError("bad_ranking", ranking=ranking, file=reg_file, field=name)
    columns.update(user_columns)
    tags.update(user_tags)
    pretraining = (formatting == "alpaca" and not ranking
                   and "prompt" in user_columns and "response" not in user_columns)
    return DatasetSpec(name=name, path=path, formatting=formatting, columns=columns, tags=tags, ranking=ranking,
                       pretraining=pretraining)
