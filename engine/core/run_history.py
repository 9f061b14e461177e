"""Every run under saves/, read back from its run directory alone: a summary per run, the settings in which
several runs differ, and deleting a finished one.

Layout: saves/<model>/<method>/<run>/ (see engine/core/rundir.py for the files in a run directory).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.config import COMMAND_SECTIONS, ConfigError, RunConfig
from engine.core.paths import PathError, saves_dir
from engine.core.rundir import ACTIVE_STATES, STOPPED, RunDir, list_runs


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs list. Numbers are None where the run directory does not record them."""

    run: RunDir
    model: str  # the saves/<model> folder
    method: str  # the saves/<model>/<method> folder
    command: str  # train, eval or export
    state: str
    created_at: float
    stage: str = ""
    datasets: tuple[str, ...] = ()
    learning_rate: float | None = None
    epochs: float | None = None
    lora_rank: int | None = None  # LoRA runs only
    batch_size: int | None = None  # per device
    grad_accum: int | None = None
    cutoff_len: int | None = None
    final_loss: float | None = None
    best_loss: float | None = None
    best_eval_loss: float | None = None
    duration_s: float | None = None
    tokens_per_s: float | None = None
    final_probe_score: float | None = None  # the last scored probe round's mean score (0..100)
    best_probe_score: float | None = None  # the highest of them
    error: str | None = None
    config_error: str | None = None  # run.yaml missing or unreadable: settings are unknown
    status_error: Exception | None = None  # status.json unreadable (a DataError naming it): the state is unknown

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def label(self) -> str:
        return run_label(self.run)


# The state shown for a run whose status.json cannot be read (RunSummary.status_error says why).
UNREADABLE = "unreadable"
# The state shown for a job taken out of the device queue before it started (status.json: stopped, cancelled).
REMOVED = "removed"


def run_label(run: RunDir) -> str:
    """model / method / run: unique under saves/."""
    return f"{run.path.parent.parent.name} / {run.path.parent.name} / {run.name}"


def run_command(run: RunDir) -> str:
    """The command the run was started for (status.json records it; older runs were all training)."""
    command = run.read_status().get("command") or "train"
    return command if command in COMMAND_SECTIONS else "train"


def load_run_config(run: RunDir) -> RunConfig:
    """run.yaml through the typed config (raises FileNotFoundError or ConfigError naming the field)."""
    return RunConfig.load(run.config_path, run_command(run))


def all_runs(root: Path | None = None) -> list[RunDir]:
    """Run directories of every model and method under ``root`` (saves/), newest first."""
    root = Path(root) if root is not None else saves_dir()
    if not root.is_dir():
        return []
    found: list[tuple[float, RunDir]] = []
    # Dot folders are the app's own (saves/.queue); linked folders hold runs that live somewhere else.
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()
                            and not p.name.startswith(".")):
        for method_dir in sorted(p for p in model_dir.iterdir() if p.is_dir() and not p.is_symlink()):
            found += [(run.read_status().get("created_at") or 0.0, run) for run in list_runs(method_dir)
                      if not run.path.is_symlink()]
    return [run for _, run in sorted(found, key=lambda item: item[0], reverse=True)]


def summarize(run: RunDir, now: float | None = None) -> RunSummary:
    """What the runs list shows about ``run``, from status.json, events.jsonl and run.yaml."""
    status = run.live_status()  # a run whose process died unannounced reads as failed
    command = run_command(run)
    unreadable = run.status_error()
    state = UNREADABLE if unreadable else status.get("state") or ""
    if state == STOPPED and status.get("cancelled"):
        state = REMOVED
    base: dict[str, Any] = {"run": run, "model": run.path.parent.parent.name, "method": run.path.parent.name,
                            "command": command, "state": state, "created_at": float(status.get("created_at") or 0),
                            "error": status.get("error"), "duration_s": _duration(status, now),
                            "status_error": unreadable}
    try:
        cfg = load_run_config(run)
    except FileNotFoundError:
        base["config_error"] = f"{run.config_path} is missing"
    except ConfigError as exc:
        base["config_error"] = f"{run.config_path}: {exc}"
    else:
        base.update(datasets=tuple(cfg.data.datasets) if command != "export" else (),
                    cutoff_len=cfg.data.cutoff_len if command != "export" else None)
        if command == "train":
            t = cfg.train
            base.update(stage=t.stage, learning_rate=t.learning_rate, epochs=t.num_train_epochs,
                        lora_rank=cfg.lora.rank if t.finetuning_type == "lora" else None,
                        batch_size=t.per_device_train_batch_size, grad_accum=t.gradient_accumulation_steps)
        else:
            base["stage"] = command
    if command == "train":
        events = run.read_events()
        base.update(_loss_figures(events), **_probe_figures(events))
    return RunSummary(**base)


