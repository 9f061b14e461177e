"""Read dataset files (json, jsonl, csv, parquet) into checked samples, whole or a page at a time."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Iterator
from pathlib import Path

from engine.core.config import PREFERENCE_STAGES, STAGES
from engine.core.data.errors import DataError
from engine.core.data.formats import Sample, normalise_row
from engine.core.data.registry import REGISTRY_FILE, SUPPORTED_SUFFIXES, DatasetSpec, resolve_dataset, unsupported_type
from engine.core.fileio import parse_json


def dataset_files(spec: DatasetSpec) -> list[Path]:
    """The files a dataset reads: its file, or the data files of its folder in name order."""
    if spec.path.is_dir():
        files = sorted(p for p in spec.path.iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES)
        if not files:
            raise DataError("folder_empty", file=str(spec.path))
    elif spec.path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise unsupported_type(spec.path.suffix, file=spec.path.name)
    else:
        files = [spec.path]
    for path in files:
        if path.stat().st_size == 0:  # else each reader words it differently ("Expecting value", "No columns")
            raise DataError("file_empty", file=_shown_name(spec, path))
    return files


def _shown_name(spec: DatasetSpec, path: Path) -> str:
    """How messages name ``path``: with its folder for a folder dataset, whose row numbers restart in each file."""
    return f"{spec.path.name}/{path.name}" if path != spec.path else path.name


# Rows read at a time from csv and parquet files: memory stays bounded however large the file is.
_CHUNK_ROWS = 1000


def _iter_jsonl(path: Path, skip: int = 0, bad_lines: list | None = None) -> Iterator[tuple[int, object]]:
    """(line number, parsed line); blank lines are skipped but still counted, so errors name the real line.
    The first ``skip`` rows are passed over without being parsed. A line that is not JSON raises a DataError, or,
    given a ``bad_lines`` list, is added to it and passed over (checking a whole file reports every bad line)."""
    with open(path, encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if skip:
                skip -= 1
                continue
            try:
                row = parse_json(line, path.name, lineno)
            except DataError as error:
                if bad_lines is None:
                    raise
                bad_lines.append(error)
                continue
            yield lineno, row


def _read_json(path: Path) -> list:
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise DataError("file_blank", file=path.name)
    data = parse_json(text, path.name)
    if not isinstance(data, list):
        raise DataError("not_list", file=path.name)
    return data


def _table_step(path: Path, step):
    """``step()``, with the many error types of pandas / pyarrow on malformed files turned into a DataError."""
    try:
        return step()
    except UnicodeDecodeError:
        raise  # iter_rows says "not UTF-8 text"
    except Exception as exc:  # noqa: BLE001 - pandas / pyarrow raise many types for malformed files
        raise DataError("unreadable", error=str(exc), file=path.name) from None


def _table_chunks(path: Path) -> Iterator:
    """A csv or parquet file a chunk at a time: pandas DataFrames or pyarrow RecordBatches (a malformed part is
    found when its chunk is read)."""
    if path.suffix.lower() == ".csv":
        import pandas as pd  # noqa: PLC0415 - heavy, only for csv

        with _table_step(path, lambda: pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                                                   chunksize=_CHUNK_ROWS)) as reader:
            while (chunk := _table_step(path, lambda: next(reader, None))) is not None:
                yield chunk
        return
    import pyarrow.parquet as pq  # noqa: PLC0415 - heavy, only for parquet

    with _table_step(path, lambda: pq.ParquetFile(path)) as parquet:
        batches = parquet.iter_batches(batch_size=_CHUNK_ROWS)
        while (batch := _table_step(path, lambda: next(batches, None))) is not None:
            yield batch


def _chunk_rows(chunk) -> list[dict]:
    # pyarrow gives plain lists and dicts for nested columns (sharegpt turns, alpaca history);
    # pandas would give numpy arrays, which the format checks refuse.
    return chunk.to_pylist() if hasattr(chunk, "to_pylist") else chunk.to_dict(orient="records")


def _iter_table(path: Path, skip: int = 0) -> Iterator[tuple[int, object]]:
    """(row number, row dict) of a csv or parquet file; chunks wholly before row ``skip`` are not converted."""
    first = 1
    for chunk in _table_chunks(path):
        if skip < len(chunk):
            yield from enumerate(_chunk_rows(chunk)[skip:], first + skip)
        skip = max(0, skip - len(chunk))
        first += len(chunk)


def file_rows(path: Path, skip: int = 0, bad_lines: list | None = None) -> Iterator[tuple[int, object]]:
    """(1-based row number, raw row) of one json/jsonl/csv/parquet file; ``bad_lines`` as for jsonl above."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _iter_jsonl(path, skip, bad_lines)
    if suffix == ".json":
        return itertools.islice(enumerate(_read_json(path), 1), skip, None)
    return _iter_table(path, skip)


