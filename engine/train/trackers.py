"""Experiment trackers beside the run's own events.jsonl: what each needs before the Trainer starts.

Trackio and SwanLab log on this machine, into the run folder: Trackio's database under ``<run>/trackio`` (its
dashboard: ``TRACKIO_DIR=<run>/trackio trackio show``), SwanLab offline under ``<run>/swanlog`` (``swanlab sync``
uploads it later). Keys only ever come from the environment (WANDB_API_KEY, SWANLAB_API_KEY, ...).
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.core.config import RunConfig
from engine.jobs.job import rank

PROJECT = "tuneboard"
# Variables that would send Trackio's logs to a Hugging Face Space or a server: the run logs locally instead.
_TRACKIO_REMOTE = ("TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL", "TRACKIO_BUCKET_ID", "TRACKIO_DATASET_ID")


def tracker_arguments(cfg: RunConfig) -> dict:
    """Trainer arguments naming the run in the tracker: the run folder's name, in project "tuneboard"."""
    if cfg.train.report_to == "none":
        return {}
    return {"run_name": Path(cfg.train.output_dir).name, "project": PROJECT}


def start_tracker(cfg: RunConfig, run_path: Path, log=print) -> None:
    """Point the chosen tracker at the run folder; call before the trainer is built (it imports the tracker)."""
    tracker = cfg.train.report_to
    if tracker == "trackio":
        os.environ["TRACKIO_DIR"] = str(run_path / "trackio")
        ignored = [name for name in _TRACKIO_REMOTE if os.environ.pop(name, None)]
        if ignored:
            log(f"trackio: logging locally; ignoring {', '.join(ignored)}")
        log(f"trackio: logging to {run_path / 'trackio'} (view: TRACKIO_DIR={run_path / 'trackio'} trackio show)")
    elif tracker == "swanlab" and rank() == 0:
        import swanlab  # noqa: PLC0415 - optional package, checked before the model loads

        # Offline unless SWANLAB_MODE says otherwise (cloud then takes SWANLAB_API_KEY from the environment).
        mode = os.environ.get("SWANLAB_MODE") or "offline"
        logdir = os.environ.get("SWANLAB_LOG_DIR") or str(run_path / "swanlog")
        # transformers' SwanLab callback logs into the run started here (with its own it would need the cloud).
        swanlab.init(project=os.environ.get("SWANLAB_PROJECT") or PROJECT, experiment_name=run_path.name, mode=mode,
                     logdir=logdir)
        log(f"swanlab: {mode} mode, logging to {logdir}")


def finish_tracker(cfg: RunConfig) -> None:
    """Close the run ``start_tracker`` opened (SwanLab's is not closed by the Trainer)."""
    if cfg.train.report_to == "swanlab" and rank() == 0:
        import swanlab  # noqa: PLC0415 - optional package

        swanlab.finish()
