"""Read dataset files (json, jsonl, csv, parquet) into checked samples, whole or a page at a time."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Iterator

from engine.data.errors import DataError
from engine.data.formats import Sample, normalise_row
from engine.data.registry import SUPPORTED_SUFFIXES, DatasetSpec, resolve_dataset


def _files(spec: DatasetSpec) -> list[Path]:
    if spec.path.is_dir():
        files = sorted(p for p in spec.path.iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES)
        if not files:
            raise DataError("folder holds no json/jsonl/csv/parquet files", file=str(spec.path))
        return files
    if spec.path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise DataError(f"unsupported file type {spec.path.suffix!r} (use {', '.join(SUPPORTED_SUFFIXES)})",
                        file=spec.path.name)
    return [spec.path]


def _iter_jsonl(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, parsed line); blank lines are skipped but still counted, so errors name the real line."""
    with open(path, encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"not valid JSON ({exc.msg}, column {exc.colno})", file=path.name, row=lineno) from None


def _read_json(path: Path) -> list:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})", file=path.name) from None
    if not isinstance(data, list):
        raise DataError("must hold a JSON list of samples", file=path.name)
    return data


def _read_table(path: Path) -> list[dict]:
    import pandas as pd  # noqa: PLC0415 - heavy, only for csv/parquet

    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        else:
            import pyarrow.parquet as pq  # noqa: PLC0415

            # pyarrow gives plain lists and dicts for nested columns (sharegpt turns, alpaca history);
            # pandas would give numpy arrays, which the format checks refuse.
            return pq.read_table(path).to_pylist()
    except Exception as exc:  # pandas / pyarrow raise many types for malformed files
        raise DataError(f"cannot be read: {exc}", file=path.name) from None
    return frame.to_dict(orient="records")


def iter_rows(spec: DatasetSpec) -> Iterator[tuple[int, object]]:
    """(1-based row number, raw row) across the dataset's files; jsonl is streamed and numbered by line."""
    for path in _files(spec):
        try:
            suffix = path.suffix.lower()
            if suffix == ".jsonl":
                yield from _iter_jsonl(path)
            elif suffix == ".json":
                yield from enumerate(_read_json(path), 1)
            else:
                yield from enumerate(_read_table(path), 1)
        except UnicodeDecodeError:
            raise DataError("not UTF-8 text", file=path.name) from None


def load_samples(dataset_dir: str | Path, names: list[str], max_samples: int = 0,
                 fill: dict | None = None) -> list[Sample]:
    """All samples of the named datasets, at most ``max_samples`` from each (0: all)."""
    samples: list[Sample] = []
    for name in names:
        spec = resolve_dataset(dataset_dir, name)
        rows = iter_rows(spec)
        if max_samples:
            rows = itertools.islice(rows, max_samples)
        count = 0
        for index, row in rows:
            samples.append(normalise_row(row, spec, index, fill))
            count += 1
        if count == 0:
            raise DataError("has no samples", file=spec.path.name)
    return samples


def count_rows(spec: DatasetSpec) -> int:
    return sum(1 for _ in iter_rows(spec))


def preview_page(dataset_dir: str | Path, name: str, page: int, page_size: int = 10,
                 fill: dict | None = None) -> tuple[int, list[dict]]:
    """(total rows, rows of page ``page`` (0-based)) as display dicts; a bad row shows its error."""
    spec = resolve_dataset(dataset_dir, name)
    total = count_rows(spec)
    start = max(0, page) * page_size
    rows = []
    for index, row in itertools.islice(iter_rows(spec), start, start + page_size):
        try:
            sample = normalise_row(row, spec, index, fill)
        except DataError as exc:
            error = f"field {exc.field!r}: {exc.reason}" if exc.field else exc.reason  # "missing" alone says not what
            rows.append({"row": index, "system": "", "prompt": "", "response": "", "error": error})
            continue
        turns = sample.messages
        history = "\n".join(f"[{m['role']}] {m['content']}" for m in turns[:-2])
        prompt = turns[-2]["content"] if len(turns) >= 2 else ""
        rows.append({"row": index, "system": sample.system,
                     "prompt": (history + "\n" if history else "") + prompt,
                     "response": turns[-1]["content"], "error": ""})
    return total, rows
