"""Read dataset files (json, jsonl, csv, parquet) into checked samples, whole or a page at a time."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Iterator

from engine.config import PREFERENCE_STAGES, STAGES
from engine.data.errors import DataError
from engine.data.formats import Sample, normalise_row
from engine.data.registry import REGISTRY_FILE, SUPPORTED_SUFFIXES, DatasetSpec, resolve_dataset


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


def check_stage(spec: DatasetSpec, stage: str, reg_file: str = REGISTRY_FILE) -> None:
    """Refuse, before reading any row, a dataset that cannot feed ``stage``."""
    if stage not in STAGES:
        raise DataError(f"unknown stage {stage!r} (use {', '.join(STAGES)})")
    if stage in PREFERENCE_STAGES and not spec.ranking:
        raise DataError(f"dataset {spec.name!r} has no preference pairs: stage {stage} needs preference data with "
                        'chosen/rejected answers; mark such a dataset with "ranking": true in ' + REGISTRY_FILE,
                        file=reg_file, field=spec.name)
    if stage == "kto" and not spec.ranking and "kto_tag" not in spec.columns:
        raise DataError(f"dataset {spec.name!r} has no labels: stage kto needs a true/false column marking each "
                        'answer desirable, named in dataset_info.json as "columns": {"kto_tag": "label"}, '
                        'or preference data marked "ranking": true', file=reg_file, field=spec.name)


def _for_stage(sample: Sample, stage: str) -> list[Sample]:
    """The sample as ``stage`` trains on it: only the fields the stage reads are set."""
    if stage in ("sft", "pt"):
        return [dataclasses.replace(sample, rejected=None, kto_tag=None)]
    if stage == "kto":
        if sample.kto_tag is not None:
            return [dataclasses.replace(sample, rejected=None)]
        # A preference pair gives one desirable and one undesirable example.
        bad = sample.messages[:-1] + [{"role": "assistant", "content": sample.rejected}]
        return [dataclasses.replace(sample, rejected=None, kto_tag=True),
                dataclasses.replace(sample, messages=bad, rejected=None, kto_tag=False)]
    return [sample]


def load_samples(dataset_dir: str | Path, names: list[str], max_samples: int = 0,
                 fill: dict | None = None, stage: str = "sft") -> list[Sample]:
    """All samples of the named datasets for training ``stage``, from at most ``max_samples`` rows of
    each (0: all); kto from preference data gives two samples per row."""
    samples: list[Sample] = []
    for name in names:
        spec = resolve_dataset(dataset_dir, name)
        check_stage(spec, stage, str(Path(dataset_dir) / REGISTRY_FILE))
        rows = iter_rows(spec)
        if max_samples:
            rows = itertools.islice(rows, max_samples)
        count = 0
        for index, row in rows:
            samples += _for_stage(normalise_row(row, spec, index, fill, stage), stage)
            count += 1
        if count == 0:
            raise DataError("has no samples", file=spec.path.name)
    return samples


def count_rows(spec: DatasetSpec) -> int:
    return sum(1 for _ in iter_rows(spec))


# Columns of a preview row for each way of showing a dataset.
PREVIEW_COLUMNS = {
    "sft": ("row", "system", "prompt", "response", "error"),
    "ranking": ("row", "system", "prompt", "chosen", "rejected", "error"),
    "kto": ("row", "system", "prompt", "response", "kto_tag", "error"),
    "pt": ("row", "text", "error"),
}


def preview_view(spec: DatasetSpec, stage: str | None = None) -> str:
    """How to show ``spec``: a key of PREVIEW_COLUMNS. Without a stage it is guessed from the registry entry."""
    if stage == "pt" or (stage is None and spec.pretraining):
        return "pt"
    if spec.ranking:
        return "ranking"
    return "kto" if "kto_tag" in spec.columns and stage in (None, "kto") else "sft"


def preview_page(dataset_dir: str | Path, name: str, page: int, page_size: int = 10,
                 fill: dict | None = None, stage: str | None = None) -> tuple[int, list[dict]]:
    """(total rows, rows of page ``page`` (0-based)) as display dicts; a bad row shows its error.

    The dicts' keys are PREVIEW_COLUMNS[preview_view(...)]: a conversation's earlier turns go into
    ``prompt``, ranking data shows ``chosen`` and ``rejected``, kto data its ``kto_tag`` (a bool),
    pre-training data its ``text``.
    """
    spec = resolve_dataset(dataset_dir, name)
    if stage is not None:  # say now, not at Start, that the dataset cannot feed the stage
        check_stage(spec, stage, str(Path(dataset_dir) / REGISTRY_FILE))
    view = preview_view(spec, stage)
    columns = PREVIEW_COLUMNS[view]
    read_as = {"pt": "pt", "ranking": "dpo", "kto": "kto", "sft": "sft"}[view]
    total = count_rows(spec)
    start = max(0, page) * page_size
    rows = []
    for index, row in itertools.islice(iter_rows(spec), start, start + page_size):
        shown = dict.fromkeys(columns, "")
        shown["row"] = index
        try:
            sample = normalise_row(row, spec, index, fill, read_as)
        except DataError as exc:
            # "missing" alone says not what: name the field
            shown["error"] = f"field {exc.field!r}: {exc.reason}" if exc.field else exc.reason
            rows.append(shown)
            continue
        if view == "pt":
            shown["text"] = sample.text
        else:
            turns = sample.messages
            history = "\n".join(f"[{m['role']}] {m['content']}" for m in turns[:-2])
            shown["system"] = sample.system
            shown["prompt"] = (history + "\n" if history else "") + turns[-2]["content"]
            shown["chosen" if view == "ranking" else "response"] = turns[-1]["content"]
            if view == "ranking":
                shown["rejected"] = sample.rejected
            if view == "kto":
                shown["kto_tag"] = sample.kto_tag
        rows.append(shown)
    return total, rows
