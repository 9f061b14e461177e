"""Atomic writes: a reader never sees a half-written file the app owns."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | Path, text: str, make_parent: bool = True) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``. Without ``make_parent`` a
    missing folder raises FileNotFoundError (a run's files must not bring back a deleted run folder)."""
    path = Path(path)
    if make_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if path.exists():  # mkstemp makes the file private (0600): a replaced file keeps its mode
            os.fchmod(fd, path.stat().st_mode & 0o777)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | Path, data: Any, make_parent: bool = True) -> None:
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n", make_parent)


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one line; a single write() of a short line keeps concurrent readers whole-line safe."""
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()


# The app writes status.json and each events.jsonl line in kilobytes; a larger one is not the app's, and reading it
# whole (a 1 GB line) would take the memory of every page that shows the run.
MAX_RECORD_BYTES = 4 << 20


def parse_json(text: str | bytes, file: str, row: int | None = None) -> Any:
    """``text`` parsed, or a DataError naming ``file`` (and ``row``: a JSON Lines line) and what is wrong: not UTF-8,
    not JSON, or nested deeper than the parser can follow (which would escape as a RecursionError)."""
    try:
        return json.loads(text.decode("utf-8-sig") if isinstance(text, bytes) else text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        from engine.core.data.errors import DataError  # noqa: PLC0415 - engine.core.data is heavy; only a bad file needs it

        if isinstance(exc, UnicodeDecodeError):
            raise DataError("not_utf8", file=file, row=row) from None
        if isinstance(exc, RecursionError):
            raise DataError("too_deep", file=file, row=row) from None
        if row is not None:
            raise DataError("json_line", error=exc.msg, column=exc.colno, file=file, row=row) from None
        raise DataError("json", line=exc.lineno, column=exc.colno, error=exc.msg, file=file) from None


def read_json_object(path: str | Path, max_bytes: int = MAX_RECORD_BYTES) -> dict:
    """A JSON object file the app writes (status.json), read no further than ``max_bytes``. Raises
    FileNotFoundError (or another OSError), or a DataError naming the file: too large, not UTF-8, not JSON, nested
    too deep, or JSON that is not an object."""
    with open(path, "rb") as fh:
        raw = fh.read(max_bytes + 1)
    if len(raw) > max_bytes:
        from engine.core.data.errors import DataError  # noqa: PLC0415 - cycle: engine.core.data reads files through this module

        raise DataError("too_big", size_mb=Path(path).stat().st_size / 1024 / 1024, limit_mb=max_bytes >> 20,
                        file=str(path))
    data = parse_json(raw, str(path))
    if not isinstance(data, dict):
        from engine.core.data.errors import DataError  # noqa: PLC0415 - cycle: engine.core.data reads files through this module

        raise DataError("row_not_object", kind=type(data).__name__, file=str(path))
    return data


def read_jsonl(path: str | Path, max_line_bytes: int = MAX_RECORD_BYTES) -> list[dict]:
    """The complete lines that hold a JSON object. A trailing partial line (a writer mid-append) is ignored, and so
    is a line that is not a JSON object or is longer than ``max_line_bytes`` (not one the app wrote; skipped
    without being held in memory)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError:  # missing, or a folder where the file should be: no records
        return []
    records = []
    with fh:
        while line := fh.readline(max_line_bytes + 1):
            if not line.endswith(b"\n"):
                if len(line) <= max_line_bytes:
                    break
                while (rest := fh.readline(max_line_bytes)) and not rest.endswith(b"\n"):
                    pass
                continue
            if not line.strip():
                continue
            try:
                record = parse_json(line, str(path))
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records