def _duration(status: dict, now: float | None) -> float | None:
    """Wall-clock seconds from the process start (model loading included) to its end, or to now while it runs."""
    started = status.get("started_at")
    if not started:
        return None
    end = status.get("finished_at") or (None if status.get("state") not in ACTIVE_STATES else now or time.time())
    return max(0.0, float(end) - float(started)) if end else None


def _loss_figures(events: list[dict]) -> dict[str, float | None]:
    """Final and lowest logged training loss, lowest validation loss, and the training throughput.

    tokens/s is what the last logged step recorded: non-padding input tokens seen since training began divided
    by the seconds since then (engine/train/run.py). An event without it but with tokens_seen and elapsed_s gets the
    same quotient; a run that counts no tokens (ORPO feeds none the Trainer can count) has none."""
    losses = [float(e["loss"]) for e in events if isinstance(e.get("loss"), (int, float))]
    evals = [float(e["eval_loss"]) for e in events if isinstance(e.get("eval_loss"), (int, float))]
    speed = None
    for e in reversed(events):
        if isinstance(e.get("tokens_per_s"), (int, float)):
            speed = float(e["tokens_per_s"])
            break
        if e.get("tokens_seen") and e.get("elapsed_s"):
            speed = round(float(e["tokens_seen"]) / float(e["elapsed_s"]), 1)
            break
    return {"final_loss": losses[-1] if losses else None, "best_loss": min(losses) if losses else None,
            "best_eval_loss": min(evals) if evals else None, "tokens_per_s": speed}


def _probe_figures(events: list[dict]) -> dict[str, float | None]:
    """The mean probe score of the run's last scored probe round, and the highest one (rounds written before probes
    had expectations carry none)."""
    scores = [score for score in (score_value(e.get("probe_score")) for e in events) if score is not None]
    return {"final_probe_score": scores[-1] if scores else None, "best_probe_score": max(scores) if scores else None}


def loss_events(run: RunDir) -> list[dict]:
    """The events that carry a training or validation loss (the points of the run's loss curve)."""
    return [e for e in run.read_events() if "loss" in e or "eval_loss" in e]


# -- settings diff -----------------------------------------------------------------------------------------------

# Fields every run has a different value of by construction (its own folder): never a setting to compare.
_NOT_SETTINGS = {"train.output_dir", "eval.output_dir", "export.output_dir"}


@dataclass
class SettingsDiff:
    """The fields (dotted names) whose values differ between the runs, each with one value per run; a field the
    run's command does not read is None. ``errors`` holds runs whose run.yaml could not be read (no column), each
    with its ConfigError, or None where run.yaml is missing (kept as errors, for the UI to word in its language)."""

    runs: list[RunDir] = field(default_factory=list)
    rows: list[tuple[str, list[Any]]] = field(default_factory=list)
    errors: list[tuple[RunDir, ConfigError | None]] = field(default_factory=list)


def settings_diff(runs: list[RunDir]) -> SettingsDiff:
    diff = SettingsDiff()
    flat: list[dict[str, Any]] = []
    for run in runs:
        try:
            cfg = load_run_config(run)
        except FileNotFoundError:
            diff.errors.append((run, None))
            continue
        except ConfigError as exc:
            diff.errors.append((run, exc))
            continue
        sections = COMMAND_SECTIONS[run_command(run)]
        flat.append({f"{section}.{name}": value for section, values in cfg.to_dict().items() if section in sections
                     for name, value in values.items()})
        diff.runs.append(run)
    keys: list[str] = []
    for values in flat:  # the config's own field order
        keys += [k for k in values if k not in keys and k not in _NOT_SETTINGS]
    for key in keys:
        column = [values.get(key) for values in flat]
        if any(v != column[0] for v in column[1:]):
            diff.rows.append((key, column))
    return diff


# -- probe answers side by side ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProbeAnswer:
    """One run's answer to one probe in its last probe round; ``score`` (0..100) only for a probe with an
    expectation."""

    answer: str
    score: float | None = None


@dataclass(frozen=True)
class ProbeRow:
    """One question, with the expectation it was scored against (the first run's that has one), and one answer per
    run (None: that run has no such probe)."""

    question: str
    expect: dict | None
    answers: list[ProbeAnswer | None]


