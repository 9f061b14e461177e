"""What every engine subprocess (train, eval, export) does first: read its config, claim its run
directory, and listen for Stop."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from engine.core.config import ConfigError, RunConfig
from engine.core.data import DataError
from engine.core.devices import torch_import_failure
from engine.core.download import HUB_NAMES, ensure_model
from engine.core.model_files import ModelLoadError
from engine.core.paths import PathError
from engine.core.rundir import FAILED, RUNNING, STOPPED, RunDir
from engine.core.templates import TemplateError


def settle_imports() -> None:
    """Move everything alive now (the half-million objects torch, transformers and peft create on import)
    out of the cyclic garbage collector's reach. Each full collection otherwise walks them all, again and again
    while a job builds its model and Trainer (thousands of small objects), which slows its start. They
    live as long as the process anyway; a forked job also stops dirtying the pages it shares with its parent.
    """
    gc.freeze()


def rank() -> int:
    """This process's global rank under torchrun (0 when run alone)."""
    return int(os.environ.get("RANK", "0"))


class StopRequested:
    """Stop pressed in the UI: the run's stop.request file, or SIGTERM/SIGINT. The job checks it between
    steps and ends as ``stopped``.

    A signal alone also comes from torchrun ending the other ranks after one failed; ``by_user`` tells
    the two apart, so such a run ends as failed."""

    def __init__(self, run: RunDir | None = None) -> None:
        self.signalled = False
        self.run = run

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        self.signalled = True

    @property
    def by_user(self) -> bool:
        return self.run is not None and self.run.stop_requested()

    @property
    def requested(self) -> bool:
        return self.signalled or self.by_user


def log(msg: str) -> None:
    """Job output goes to stdout, which the runner sends to the run's stdout.log (rank 0 only: other
    ranks would repeat every line)."""
    if rank() == 0:
        print(msg, flush=True)


def start_job(config_path: str | Path, command: str, phase: str, **status) -> tuple[RunConfig, RunDir, StopRequested]:
    """Install the stop handler, load the config for ``command`` and mark its run directory running.

    The run directory is the section's ``output_dir``, else the folder holding the config file."""
    stop = StopRequested()
    stop.install()
    config_path = Path(config_path)
    cfg = RunConfig.load(config_path, command)
    section = getattr(cfg, command)
    run = RunDir(Path(section.output_dir or config_path.parent).resolve(), writer=rank() == 0)
    stop.run = run
    section.output_dir = str(run.path)
    run.path.mkdir(parents=True, exist_ok=True)
    # Under torchrun the launcher (our parent) is the process to watch: it lives as long as any rank.
    pid = os.getppid() if "TORCHELASTIC_RUN_ID" in os.environ else os.getpid()
    run.write_status(RUNNING, pid=pid, error=None, phase=phase, command=command, **status)
    return cfg, run, stop


class _StopAsEvent:
    """A job's Stop (stop.request or SIGTERM) in the shape engine.core.download checks: ``is_set()``."""

    def __init__(self, stop: StopRequested) -> None:
        self.stop = stop

    def is_set(self) -> bool:
        return self.stop.requested


def fetch_model(cfg: RunConfig, run: RunDir, stop: StopRequested) -> str:
    """The run's model as a local folder, downloaded here first when it is a hub id not on disk yet.

    The job downloads in its own process, so closing the page does not stop it: status.json shows phase
    ``downloading`` with a ``download`` dict (engine.core.download.DownloadProgress, at most twice a second) for the
    monitors, the log names each file, and Stop ends it (the files done are kept for the next try)."""
    phase = run.read_status().get("phase")
    files: list[str] = []

    def report(progress) -> None:
        if progress.file and progress.file not in files:
            files.append(progress.file)
            log(f"downloading {progress.model} from {HUB_NAMES.get(progress.hub, progress.hub)}: {progress.file} "
                f"(file {progress.files_done + 1} of {progress.files_total})")
        run.write_status(RUNNING, phase="downloading", download=progress.to_dict())

    # The clients' own progress bars (modelscope draws one per file, with cursor moves) would fill stdout.log;
    # the lines above say the same once per file. (Their logged warnings keep their own stream.)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):
        folder = ensure_model(cfg.model.model_name_or_path, cfg.model.hub, report, _StopAsEvent(stop))
    if files:
        log(f"downloaded {cfg.model.model_name_or_path} into {folder}")
    if run.read_status().get("phase") == "downloading":
        run.write_status(RUNNING, phase=phase, download=None)
    return folder


