"""What every engine subprocess (train, eval, export) does first: read its config, claim its run
directory, and listen for Stop."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from engine.config import RunConfig
from engine.rundir import RUNNING, RunDir


class StopRequested:
    """Set by SIGTERM/SIGINT; the job checks it between steps and ends as ``stopped``."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        self.requested = True


def log(msg: str) -> None:
    """Job output goes to stdout, which the runner sends to the run's stdout.log."""
    print(msg, flush=True)


def start_job(config_path: str | Path, command: str, phase: str, **status) -> tuple[RunConfig, RunDir, StopRequested]:
    """Install the stop handler, load the config for ``command`` and mark its run directory running.

    The run directory is the section's ``output_dir``, else the folder holding the config file."""
    stop = StopRequested()
    stop.install()
    config_path = Path(config_path)
    cfg = RunConfig.load(config_path, command)
    section = getattr(cfg, command)
    run = RunDir(Path(section.output_dir or config_path.parent).resolve())
    section.output_dir = str(run.path)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_status(RUNNING, pid=os.getpid(), error=None, phase=phase, command=command, **status)
    return cfg, run, stop