@dataclass
class ProbeComparison:
    """The same probes' answers across runs, from each run's last probe round: ``steps`` and ``scores`` hold that
    round's step and mean probe score per run (None: no round, or no scored probe), ``rows`` the union of the
    questions in first-seen order (empty when no run has a probe round)."""

    runs: list[RunDir] = field(default_factory=list)
    steps: list[int | None] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)
    rows: list[ProbeRow] = field(default_factory=list)


def last_probe_round(events: list[dict]) -> dict | None:
    """The run's latest probe round (events.jsonl: {"step", "probes": [{"q", "a", "expect"?, "score"?}, ...],
    "probe_score"?}), or None."""
    return next((e for e in reversed(events) if isinstance(e.get("probes"), list)), None)


def probe_comparison(runs: list[RunDir]) -> ProbeComparison:
    """Each run's last probe round, lined up by question (see ProbeComparison)."""
    comparison = ProbeComparison(runs=list(runs))
    answers: list[dict[str, dict]] = []
    order: dict[str, None] = {}  # the questions, first-seen first
    for run in runs:
        last = last_probe_round(run.read_events())
        probes = [p for p in (last or {}).get("probes", []) if isinstance(p, dict) and "q" in p]
        comparison.steps.append(int(last["step"]) if last else None)
        comparison.scores.append(score_value((last or {}).get("probe_score")))
        answers.append({str(p["q"]): p for p in probes})
        order.update((str(p["q"]), None) for p in probes)  # a question seen before keeps its place
    for question in order:
        found = [by_question.get(question) for by_question in answers]
        expect = next((p["expect"] for p in found if p and isinstance(p.get("expect"), dict)), None)
        comparison.rows.append(ProbeRow(question, expect, [_probe_answer(p) for p in found]))
    return comparison


def _probe_answer(probe: dict | None) -> ProbeAnswer | None:
    if probe is None:
        return None
    return ProbeAnswer(str(probe.get("a") or ""), score_value(probe.get("score")))


def score_value(value: Any) -> float | None:
    """A probe score as the training process writes it (a number), else None: unscored, or an events.jsonl edited by
    hand."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# -- delete ------------------------------------------------------------------------------------------------------

class RunBusyError(PathError):
    """The run is queued or running: it cannot be deleted."""


def run_to_delete(path: str | Path, root: Path | None = None) -> RunDir:
    """The run directory at ``path``, checked for deletion: a real folder (no symlink anywhere in the path) at
    saves/<model>/<method>/<run>, holding a status.json, not queued or running. Raises PathError saying why not."""
    root = (Path(root) if root is not None else saves_dir()).resolve()
    text = str(path).strip()
    if not text or "\x00" in text:
        raise PathError(f"run folder {text!r} is not a valid path")
    target = Path(text)
    if not target.is_absolute():
        raise PathError(f"run folder {text!r} must be an absolute path inside {root}")
    if target.resolve() != target:  # saves/ is a resolved path, so any link or '..' shows here
        raise PathError(f"run folder {text!r} goes through a symbolic link or '..'; refusing to delete it")
    if target.parent.parent.parent != root:
        raise PathError(f"run folder {text!r} is not a run directory of {root} (<model>/<method>/<run>)")
    run = RunDir(target)
    if not run.path.is_dir() or not run.status_path.is_file():
        raise PathError(f"run folder {text!r} does not exist or holds no status.json")
    state = run.live_status().get("state")
    if state in ACTIVE_STATES:
        raise RunBusyError(f"run {run.name} is {state}; stop it before deleting it")
    for inner in _runs_inside(run.path):  # an older version let a run's folder lie inside another run's
        state = inner.live_status().get("state")
        if state in ACTIVE_STATES:
            raise RunBusyError(f"run {inner.path} inside {run.name} is {state}; stop it before deleting {run.name}")
    return run


def _runs_inside(folder: Path) -> list[RunDir]:
    """Run folders (holding a status.json) below ``folder``, not following links."""
    return [RunDir(Path(here)) for here, _, files in os.walk(folder) if "status.json" in files and Path(here) != folder]


def delete_run(path: str | Path, root: Path | None = None) -> RunDir:
    """Remove a finished, failed or stopped run directory with its checkpoints and weights (see run_to_delete).
    The caller holds the launch lock, so no Start can claim the folder between the check and the removal."""
    run = run_to_delete(path, root)
    try:
        # status.json first: it is what makes a folder a run to every listing (Chat's checkpoints, this view),
        # so none offers a half-removed run.
        run.status_path.unlink()
        shutil.rmtree(run.path)
    except OSError as exc:
        raise PathError(f"run folder {run.path} could not be deleted completely: {exc.strerror or exc}") from None
    return run