def expected_error(exc: BaseException) -> bool:
    """Errors that already say in words what is wrong with the input: no traceback needed."""
    return isinstance(exc, (DataError, ModelLoadError, PathError, TemplateError, ConfigError))


def error_record(exc: BaseException) -> dict | None:
    """What the web UI needs to word ``exc`` in the user's language (its kind, message key and params), kept in
    status.json beside the English ``error``; None for an error without a key."""
    if isinstance(exc, ConfigError):
        record = {"kind": "config", "field": exc.field_name, "key": exc.key, "params": exc.params}
    elif isinstance(exc, DataError):
        record = {"kind": "data", "key": exc.key, "params": exc.params, "file": exc.file, "row": exc.row,
                  "field": exc.field}
    elif isinstance(exc, ModelLoadError) and exc.key:
        record = {"kind": "model", "key": exc.key, "params": exc.params, "message": str(exc)}
    elif isinstance(exc, PathError) and exc.key:
        record = {"kind": "path", "key": exc.key, "field": exc.field, "params": exc.params, "message": str(exc)}
    else:
        return None
    return json.loads(json.dumps(record, default=str))  # a param that is an error itself: its English text


def describe_error(exc: BaseException) -> str:
    """The failure in words: our own errors already say what is wrong; others get their type named."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, DataError):
        return f"dataset problem: {exc}"
    if isinstance(exc, (ModelLoadError, PathError, TemplateError, ConfigError)):
        return str(exc)
    return torch_import_failure(exc) or f"{type(exc).__name__}: {exc}"


class Stopped(Exception):
    """Stop was seen between two pieces of a job's work (evaluation batches, export stages): the job ends as
    stopped."""


class JobOutcome:
    """How every job ends, in one place. Used as ``with outcome: ... return 0`` and then ``return outcome.code``:
    an exception inside ends the job as stopped (Stopped, or any error once Stop was pressed) or as failed, with
    the error in words in status.json (``error``, and ``error_record`` for the page's language) and a traceback
    printed only for errors that do not already say what is wrong.

    ``noun`` ("Evaluation", "Export") names the job in the log's last line; ``stopped_note`` follows "stopped;".
    ``user_stopped`` tells a Stop the user asked for from one that is not (training under torchrun: a signal may
    come from the launcher ending the ranks after another failed). ``cleanup`` runs first on any error;
    ``describe`` words an error (default: describe_error and error_record)."""

    def __init__(self, run: RunDir, stop: StopRequested, noun: str = "", stopped_note: str = "", *,
                 user_stopped: Callable[[], bool] | None = None, cleanup: Callable[[], None] | None = None,
                 describe: Callable[[BaseException], tuple[str, dict | None]] | None = None,
                 expected: Callable[[BaseException], bool] = expected_error) -> None:
        self.run, self.stop, self.noun, self.stopped_note = run, stop, noun, stopped_note
        self.user_stopped = user_stopped or (lambda: stop.requested)
        self.cleanup = cleanup
        self.describe = describe or (lambda exc: (describe_error(exc), error_record(exc)))
        self.expected = expected
        self.code = 0

    def __enter__(self) -> JobOutcome:
        return self

    def __exit__(self, kind, exc: BaseException | None, tb) -> bool:
        if exc is None:
            return False
        if self.cleanup is not None:
            self.cleanup()
        if not isinstance(exc, Stopped) and not self.expected(exc):
            traceback.print_exc()
        sys.stdout.flush()
        if isinstance(exc, Stopped) or self.user_stopped():
            self.run.write_status(STOPPED, phase="stopped", error=None)
            if self.noun:
                log(f"{self.noun} stopped; {self.stopped_note}" if self.stopped_note else f"{self.noun} stopped.")
            self.code = 0
        else:
            message, record = self.describe(exc)
            self.run.write_status(FAILED, error=message, error_record=record)
            if self.noun:
                log(f"{self.noun} failed: {message}")
            self.code = 1
        return True  # reported: the job's entry point returns self.code