def _count_file(path: Path) -> int:
    """Rows in one file, read cheaply: jsonl lines are not parsed, parquet says it in its footer, csv is parsed a
    chunk at a time; cached per file version, so paging through a preview does not count again."""
    stat = path.stat()
    try:
        return _count_cached(str(path), stat.st_mtime_ns, stat.st_size)
    except UnicodeDecodeError:  # the count reads the whole file: a bad byte far beyond the page shows here
        raise DataError("not_utf8", file=path.name) from None


@functools.lru_cache(maxsize=64)
def _count_cached(path_text: str, _mtime_ns: int, _size: int) -> int:
    path = Path(path_text)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with open(path, encoding="utf-8-sig") as fh:
            return sum(1 for line in fh if line.strip())
    if suffix == ".json":
        return len(_read_json(path))
    if suffix == ".parquet":
        import pyarrow.parquet as pq  # noqa: PLC0415 - heavy, only for parquet

        return _table_step(path, lambda: pq.ParquetFile(path).metadata.num_rows)
    return sum(len(chunk) for chunk in _table_chunks(path))


def iter_rows(spec: DatasetSpec, skip: int = 0) -> Iterator[tuple[str, int, object]]:
    """(file name for messages, 1-based row number, raw row) across the dataset's files, from row ``skip`` on.

    Rows are streamed (jsonl line by line, csv and parquet in chunks; a json list is parsed whole) and jsonl rows
    are numbered by line. Skipped rows are not parsed where the format allows, so a page deep in a large file
    costs little.
    """
    for path in dataset_files(spec):
        name = _shown_name(spec, path)
        try:
            if skip:
                count = _count_file(path)
                if skip >= count:
                    skip -= count
                    continue
            rows, skip = file_rows(path, skip), 0
            for index, row in rows:
                yield name, index, row
        except UnicodeDecodeError:
            raise DataError("not_utf8", file=name) from None


def check_stage(spec: DatasetSpec, stage: str, reg_file: str = REGISTRY_FILE) -> None:
    """Refuse, before reading any row, a dataset that cannot feed ``stage``."""
    if stage not in STAGES:
        raise DataError("unknown_stage", stage=stage, stages=", ".join(STAGES))
    if stage in PREFERENCE_STAGES and not spec.ranking:
        raise DataError("no_pairs", name=spec.name, stage=stage, registry=REGISTRY_FILE, file=reg_file, field=spec.name)
    if stage == "kto" and not spec.ranking and "kto_tag" not in spec.columns:
        raise DataError("no_labels", name=spec.name, example='{"kto_tag": "label"}', file=reg_file, field=spec.name)


def _for_stage(sample: Sample, stage: str) -> list[Sample]:
    """The sample as ``stage`` trains on it: only the fields the stage reads are set."""
    if stage in ("sft", "pt", "ppo", "grpo"):  # ppo and grpo read the prompts (grpo: the answer too)
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
        for file, index, row in rows:
            samples += _for_stage(normalise_row(row, spec, index, fill, stage, file=file), stage)
            count += 1
        if count == 0:
            raise DataError("no_samples", file=spec.path.name)
    return samples


def load_row(dataset_dir: str | Path, name: str, position: int, fill: dict | None = None,
             stage: str = "sft") -> list[Sample]:
    """The samples row ``position`` (0-based, counted as the preview and max_samples count rows) gives for
    training ``stage``: the same reading as :func:`load_samples`, for one row (kto from preference data: two)."""
    spec = resolve_dataset(dataset_dir, name)
    check_stage(spec, stage, str(Path(dataset_dir) / REGISTRY_FILE))
    for file, index, row in iter_rows(spec, skip=max(0, position)):
        return _for_stage(normalise_row(row, spec, index, fill, stage, file=file), stage)
    raise DataError("no_such_row", position=position + 1, count=count_rows(spec), file=spec.path.name)


def count_rows(spec: DatasetSpec) -> int:
    """Rows in the dataset, without holding them: a large file is never loaded whole to count it (but for a json
    list, which is parsed to count it, once per version of the file)."""
    return sum(_count_file(path) for path in dataset_files(spec))


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
    """(total rows, rows of page ``page`` (0-based)) as display dicts; a bad row shows its error (a DataError
    naming the field, "" for a good row).

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
    # Only the page is read: a large jsonl/csv/parquet file is streamed up to it, and counted without parsing.
    rows = []
    for file, index, row in itertools.islice(iter_rows(spec, skip=max(0, page) * page_size), page_size):
        shown = dict.fromkeys(columns, "")
        shown["row"] = index if file == spec.path.name else f"{file}:{index}"  # a folder: which file too
        try:
            sample = normalise_row(row, spec, index, fill, read_as, file=file)
        except DataError as exc:
            # "missing" alone says not what: the field stays named; the row column already says which row. Kept as
            # an error, so that the web UI can show it in the user's language (str() is the English text).
            shown["error"] = DataError(exc.key, field=exc.field, **exc.params)
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
    return count_rows(spec), rows
