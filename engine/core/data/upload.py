"""Check an uploaded file before it becomes a dataset: its layout detected, every row read the way training reads
it, and the problems listed with their row and field; only a file without problems is registered."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from engine.core.data.detect import Detection, detect
from engine.core.data.errors import DataError
from engine.core.data.formats import Sample, normalise_row
from engine.core.data.loader import file_rows
from engine.core.data.register import copy_into, register
from engine.core.data.registry import SUPPORTED_SUFFIXES, DatasetSpec, spec_from_entry, unsupported_type

MAX_UPLOAD_MB = 100
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
MAX_ERRORS = 20  # problems listed; the count says how many there are in all
_DETECT_ROWS = 50


@dataclass
class Inspection:
    """``detection``: None when the file or its layout cannot be read. ``rows``: rows read. ``errors``: the first
    MAX_ERRORS problems, in row order; ``error_count``: all of them."""

    detection: Detection | None
    rows: int = 0
    errors: list[DataError] = field(default_factory=list)
    error_count: int = 0

    @property
    def ok(self) -> bool:
        return self.detection is not None and self.error_count == 0 and self.rows > 0


def _check_file(path: Path) -> None:
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise unsupported_type(path.suffix or path.name, file=path.name)
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise DataError("too_big", size_mb=size / 1024 / 1024, limit_mb=MAX_UPLOAD_MB, file=path.name)
    if size == 0:
        raise DataError("file_empty", file=path.name)


def _stricter(row: dict, spec: DatasetSpec, sample: Sample, index: int, file: str, numbers_as_text: bool) -> None:
    """What training would read without complaint but an upload refuses: an answer that is empty, and a number
    where text belongs (a spreadsheet's 42 is more often a mistake than an answer), unless the user says numbers
    are text."""
    cols = spec.columns
    if spec.formatting == "alpaca" and not numbers_as_text:
        for role in ("prompt", "query", "response", "chosen", "rejected", "system"):
            value = row.get(cols.get(role, ""))
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:  # NaN: no value
                raise DataError("number_not_text", value=value, file=file, row=index, field=cols[role])
    if spec.ranking:
        answers = [(sample.messages[-1]["content"], cols["chosen"]), (sample.rejected, cols["rejected"])]
    else:
        column = cols["response"] if spec.formatting == "alpaca" else \
            cols["messages"] if cols["messages"] in row else "messages"  # the OpenAI layout's, as read
        answers = [(sample.messages[-1]["content"], column)]
    for text, column in answers:
        if not (text or "").strip():
            raise DataError("empty_answer", file=file, row=index, field=column)


def inspect_file(path: str | Path, kind: str | None = None, numbers_as_text: bool = False) -> Inspection:
    """Detect the layout of ``path`` (read as ``kind`` if given) and check every row against it; a number in a
    text column is a problem unless ``numbers_as_text``."""
    path = Path(path)
    bad_lines: list[DataError] = []  # jsonl lines that are not JSON, added by the reader as it passes them
    kept: list[DataError] = []
    count = 0

    def note(error: DataError) -> None:
        nonlocal count
        count += 1
        if len(kept) < MAX_ERRORS:  # a large broken file does not fill the memory with errors
            kept.append(error)

    try:
        _check_file(path)
        detection = detect([row for _, row in itertools.islice(file_rows(path, 0, []), _DETECT_ROWS)], kind)
        spec = spec_from_entry("upload", path, detection.entry)
        stage = "kto" if "kto_tag" in spec.columns else "sft"  # kto reads (and checks) each row's label
        rows = 0
        for index, row in file_rows(path, 0, bad_lines):
            for error in bad_lines:  # lines before this row: the list stays in row order
                note(error)
            bad_lines.clear()
            rows += 1
            try:
                sample = normalise_row(row, spec, index, stage=stage, file=path.name)  # ranking rows: as pairs
                _stricter(row, spec, sample, index, path.name, numbers_as_text)
            except DataError as exc:
                note(exc)
        for error in bad_lines:
            note(error)
    except UnicodeDecodeError:
        return Inspection(None, errors=[DataError("not_utf8", file=path.name)], error_count=1)
    except DataError as exc:
        return Inspection(None, errors=[exc], error_count=1)
    if rows == 0 and count == 0:
        note(DataError("no_rows", file=path.name))
    return Inspection(detection, rows, kept, count)


def register_upload(dataset_dir: str | Path, name: str, path: str | Path, kind: str | None = None,
                    overwrite: bool = False, numbers_as_text: bool = False) -> Path:
    """Check ``path`` again and, if every row is good, register it as dataset ``name`` (see register())."""
    path = Path(path)
    inspection = inspect_file(path, kind, numbers_as_text)
    if not inspection.ok:
        first = inspection.errors[0]
        more = inspection.error_count - 1
        raise DataError("refused_more", first=first, more=more) if more else DataError("refused", first=first)
    return register(dataset_dir, name, path.suffix, copy_into(path), inspection.detection.entry, overwrite)
