"""Workspaces: with logins on, each login's runs, saved arguments, exports and datasets live in a folder of its
own, and what a login may see and act on is decided here (the web UI asks; it never decides by itself).

    workspaces/<user>/saves/<model>/<method>/<run>/   its runs (one device queue for the machine: saves/.queue)
    workspaces/<user>/configs/                         Save arguments
    workspaces/<user>/exports/                         the Export tab's folders
    workspaces/<user>/data/                            datasets it adds (dataset_info.json)

Without logins there is one workspace, today's folders (``Workspace()``). An admin login sees and manages every
run, its own in its workspace; it may share a run with the class (read-only: others list it, chat with it, evaluate
and export it, but cannot stop, delete or resume into it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from engine.core.fileio import atomic_write_json
from engine.core.paths import (
    DEFAULT_DATA_DIR,
    PROJECT_ROOT,
    PathError,
    configs_dir,
    data_roots,
    exports_dir,
    safe_name,
    saves_dir,
    workspaces_dir,
)
from engine.core.rundir import RunDir, list_runs

SHARED_MARK = "shared.json"  # in a run folder: the run is shared with every login (read-only)


def user_folder_name(user: str) -> str:
    """A folder name for ``user``; logins that only differ in characters a folder name cannot hold get a hash
    suffix, so two logins never share a folder."""
    name = safe_name(user)
    if name != user:
        name += "-" + hashlib.sha256(user.encode()).hexdigest()[:8]
    return name


class AccessError(PathError):
    """A path belongs to another login's workspace (key ``other_user``), or a login's share of the queue is full."""


@dataclass(frozen=True)
class Workspace:
    user: str | None = None  # None: logins are off, one workspace
    admin: bool = False

    @property
    def folder(self) -> Path | None:
        return None if self.user is None else workspaces_dir() / user_folder_name(self.user)

    @property
    def saves(self) -> Path:
        return saves_dir() if self.folder is None else self.folder / "saves"

    @property
    def configs(self) -> Path:
        return configs_dir() if self.folder is None else self.folder / "configs"

    @property
    def exports(self) -> Path:
        return exports_dir() if self.folder is None else self.folder / "exports"

    @property
    def data(self) -> Path | None:
        """Where this login's datasets go; None without logins (the Data dir field decides, within the roots)."""
        return None if self.folder is None else self.folder / "data"

    def ensure_data(self) -> Path | None:
        """This login's data folder, made on first use as a copy of the demo data (112 kB), so its Data dir lists
        the demo datasets beside those it adds; None without logins."""
        data = self.data
        if data is not None and not (data / "dataset_info.json").is_file():
            shutil.copytree(DEFAULT_DATA_DIR, data, dirs_exist_ok=True)
        return data

    def data_roots(self) -> list[Path]:
        """The folders this workspace may read datasets from: the server's data roots and its own data folder."""
        return data_roots() + ([self.data] if self.data is not None else [])

    def writable_data_roots(self) -> list[Path]:
        """Where it may add datasets: a login (not an admin) only in its own data folder, so the class's demo data
        stays as it is; everyone else wherever it may read."""
        return [self.data] if self.data is not None and not self.admin else self.data_roots()

    @property
    def sees_everything(self) -> bool:
        return self.user is None or self.admin

    # -- whose is what ------------------------------------------------------------------------------------------
    def run_roots(self) -> list[Path]:
        """The saves folders whose runs this workspace lists as its own to manage: its own; an admin's, every
        workspace's and the one of the app without logins too."""
        if not self.admin:
            return [self.saves]
        roots = [saves_dir()]
        base = workspaces_dir()
        if base.is_dir():
            roots += sorted(p / "saves" for p in base.iterdir() if p.is_dir() and not p.is_symlink())
        return roots

    def owns(self, path: str | Path) -> bool:
        """May act on (stop, delete, resume into, cancel) what is at ``path``."""
        if self.user is None:
            return True
        target = _resolved(path)
        return any(_inside(target, root) for root in self.run_roots())

    def can_read(self, path: str | Path) -> bool:
        """May load, evaluate or export what is at ``path``: its own, a shared run (or inside one), or anything
        outside every workspace (a model folder on the machine, a hub id)."""
        if self.sees_everything:
            return True
        target = _resolved(path)
        if not any(_inside(target, root) for root in _all_run_roots()):
            return True
        return self.owns(target) or shared_run_of(target) is not None

    def check_readable(self, path: str, what: str) -> None:
        """Raise AccessError when ``path`` (a model, adapter or run folder typed or picked) is another login's."""
        if path and str(path).strip() and not self.can_read(str(path).strip()):
            raise AccessError(f"{what}: {path!r} belongs to another user's workspace", "other_user", what,
                              path=str(path).strip())

    def check_owned(self, path: str | Path) -> None:
        """Raise AccessError unless this workspace may stop, delete, resume into or cancel what is at ``path``."""
        if not self.owns(path):
            raise AccessError(f"{str(path)!r} belongs to another user's workspace", "other_user", path=str(path))

    def shared_runs(self) -> list[RunDir]:
        """Runs others shared with the class, which this workspace does not list as its own."""
        if self.user is None:
            return []
        own = self.run_roots()
        return [run for run in all_shared_runs() if not any(_inside(run.path, root) for root in own)]


def _resolved(path: str | Path) -> Path:
    p = Path(os.path.expanduser(str(path).strip()))
    return (p if p.is_absolute() else PROJECT_ROOT / p).resolve()


def _inside(target: Path, root: Path) -> bool:
    root = root.resolve()
    return target == root or root in target.parents


def _all_run_roots() -> list[Path]:
    return Workspace(user="", admin=True).run_roots()


def _runs_under(root: Path) -> list[RunDir]:
    if not root.is_dir():
        return []
    found = []
    for model_dir in (p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")):
        for method_dir in (p for p in model_dir.iterdir() if p.is_dir() and not p.is_symlink()):
            found += list_runs(method_dir)
    return found


# -- sharing ------------------------------------------------------------------------------------------------------
def is_shared(run: RunDir) -> bool:
    return (run.path / SHARED_MARK).is_file()


def share_run(run: RunDir, by: str, shared: bool = True) -> None:
    mark = run.path / SHARED_MARK
    if shared:
        atomic_write_json(mark, {"by": by, "at": time.time()})
    else:
        mark.unlink(missing_ok=True)


def all_shared_runs() -> list[RunDir]:
    return [run for root in _all_run_roots() for run in _runs_under(root) if is_shared(run)]


def shared_run_of(path: Path) -> RunDir | None:
    """The shared run at or above ``path`` (a run folder, or a checkpoint inside one), if any."""
    for folder in (path, *path.parents):
        if (folder / SHARED_MARK).is_file() and (folder / "status.json").is_file():
            return RunDir(folder)
    return None


# -- the queue: one for the machine, fair across logins --------------------------------------------------------------
def owner_of(path: str | Path) -> str:
    """The workspace folder name a run path lies in ("" for the saves of the app without logins)."""
    target = _resolved(path)
    base = workspaces_dir()
    if base in target.parents:
        return target.relative_to(base).parts[0]
    return ""
