"""Where things live, and keeping user-supplied names inside their folders."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from functools import partial
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = PROJECT_ROOT / "assets" / "data"
# More folders a Data dir may name (os.pathsep-separated); app.py's --data-root adds to it, and jobs inherit it.
DATA_ROOTS_ENV = "TUNEBOARD_DATA_ROOTS"


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
    """A user-supplied name or path is not acceptable; the message says why.

    ``key`` and ``params`` let the web UI show the same message in the user's language (webui/errors.py: locale
    key ``path_err_<key>``, prefixed by the label of the form field ``field`` names); an error without a key is
    shown as its English text."""

    def __init__(self, message: str, key: str = "", field: str = "", **params) -> None:
        super().__init__(message)
        self.key, self.field, self.params = key, field, params

    def __reduce__(self):
        # Pickled (a worker process's error) with its key: self.args holds only the English text.
        return partial(type(self), str(self), self.key, self.field, **self.params), ()


_SAFE_NAME = re.compile(r"[^\w.\-]+", re.UNICODE)


def safe_name(text: str) -> str:
    """A folder-name-safe form of ``text`` (model names become saves/<name>)."""
    name = _SAFE_NAME.sub("-", text.strip()).strip(".-")
    return name or "unnamed"


# The longest file name most file systems take (ext4, xfs, btrfs, APFS): past it the OS says "File name too long".
NAME_MAX_BYTES = 255


def check_folder_name(name: str, field: str, single: bool = False) -> None:
    """Refuse, with a PathError for the form field ``field``, a folder name (relative to its root) the file system
    cannot take: a part longer than NAME_MAX_BYTES; with ``single``, more than one part (a '/' or '..': a run name
    is one folder, so no run lands inside another run's folder and takes its files)."""
    parts = name.replace(os.sep, "/").split("/")
    if single and (len(parts) > 1 or name in (".", "..")):
        raise PathError(f"{name!r} must be one folder name, without '/' or '..'", "not_one_name", field, name=name)
    longest = max(len(part.encode("utf-8", "surrogatepass")) for part in parts)
    if longest > NAME_MAX_BYTES:
        raise PathError(f"a folder name of {longest} bytes is longer than the file system takes ({NAME_MAX_BYTES})",
                        "name_too_long", field, length=longest, limit=NAME_MAX_BYTES)


# The longest path Linux takes (PATH_MAX, with its NUL).
PATH_MAX_BYTES = 4095


def confined_folder(root: str | Path, name: str, field: str, what: str, single: bool = False) -> Path:
    """``confined(root, name)`` for a folder the app will create and write into, refused besides (a PathError for
    the form field ``field``) where the OS would refuse it later with a raw error: a name the file system cannot
    take (check_folder_name), a path too long, or a file where the folder or a folder above it would be."""
    check_folder_name(name, field, single)
    target = confined(root, name, what, field)
    if len(bytes(target)) > PATH_MAX_BYTES:
        raise PathError(f"{what} path is {len(bytes(target))} bytes long, more than the OS takes ({PATH_MAX_BYTES})",
                        "path_too_long", field, length=len(bytes(target)), limit=PATH_MAX_BYTES)
    top = Path(root).resolve()
    for folder in [target, *target.parents]:
        if folder == top:
            break
        if folder.exists() and not folder.is_dir():
            raise PathError(f"{what} {name!r}: {folder} is a file, not a folder", "not_a_folder", field,
                            path=str(folder))
    return target


def confined(root: str | Path, name: str, what: str = "path", field: str = "") -> Path:
    """Resolve ``name`` under ``root`` and refuse anything that escapes it (a PathError for the form field
    ``field``, if the name comes from one).

    Rejects NUL bytes, absolute paths, ``~`` and ``..`` tricks, and symlinks
    pointing outside ``root`` (the check is on the fully resolved path).
    """
    if not isinstance(name, str) or not name.strip():
        raise PathError(f"{what} is empty", "empty", field)
    if "\x00" in name:
        raise PathError(f"{what} contains a NUL byte", "nul", field)
    root_resolved = Path(root).resolve()
    if name.startswith("~") or os.path.isabs(name):
        raise PathError(f"{what} must be a name inside {root}, not an absolute path: {name!r}", "not_inside", field,
                        name=name, root=str(root_resolved))
    target = (root_resolved / name).resolve()
    if target == root_resolved:  # e.g. "." : the folder that holds every run / export / config itself
        raise PathError(f"{what} {name!r} names {root_resolved} itself; give a name inside it", "names_root", field,
                        name=name, root=str(root_resolved))
    if root_resolved not in target.parents:
        raise PathError(f"{what} {name!r} points outside {root_resolved}", "outside", field, name=name,
                        root=str(root_resolved))
    return target


def resolve_user_dir(path: str, what: str = "folder", field: str = "") -> Path:
    """Resolve a folder the user typed (absolute or relative to the project root); ``field`` is the form field
    that holds it (for the error's wording)."""
    if not isinstance(path, str) or not path.strip():
        raise PathError(f"{what} is empty", "empty", field)
    if "\x00" in path:
        raise PathError(f"{what} contains a NUL byte", "nul", field)
    p = Path(os.path.expanduser(path.strip()))
    if not p.is_absolute():
        p = PROJECT_ROOT / p
    return p.resolve()


def data_roots() -> list[Path]:
    """The folders a Data dir may be (or lie inside), resolved: assets/data and those TUNEBOARD_DATA_ROOTS lists
    (absolute, or relative to the project root)."""
    roots = [DEFAULT_DATA_DIR.resolve()]
    for text in os.environ.get(DATA_ROOTS_ENV, "").split(os.pathsep):
        if text.strip() and "\x00" not in text:
            root = resolve_user_dir(text)
            if root not in roots:
                roots.append(root)
    return roots


def workspaces_dir() -> Path:
    """With logins, each login's own folders: workspaces/<user>/{saves,configs,exports,data} (engine.core.workspace)."""
    return Path(os.environ.get("TUNEBOARD_WORKSPACES") or PROJECT_ROOT / "workspaces").resolve()


def _in_a_login_data_folder(folder: Path) -> bool:
    """``folder`` is workspaces/<user>/data or inside it."""
    base = workspaces_dir()
    return base in folder.parents and folder.relative_to(base).parts[1:2] == ("data",)


def confined_data_dir(path: str, roots: Sequence[Path] | None = None) -> Path:
    """The Data dir field's folder, resolved, if it is one of ``roots`` or inside one. ``roots`` None: data_roots()
    or a login's data folder (the machine's rule, which jobs apply; the web UI narrows it to the login's own
    folder by passing its roots, engine.core.workspace.Workspace.data_roots).

    Data folders are read and written (Add dataset replaces files there), so any other folder is refused: one
    outside every root, one reached through a symbolic link that leaves its root (the check is on the resolved
    path), and run folders, even where a root holds them (a dataset named "status" would replace a run's
    status.json)."""
    field = "data.dataset_dir"
    folder = resolve_user_dir(path, "data folder", field)
    allowed = [Path(root).resolve() for root in (data_roots() if roots is None else roots)]
    shown = ", ".join(str(root) for root in allowed)
    logins = workspaces_dir()

    def covers(root: Path) -> bool:
        # A root that holds workspaces/ (the project folder, /) does not open the logins' folders: only a login's
        # own data folder, given as a root, or the machine's rule below does.
        inside = folder == root or root in folder.parents
        return inside and not (logins in folder.parents and (root == logins or root in logins.parents))

    if not any(covers(root) for root in allowed) and not (roots is None and _in_a_login_data_folder(folder)):
        raise PathError(f"data folder {path.strip()!r} is outside the data folders this server allows ({shown}); "
                        f"the server's --data-root option allows others", "outside_data_roots", field,
                        path=path.strip(), roots=shown)
    runs = next((r for r in [saves_dir(), *workspaces_dir().glob("*/saves")] if folder == r or r in folder.parents),
                None)
    if runs is not None:
        raise PathError(f"data folder {path.strip()!r} is inside the runs folder {runs}; datasets cannot live there",
                        "data_in_runs", field, path=path.strip(), runs=str(runs))
    return folder
