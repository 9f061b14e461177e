"""Add a dataset to a data folder: its file written under a safe name, its entry added to dataset_info.json.

Both writes are atomic and happen under a lock on the folder, so two registrations at once (two tabs, two
app processes) cannot lose each other's entry; the registry is read again under the lock and every other entry is
written back with the same content.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.core.data.errors import DataError
from engine.core.data.registry import REGISTRY_FILE, SUPPORTED_SUFFIXES, read_registry, unsupported_type
from engine.core.fileio import atomic_write_json
from engine.core.paths import PathError, confined

# Letters (any script), digits, "_", "-", "."; not starting with "." or "-": the name is also the file's name.
_NAME = re.compile(r"^\w[\w.\-]{0,63}$", re.UNICODE)


# Names whose file would be the data folder's own: "dataset_info" would replace the registry with the upload.
_RESERVED = {Path(REGISTRY_FILE).stem.casefold()}


def check_dataset_name(name: str) -> str:
    """``name`` stripped, or a DataError saying what a dataset name may hold."""
    name = (name or "").strip()
    if not _NAME.match(name):
        raise DataError("bad_name", name=name)
    if name.casefold() in _RESERVED:
        raise DataError("reserved_name", name=name)
    return name


@contextmanager
def registry_lock(folder: Path) -> Iterator[None]:
    """Held while the registry is read, changed and written back: a lock on the folder itself, so no lock file is
    left among the user's datasets (the registry file cannot hold it: each write replaces it with a new file)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def copy_into(source: Path) -> Callable[[Path], None]:
    """A writer for register(): copies ``source`` to the target through a temporary file in its folder, so the
    target is never seen half-written."""

    def write(target: Path) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    return write


def _owner(registry: dict, folder: Path, target: Path) -> str | None:
    """The name of the entry whose file_name is ``target``, if any."""
    for other, entry in registry.items():
        file_name = entry.get("file_name") if isinstance(entry, dict) else None
        if isinstance(file_name, str):
            try:
                if confined(folder, file_name) == target:
                    return other
            except PathError:
                continue
    return None


def register(dataset_dir: str | Path, name: str, suffix: str, write: Callable[[Path], None], entry: dict,
             overwrite: bool = False) -> Path:
    """Write the dataset file ``<name><suffix>`` into ``dataset_dir`` with ``write(path)`` (which must write
    atomically), then add ``name: {"file_name": ..., **entry}`` to dataset_info.json. The file's path is returned.

    Without ``overwrite`` a registered name or an existing file is refused; with it, this name's entry and an
    unclaimed file of that name are replaced. Another entry's file is never replaced.
    """
    name = check_dataset_name(name)
    suffix = suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise unsupported_type(suffix)
    folder = Path(dataset_dir).resolve()
    if not folder.is_dir():
        raise DataError("no_folder", file=str(folder))
    file_name = name + suffix
    target = confined(folder, file_name, what="dataset file name")
    reg_path = folder / REGISTRY_FILE
    with registry_lock(folder):
        registry = read_registry(folder) if reg_path.exists() else {}  # a broken registry is reported, not replaced
        if name in registry and not overwrite:
            raise DataError("already_registered", name=name,
                            file=str(reg_path), field=name)
        owner = _owner(registry, folder, target)
        if owner is not None and owner != name:
            raise DataError("file_owned", file_name=file_name, owner=owner,
                            file=str(reg_path), field=owner)
        existed = target.exists()
        if existed and (not overwrite or not target.is_file()):
            raise DataError("folder_exists" if target.is_dir() else "file_exists", file_name=file_name,
                            file=str(folder))
        # Temporary files are private: the new file keeps the mode of the one it replaces, or the registry's.
        like = target if existed else reg_path if reg_path.exists() else None
        mode = like.stat().st_mode & 0o777 if like else 0o644
        write(target)
        os.chmod(target, mode)
        try:
            registry[name] = {"file_name": file_name, **entry}
            atomic_write_json(reg_path, registry)
        except BaseException:
            if not existed:  # nothing half-added stays behind
                target.unlink(missing_ok=True)
            raise
    return target
