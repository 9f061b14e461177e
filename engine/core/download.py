"""Models from the hubs: a hub id becomes a local folder, fetched by that hub's own client library
(huggingface_hub, modelscope, openmind_hub) into that client's own cache, with progress anyone can watch.

- A model already downloaded (by TuneBoard: its ``done`` record, checked with a few ``stat`` calls) is found
  without touching the network, so Load model stays fast offline.
- One download per model, whoever asks: the first caller holds the model's lock (``flock``, so it holds across
  threads and processes: the web process and its jobs) and writes its progress to a shared file; a second
  caller waits for the lock, reporting that file's progress as its own, then finds the model complete.
- Resume is the clients': ModelScope continues a partial file from its ``.incomplete`` part (HTTP Range), and
  every client keeps the files it completed; huggingface_hub resumes a dropped connection within the call.
- ``cancel`` (anything with ``is_set()``: a threading.Event, a job's Stop) ends the download at its next chunk.
- Failures are ``DownloadError``s: one sentence naming the model and hub, with a key the web UI translates.

Only weights as safetensors, and the config, tokenizer and generation files are fetched (``ALLOW_PATTERNS``):
pickle weights are never downloaded, let alone loaded.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import json
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from engine.core.catalogue import hubs_with
from engine.core.demo_model import converted_dir, is_demo
from engine.core.fileio import atomic_write_json
from engine.core.hubs import hub_cache_dir, hub_settings, is_hub_id, resolve_hub
from engine.core.model_files import ModelLoadError, local_model_path
from engine.core.paths import home_dir

# Top-level files only (subfolders hold other formats: original/*.pth, onnx/, gguf/). *.py: models that ship
# their own code (run only with "Trust remote code" ticked); *.jinja: chat templates kept beside the tokenizer.
ALLOW_PATTERNS = ["*.safetensors", "*.json", "*.txt", "*.model", "*.tiktoken", "*.jinja", "*.py"]
IGNORE_PATTERNS = ["*/*"]
HUB_NAMES = {"huggingface": "Hugging Face", "modelscope": "ModelScope", "modelers": "Modelers (openMind)"}
REPORT_EVERY_S = 0.5  # progress reports (status.json, the shared file, the caller) at most twice a second
RATE_WINDOW_S = 5.0  # the rate is the bytes of the last few seconds: it follows the line's speed as it changes
MIN_RATE_SPAN_S = 1.0


@dataclass
class DownloadProgress:
    model: str
    hub: str
    file: str = ""
    done_bytes: int = 0
    total_bytes: int = 0
    rate_bps: float = 0.0
    eta_s: float | None = None
    files_done: int = 0
    files_total: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DownloadProgress:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


ProgressFn = Callable[[DownloadProgress], None]


class Cancel(Protocol):
    def is_set(self) -> bool: ...


class DownloadError(ModelLoadError):
    """A hub download failed; ``key`` (download_<reason>) and params (model, hub, ...) let the web UI say it in
    the user's language. Reasons: no_network, offline, not_found, not_found_elsewhere, gated (gated_token where the
    hub has no login command), disk_full, cancelled, no_weights, bad_id."""


DOWNLOAD_MESSAGES = {  # English; the web UI shows them translated (webui/locales.py, load_err_download_<key>)
    "no_network": "cannot reach {hub} to download {model}: no network connection (the files already downloaded "
                  "are kept, and the next try continues from them)",
    "offline": "{model} is not downloaded yet and offline mode is on ({switch}); turn it off or choose a local "
               "folder",
    "not_found": "{model} does not exist on {hub}; check the id",
    "not_found_elsewhere": "{model} does not exist on {hub}, but {others} has it: choose that hub in the top bar",
    "gated": "{model} on {hub} needs an account that has accepted its licence: log in with the hub's own "
             "command ({login}) or set {token_var}, then try again",
    "gated_token": "{model} on {hub} needs an account that has accepted its licence: set {token_var} to the "
                   "account's access token, then try again",
    "disk_full": "the disk is full while downloading {model} from {hub} into {folder}; free some space, then "
                 "try again (the files already downloaded are kept)",
    "cancelled": "the download of {model} from {hub} was stopped; the files already downloaded are kept",
    "no_weights": "{model} on {hub} has no safetensors weights; TuneBoard does not load pickle weights",
    "not_downloaded": "{model} is not downloaded from {hub} yet: Load model (Chat) or Start downloads it, showing its "
                      "progress; then try again",
    "bad_id": "{model} is neither a local model folder nor a {hub} model id (Organisation/Name)",
}
# How each hub's client finds a token: (its login command, its variable). openmind_hub has neither: it takes a token
# argument only, which TuneBoard reads from OPENMIND_TOKEN_VAR (named after the client's OPENMIND_HUB_ENDPOINT).
OPENMIND_TOKEN_VAR = "OPENMIND_HUB_TOKEN"
LOGIN = {"huggingface": ("hf auth login", "HF_TOKEN"), "modelscope": ("modelscope login", "MODELSCOPE_API_TOKEN"),
          "modelers": ("", OPENMIND_TOKEN_VAR)}


def download_error(reason: str, model: str, hub: str, **params) -> DownloadError:
    # hub_id (and others_ids) let the web UI name the hubs as its hub menu does, in the user's language.
    params = {"model": model, "hub": HUB_NAMES.get(hub, hub), "hub_id": hub, **params}
    if reason == "gated":
        login, params["token_var"] = LOGIN[hub]
        if login:
            params["login"] = login
        else:
            reason = "gated_token"
    return DownloadError(DOWNLOAD_MESSAGES[reason].format(**params), key=f"download_{reason}", **params)


class _Cancelled(BaseException):
    """Raised from inside a client's progress hook to end its download. A BaseException: the clients retry on
    Exception (modelscope, openmind), and a retried cancel would not end anything."""


# -- progress --------------------------------------------------------------------------------------------------
class _Tracker:
    """Adds up the bytes the client reports, works out rate and time left, and reports at most every
    REPORT_EVERY_S; raises _Cancelled at the first report after ``cancel`` is set. The clients call it from
    their download threads."""

    def __init__(self, model: str, hub: str, report: ProgressFn, cancel: Cancel | None) -> None:
        self.progress = DownloadProgress(model, hub)
        self.report, self.cancel = report, cancel
        self.lock = threading.Lock()
        self.samples: deque[tuple[float, int]] = deque()
        self.last_report = 0.0

    def plan(self, files: dict[str, int], present: set[str]) -> None:
        """The files to fetch with their sizes; those already on disk count as done."""
        with self.lock:
            p = self.progress
            p.files_total, p.total_bytes = len(files), sum(files.values())
            p.files_done = len(present)
            p.done_bytes = sum(files[name] for name in present)
        self._emit(force=True)

    def start_file(self, name: str) -> None:
        with self.lock:
            self.progress.file = name
        self._emit(force=True)

    def advance(self, n: int) -> None:
        with self.lock:
            self.progress.done_bytes += n
        self._emit()

    def finish_file(self) -> None:
        with self.lock:
            self.progress.files_done += 1
        self._emit()

    def _emit(self, force: bool = False) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise _Cancelled
        now = time.monotonic()
        with self.lock:
            if not force and now - self.last_report < REPORT_EVERY_S:
                return
            self.last_report = now
            p = self.progress
            self.samples.append((now, p.done_bytes))
            while len(self.samples) > 2 and now - self.samples[0][0] > RATE_WINDOW_S:
                self.samples.popleft()
            (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
            # Under a second of samples says more about the listing's latency than the line's speed: unknown (0).
            p.rate_bps = max(0.0, (b1 - b0) / (t1 - t0)) if t1 - t0 >= MIN_RATE_SPAN_S else 0.0
            left = max(0, p.total_bytes - p.done_bytes)
            p.eta_s = left / p.rate_bps if p.rate_bps > 0 else None
            snapshot = DownloadProgress(**asdict(p))
        self.report(snapshot)


def _quiet_bar():
    """A tqdm class that prints nothing (the clients' ``tqdm_class`` hook): the progress is ours to show."""
    from tqdm.auto import tqdm  # noqa: PLC0415 - comes with the hub clients; only a download needs it

    class Quiet(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            super().__init__(*args, **{**kwargs, "disable": True})

    return Quiet


def _bar_class(tracker: _Tracker, name: str):
    """A quiet tqdm class that feeds ``tracker`` (the hook huggingface_hub's downloads take: ``tqdm_class``)."""

    class Bar(_quiet_bar()):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)  # counts through update() below
            tracker.advance(int(kwargs.get("initial") or 0))  # a resumed file starts where it was

        def update(self, n=1):
            tracker.advance(int(n or 0))
            return super().update(n)

    tracker.start_file(name)
    return Bar


# -- the hubs' clients ---------------------------------------------------------------------------------------
def _hub_settings(hub: str) -> tuple[str | None, str | None]:
    """(endpoint, cache folder) as engine.core.hubs reads them from the environment now: passed to the clients
    explicitly, because they read their variables once, at import (a long-running web process would miss a change)."""
    settings = hub_settings(hub)
    return settings.endpoint, str(settings.cache_dir)


class _Client(Protocol):
    def cached(self, repo: str) -> str | None: ...
    def plan(self, repo: str) -> tuple[dict[str, int], set[str]]: ...
    def fetch(self, repo: str, files: dict[str, int], present: set[str], tracker: _Tracker) -> str: ...


class _HuggingFace:
    """huggingface_hub. One file at a time (hf_hub_download), so the progress names the file being fetched
    (snapshot_download's bars are aggregated and lose the name), then snapshot_download with every file in place:
    it records the revision and file list in the cache as usual, so the client's own offline mode finds it."""

    def __init__(self) -> None:
        self.endpoint, self.cache_dir = _hub_settings("huggingface")

    def cached(self, repo: str) -> str | None:
        from huggingface_hub import snapshot_download  # noqa: PLC0415 - a hub's client, only when that hub is used

        try:
            return snapshot_download(repo, allow_patterns=ALLOW_PATTERNS, ignore_patterns=IGNORE_PATTERNS,
                                     cache_dir=self.cache_dir, local_files_only=True)
        except Exception:  # noqa: BLE001 - not cached, or cached incompletely: both mean "not here"
            return None

    def plan(self, repo: str) -> tuple[dict[str, int], set[str]]:
        from huggingface_hub import HfApi, try_to_load_from_cache  # noqa: PLC0415 - a hub's client, only when that hub is used
        from huggingface_hub.utils import filter_repo_objects  # noqa: PLC0415 - a hub's client, only when that hub is used

        info = HfApi(endpoint=self.endpoint).model_info(repo, files_metadata=True)
        self.revision = info.sha
        sizes = {s.rfilename: int(s.size or 0) for s in info.siblings or []}
        files = {name: sizes[name] for name in filter_repo_objects(list(sizes), allow_patterns=ALLOW_PATTERNS,
                                                                    ignore_patterns=IGNORE_PATTERNS)}
        present = {name for name in files if isinstance(
            try_to_load_from_cache(repo, name, cache_dir=self.cache_dir, revision=self.revision), str)}
        return files, present

    def fetch(self, repo: str, files: dict[str, int], present: set[str], tracker: _Tracker) -> str:
        from huggingface_hub import hf_hub_download, snapshot_download  # noqa: PLC0415 - a hub's client, only when that hub is used

        for name in files:
            if name in present:
                continue
            hf_hub_download(repo, name, revision=self.revision, cache_dir=self.cache_dir, endpoint=self.endpoint,
                            tqdm_class=_bar_class(tracker, name))
            tracker.finish_file()
        return snapshot_download(repo, allow_patterns=ALLOW_PATTERNS, ignore_patterns=IGNORE_PATTERNS,
                                 cache_dir=self.cache_dir, endpoint=self.endpoint, tqdm_class=_quiet_bar())


class _ModelScope:
    """modelscope. snapshot_download fetches exactly the files planned (one at a time, so the progress names the
    file); its ``progress_callbacks`` report each file's bytes, a resumed file's part on disk first."""

    def __init__(self) -> None:
        self.endpoint, self.cache_dir = _hub_settings("modelscope")

    def local(self, repo: str) -> str | None:
        """The client's snapshot folder for ``repo``, complete or not (no network)."""
        from modelscope.hub.snapshot_download import snapshot_download  # noqa: PLC0415 - a hub's client, only when that hub is used

        try:
            return str(snapshot_download(repo, cache_dir=self.cache_dir, local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached
            return None

    def cached(self, repo: str) -> str | None:
        folder = self.local(repo)
        return folder if folder and (Path(folder) / "config.json").is_file() else None

    def plan(self, repo: str) -> tuple[dict[str, int], set[str]]:
        from huggingface_hub.utils import filter_repo_objects  # noqa: PLC0415 - the same filter as the other hubs
        from modelscope_hub import HubApi  # noqa: PLC0415 - the library modelscope's own functions delegate to

        listing = HubApi(endpoint=self.endpoint).list_repo_files(repo, "model", recursive=True)
        sizes = {f.path: int(f.size or 0) for f in listing if not f.is_dir}
        files = {name: sizes[name] for name in filter_repo_objects(list(sizes), allow_patterns=ALLOW_PATTERNS,
                                                                    ignore_patterns=IGNORE_PATTERNS)}
        folder = self.local(repo)
        present = {name for name in files if folder and _size(Path(folder) / name) == files[name]}
        return files, present

    def fetch(self, repo: str, files: dict[str, int], present: set[str], tracker: _Tracker) -> str:
        from modelscope.hub.callback import ProgressCallback  # noqa: PLC0415 - a hub's client, only when that hub is used
        from modelscope.hub.snapshot_download import snapshot_download  # noqa: PLC0415 - a hub's client, only when that hub is used

        class Callback(ProgressCallback):
            def __init__(self, filename: str, file_size: int):
                super().__init__(filename, file_size)
                tracker.start_file(filename)

            def update(self, size: int) -> None:
                tracker.advance(size)

            def end(self) -> None:
                tracker.finish_file()

        todo = [glob.escape(name) for name in files if name not in present]  # exact names, as patterns
        if not todo:
            return self.local(repo) or ""
        return str(snapshot_download(repo, cache_dir=self.cache_dir, endpoint=self.endpoint, max_workers=1,
                                     allow_patterns=todo, progress_callbacks=[Callback]))


class _Modelers:
    """openmind_hub (Modelers). Its only progress hook, ``tqdm_class``, counts files: the bar counts files (its
    listing has no sizes) and Stop takes effect when the file being fetched is complete. Not covered by the fake hubs
    of the tests (they speak Hugging Face's and ModelScope's protocols)."""

    def __init__(self) -> None:
        self.endpoint, self.cache_dir = _hub_settings("modelers")
        self.token = os.environ.get(OPENMIND_TOKEN_VAR) or None  # never logged, never written anywhere

    def cached(self, repo: str) -> str | None:
        from openmind_hub import snapshot_download  # noqa: PLC0415 - a hub's client, only when that hub is used

        try:
            folder = snapshot_download(repo, cache_dir=self.cache_dir, local_files_only=True, token=self.token)
        except Exception:  # noqa: BLE001 - not cached
            return None
        return folder if (Path(folder) / "config.json").is_file() else None

    def plan(self, repo: str) -> tuple[dict[str, int], set[str]]:
        from huggingface_hub.utils import filter_repo_objects  # noqa: PLC0415 - a hub's client, only when that hub is used
        from openmind_hub import OmApi  # noqa: PLC0415 - a hub's client, only when that hub is used

        names = OmApi(endpoint=self.endpoint, token=self.token).list_repo_files(repo)
        wanted = list(filter_repo_objects(names, allow_patterns=ALLOW_PATTERNS, ignore_patterns=IGNORE_PATTERNS))
        folder = self.cached(repo)
        present = {n for n in wanted if folder and (Path(folder) / n).is_file()}
        return {n: 0 for n in wanted}, present  # sizes unknown before the download: the bar counts files

    def fetch(self, repo: str, _files: dict[str, int], _present: set[str], tracker: _Tracker) -> str:
        from openmind_hub import snapshot_download  # noqa: PLC0415 - a hub's client, only when that hub is used

        class Files(_quiet_bar()):  # snapshot_download iterates it over the files as each one completes
            def __iter__(self):
                for item in self.iterable:
                    tracker.finish_file()
                    yield item

        tracker.start_file("")
        return snapshot_download(repo, cache_dir=self.cache_dir, endpoint=self.endpoint, tqdm_class=Files,
                                 token=self.token, allow_patterns=ALLOW_PATTERNS, ignore_patterns=IGNORE_PATTERNS,
                                 max_workers=1)


CLIENTS: dict[str, Callable[[], _Client]] = {"huggingface": _HuggingFace, "modelscope": _ModelScope,
                                             "modelers": _Modelers}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


# -- one download per model: the state folder ---------------------------------------------------------------
@dataclass(frozen=True)
class _State:
    """TuneBoard's record of one model's download: ``.lock`` (held while downloading), ``.progress.json``
    (what the holder reports), ``.done.json`` (the folder and its files, once complete)."""

    hub: str
    repo: str

    @property
    def base(self) -> Path:
        return home_dir() / "downloads" / self.hub / self.repo.replace("/", "--")

    @property
    def progress_path(self) -> Path:
        return self.base.with_suffix(".progress.json")

    @property
    def done_path(self) -> Path:
        return self.base.with_suffix(".done.json")

    def complete_folder(self) -> str | None:
        """The folder of a finished download whose files are all still there (stat only, no network)."""
        try:
            done = json.loads(self.done_path.read_text(encoding="utf-8"))
            folder, files = Path(done["folder"]), done["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        ok = all(_size(folder / name) == size or (size == 0 and _size(folder / name) >= 0)
                 for name, size in files.items())
        return str(folder) if ok and (folder / "config.json").is_file() else None

    def record_done(self, folder: str, files: dict[str, int]) -> None:
        atomic_write_json(self.done_path, {"folder": folder, "files": {n: s or _size(Path(folder) / n)
                                                                         for n, s in files.items()}})
        self.progress_path.unlink(missing_ok=True)

    def read_progress(self) -> DownloadProgress | None:
        try:
            return DownloadProgress.from_dict(json.loads(self.progress_path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    @contextmanager
    def lock(self, report: ProgressFn, cancel: Cancel | None, model: str) -> Iterator[None]:
        """Hold this model's download lock; while another holds it, report its progress (joining it)."""
        self.base.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.base.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if cancel is not None and cancel.is_set():
                        raise download_error("cancelled", model, self.hub) from None
                    seen = self.read_progress()
                    if seen is not None:
                        report(seen)
                    time.sleep(REPORT_EVERY_S)
            yield
        finally:
            os.close(fd)  # closing releases the flock


# -- the entry point -----------------------------------------------------------------------------------------
def ensure_model(name_or_path: str, hub: str = "auto", on_progress: ProgressFn | None = None,
                 cancel: Cancel | None = None) -> str:
    """A local folder holding the model: a local path as it is, the demo model converted once, a hub id of
    ``hub`` downloaded (or found downloaded) by that hub's client. ``on_progress`` gets a DownloadProgress at
    most twice a second while files are fetched (or while another caller fetches them); ``cancel.is_set()``
    stops it. Raises ModelLoadError (DownloadError for the hub's failures)."""
    local = local_model_path(name_or_path)
    if local is not None:
        return local
    repo = name_or_path.strip()
    hub = _resolve(hub)
    if not is_hub_id(repo, hub):
        raise download_error("bad_id", repo, hub)
    state = _State(hub, repo)
    folder = state.complete_folder()
    if folder is not None:
        return folder
    report = on_progress or (lambda _p: None)
    with state.lock(report, cancel, repo):
        folder = state.complete_folder()  # a download we waited for has finished it
        if folder is not None:
            return folder
        return _download(state, CLIENTS[hub](), report, cancel)


def downloaded_folder(name_or_path: str, hub: str = "auto") -> str | None:
    """The folder of a hub id TuneBoard has downloaded completely (no network, no download), else None; a local
    folder as it is. For what only needs config.json before any download (the memory estimate, the hub line)."""
    if is_demo(name_or_path):
        return str(converted_dir()) if (converted_dir() / "config.json").is_file() else None
    try:
        local = local_model_path(name_or_path)
    except ModelLoadError:
        return None
    return local if local is not None else _State(_resolve(hub), name_or_path.strip()).complete_folder()


def require_downloaded(name_or_path: str, hub: str = "auto") -> None:
    """Refuse a hub model not downloaded yet, for what would otherwise download it unseen in the web process (the
    dataset check needs only the tokenizer): Load model and Start download it with its progress shown."""
    if local_model_path(name_or_path) is None and _State(_resolve(hub), name_or_path.strip()).complete_folder() is None:
        raise download_error("not_downloaded", name_or_path.strip(), _resolve(hub))


def _resolve(hub: str) -> str:
    return resolve_hub(hub or "auto")


def offline_switch(hub: str) -> str | None:
    """The variable that turned this hub's offline mode on, if one did: huggingface_hub's switches, read as it
    reads them (ModelScope and Modelers have none: their offline use is a local folder)."""
    names = {"huggingface": ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}.get(hub, ())
    return next((f"{n}={os.environ[n]}" for n in names
                 if os.environ.get(n, "").strip().upper() in ("1", "ON", "YES", "TRUE")), None)


def _download(state: _State, client: _Client, report: ProgressFn, cancel: Cancel | None) -> str:
    hub, repo = state.hub, state.repo

    def publish(progress: DownloadProgress) -> None:
        atomic_write_json(state.progress_path, progress.to_dict())  # for whoever joins this download
        report(progress)

    switch = offline_switch(hub)
    if switch:
        folder = client.cached(repo)
        if folder is None:
            raise download_error("offline", repo, hub, switch=switch)
        return folder
    tracker = _Tracker(repo, hub, publish, cancel)
    try:
        files, present = client.plan(repo)
        if not any(name.endswith(".safetensors") for name in files):
            raise download_error("no_weights", repo, hub)
        tracker.plan(files, present)
        folder = client.fetch(repo, files, present, tracker)
    except _Cancelled:
        raise download_error("cancelled", repo, hub) from None
    except DownloadError:
        raise
    except Exception as exc:
        error = _failure(exc, repo, hub)
        if error.key == "download_no_network":
            folder = client.cached(repo)  # downloaded before, by the hub's own tool: usable offline
            if folder is not None:
                return folder
        raise error from exc
    finally:
        state.progress_path.unlink(missing_ok=True)
    tracker.progress.done_bytes = tracker.progress.total_bytes
    tracker.progress.files_done = tracker.progress.files_total
    report(tracker.progress)
    state.record_done(folder, files)
    return folder


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it (the clients wrap errors), and a modelscope failure's per-file errors."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__, *(getattr(e, "failed_files", None) or {}).values()]


def _failure(exc: BaseException, repo: str, hub: str) -> DownloadError:
    """The clients' errors (each has its own types, often wrapped) as one of our reasons."""
    chain = list(_chain(exc))
    names = {cls.__name__ for e in chain for cls in type(e).__mro__}
    statuses = {getattr(e, "status_code", None) for e in chain}
    statuses |= {getattr(getattr(e, "response", None), "status_code", None) for e in chain}
    if any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in chain):
        return download_error("disk_full", repo, hub, folder=str(hub_cache_dir(hub)))
    if "GatedRepoError" in names:
        return download_error("gated", repo, hub)
    if names & {"RepositoryNotFoundError", "NotExistError"} or 404 in statuses:
        others = _other_hubs(repo, hub)
        if others:
            return download_error("not_found_elsewhere", repo, hub, others_ids=others,
                                  others=", ".join(HUB_NAMES.get(h, h) for h in others))
        return download_error("not_found", repo, hub)
    if names & {"AuthenticationError", "PermissionDeniedError"} or statuses & {401, 403}:
        return download_error("gated", repo, hub)
    if "OfflineModeIsEnabled" in names:
        return download_error("offline", repo, hub, switch=offline_switch(hub) or "HF_HUB_OFFLINE=1")
    return download_error("no_network", repo, hub)


def _other_hubs(repo: str, hub: str) -> list[str]:
    """The other hubs the catalogue knows to have this model (for "it is on ModelScope")."""
    return [h for h in hubs_with(repo) if h != hub]


def follow_download(name_or_path: str, hub: str = "auto",
                    cancel: threading.Event | None = None) -> Iterator[DownloadProgress]:
    """``ensure_model`` in a thread, its progress yielded as it comes (for a UI handler that streams it); ends
    when the model is on disk, re-raising its error. Nothing is yielded for a model already there. Closing the
    generator early (nobody watches any more) cancels the download; the files done are kept."""
    cancel = cancel or threading.Event()
    updates: queue.SimpleQueue = queue.SimpleQueue()
    outcome: list[BaseException | None] = []

    def work() -> None:
        try:
            ensure_model(name_or_path, hub, updates.put, cancel)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the generator's thread
            outcome.append(exc)
        updates.put(None)

    worker = threading.Thread(target=work, name="tuneboard-download", daemon=True)
    worker.start()
    try:
        while True:
            item = updates.get()
            latest = item
            while item is not None and not updates.empty():  # only the newest of a backlog is worth showing
                item = updates.get()
                latest = item if item is not None else latest
            if latest is not None:
                yield latest
            if item is None:
                break
    finally:
        if worker.is_alive():
            cancel.set()
    if outcome and outcome[0] is not None:
        raise outcome[0]
