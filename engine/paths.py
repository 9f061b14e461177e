"""Where things live, and keeping user-supplied names inside their folders."""

from __future__ import annotations

import os
import re
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT / "assets" / "data"


def home_dir() -> Path:
    """Writable state: converted demo model, etc. Overridable for tests and containers."""
    return Path(os.environ.get("TUNEBOARD_HOME") or Path.home() / ".cache" / "tuneboard")


def saves_dir() -> Path:
    """Root of all run directories: saves/<model>/<method>/<run name>/."""
    return Path(os.environ.get("TUNEBOARD_SAVES") or PROJECT_ROOT / "saves").resolve()


def configs_dir() -> Path:
    """Where 'Save arguments' writes YAML files."""
    return Path(os.environ.get("TUNEBOARD_CONFIGS") or PROJECT_ROOT / "configs").resolve()


def exports_dir() -> Path:
    """Root under which the Export tab writes model folders."""
    return Path(os.environ.get("TUNEBOARD_EXPORTS") or PROJECT_ROOT / "exports").resolve()


class PathError(ValueError):
    """A user-supplied name or path is not acceptable; the message says why."""


_SAFE_NAME = re.compile(r"[^\w.\-]+", re.UNICODE)


def safe_name(text: str) -> str:
    """A folder-name-safe form of ``text`` (model names become saves/<name>)."""
    name = _SAFE_NAME.sub("-", text.strip()).strip(".-")
    return name or "unnamed"


def confined(root: str | Path, name: str, what: str = "path") -> Path:
    """Resolve ``name`` under ``root`` and refuse anything that escapes it.

    Rejects NUL bytes, absolute paths, ``~`` and ``..`` tricks, and symlinks
    pointing outside ``root`` (the check is on the fully resolved path).
    """
    if not isinstance(name, str) or not name.strip():
        raise PathError(f"{what} is empty")
    if "\x00" in name:
        raise PathError(f"{what} contains a NUL byte")
    if name.startswith("~") or os.path.isabs(name):
        raise PathError(f"{what} must be a name inside {root}, not an absolute path: {name!r}")
    root_resolved = Path(root).resolve()
    target = (root_resolved / name).resolve()
    if target == root_resolved:  # e.g. "." : the folder that holds every run / export / config itself
        raise PathError(f"{what} {name!r} names {root_resolved} itself; give a name inside it")
    if root_resolved not in target.parents:
        raise PathError(f"{what} {name!r} points outside {root_resolved}")
    return target


def resolve_user_dir(path: str, what: str = "folder") -> Path:
    """Resolve a folder the user typed (absolute or relative to the project root)."""
    if not isinstance(path, str) or not path.strip():
        raise PathError(f"{what} is empty")
    if "\x00" in path:
        raise PathError(f"{what} contains a NUL byte")
    p = Path(os.path.expanduser(path.strip()))
    if not p.is_absolute():
        p = PROJECT_ROOT / p
    return p.resolve()
