"""Intermediate checkpoints (``checkpoint-N`` folders the Trainer writes) and resuming from them.

A checkpoint counts only once it is complete: its weights, optimizer, scheduler
and trainer state are all there. A run killed in the middle of a save leaves an
incomplete folder, which is listed as such and never resumed from.

Under DeepSpeed the optimizer (and scheduler) are not optimizer.pt / scheduler.pt
but DeepSpeed's own layout, which the Trainer resumes from: a ``global_stepN/``
folder holding each ZeRO rank's ``*_optim_states.pt`` and the model states, and a
``latest`` file naming that folder, written once every rank has saved.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.core.config import COMMAND_SECTIONS, RunConfig, iter_fields
from engine.core.hubs import resolve_hub
from engine.core.probe_scoring import best_round, round_scores

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json")
_STATE_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")
_DEEPSPEED_LATEST = "latest"
# DeepSpeed's per-rank file names (runtime/engine.py, _get_rank_zero_ckpt_name and _get_ckpt_name).
_DEEPSPEED_OPTIM = re.compile(r"^(?:bf16_)?zero_pp_rank_(\d+)_mp_rank_(\d+)_optim_states\.pt$")
_DEEPSPEED_MODEL = re.compile(r"^(?:zero_pp_rank_(\d+)_)?mp_rank_(\d+)_model_states\.pt$")
# What a resumed run takes from the checkpoint: the Trainer restores each of these.
CARRIED_OVER = ("step", "weights", "optimizer", "scheduler", "rng")
# Fields that may change between the first run and its resumption without making it another run.
_RESUMABLE_CHANGES = {"train.num_train_epochs", "train.logging_steps", "train.save_steps", "train.output_dir",
                      "train.resume", "train.report_to", "train.early_stopping_patience", "train.early_stopping_metric",
                      "train.extra_args", "train.learning_rate", "train.max_grad_norm", "data.val_size",
                      "distributed.devices", "distributed.nproc_per_node", "distributed.nnodes",
                      "distributed.node_rank", "distributed.master_addr", "distributed.master_port", "model.device"}
_PROCESS_COUNT = ("distributed.devices", "distributed.nproc_per_node", "distributed.nnodes")


@dataclass
class Checkpoint:
    step: int
    path: Path
    complete: bool
    loss: float | None = None       # the last training loss logged at or before this step
    eval_loss: float | None = None
    best: bool = False              # the best checkpoint by validation loss (early stopping keeps it)
    probe_score: float | None = None  # the mean score of the probe round at this step (engine/train/probes.py)
    best_probe: bool = False        # the highest probe score of the run's (2+ scored) checkpoints; a tie: the earliest

    def label(self) -> str:
        parts = [f"step {self.step}"]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if self.eval_loss is not None:
            parts.append(f"eval {self.eval_loss:.4f}")
        if self.probe_score is not None:
            parts.append(f"probes {self.probe_score:.1f}")
        if self.best:
            parts.append("best by loss")
        if self.best_probe:
            parts.append("best by probes")
        if not self.complete:
            parts.append("incomplete")
        return ", ".join(parts)


def _is_complete(path: Path) -> bool:
    """The Trainer writes trainer_state.json last, so a checkpoint is complete once that file parses
    (not just exists: the save may have been cut off in the middle of it) and the rest is there."""
    if not (any((path / f).is_file() for f in _WEIGHTS) and _read_state(path)):
        return False
    if (path / _DEEPSPEED_LATEST).is_file():
        return _deepspeed_complete(path)
    return all((path / f).is_file() for f in _STATE_FILES)


def _deepspeed_tag(path: Path) -> Path | None:
    """The folder ``latest`` names, if it is one beside it."""
    try:
        tag = (path / _DEEPSPEED_LATEST).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    folder = path / tag
    return folder if tag and Path(tag).name == tag and folder.is_dir() else None


def _deepspeed_complete(path: Path) -> bool:
    """A DeepSpeed checkpoint: ``latest`` names a folder beside it holding the optimizer states of ranks
    0..n-1 (every ZeRO rank writes its own share) and the model states (one file, or one per rank
    under ZeRO-3). A save cut off midway is told by trainer_state.json, which the Trainer writes only after
    DeepSpeed's closing barrier (every rank done); the ranks here catch shares lost after that."""
    folder = _deepspeed_tag(path)
    if folder is None:
        return False
    optim, model, whole_model = set(), set(), False
    for f in folder.iterdir():
        if m := _DEEPSPEED_OPTIM.match(f.name):
            optim.add(int(m.group(1)))
        elif m := _DEEPSPEED_MODEL.match(f.name):
            if m.group(1) is None:
                whole_model = True
            else:
                model.add(int(m.group(1)))
    ranks = set(range(len(optim)))
    return bool(optim) and optim == ranks and (whole_model or model == ranks)


def _read_state(path: Path) -> dict:
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def list_checkpoints(run_path: str | Path) -> list[Checkpoint]:
    """Every checkpoint-N folder of a run, by step, with the loss logged up to it."""
    run_path = Path(run_path)
    if not run_path.is_dir():
        return []
    found = []
    for child in run_path.iterdir():
        m = _CHECKPOINT.match(child.name)
        if m and child.is_dir() and not child.is_symlink():
            found.append(Checkpoint(step=int(m.group(1)), path=child, complete=_is_complete(child)))
    found.sort(key=lambda c: c.step)
    best_path = None
    for ckpt in found:
        state = _read_state(ckpt.path)
        best_path = state.get("best_model_checkpoint") or best_path
        for entry in state.get("log_history") or []:
            if not isinstance(entry, dict) or int(entry.get("step") or 0) > ckpt.step:
                continue
            if isinstance(entry.get("loss"), (int, float)):
                ckpt.loss = float(entry["loss"])
            if isinstance(entry.get("eval_loss"), (int, float)):
                ckpt.eval_loss = float(entry["eval_loss"])
    if best_path:
        for ckpt in found:
            ckpt.best = Path(best_path).name == ckpt.path.name
    else:
        # Without early stopping the Trainer keeps no best checkpoint: the lowest validation loss is it, once
        # there are two to choose between.
        evaluated = [c for c in found if c.eval_loss is not None]
        if len(evaluated) >= 2:
            min(evaluated, key=lambda c: (c.eval_loss, c.step)).best = True
    _mark_probe_scores(run_path, found)
    return found


def _mark_probe_scores(run_path: Path, found: list[Checkpoint]) -> None:
    """Each checkpoint's probe score (the round at its step, from the run's events) and the best by it."""
    if not found:
        return
    from engine.core.rundir import RunDir  # noqa: PLC0415 - engine.core.rundir imports this module

    scores = round_scores(RunDir(run_path).read_events())
    for ckpt in found:
        ckpt.probe_score = scores.get(ckpt.step)
    scored = {c.step: c.probe_score for c in found if c.probe_score is not None}
    best = best_round(scored) if len(scored) >= 2 else None  # as by loss: a best needs two to choose between
    if best is not None:
        next(c for c in found if c.step == best[0]).best_probe = True


def last_complete_checkpoint(run_path: str | Path) -> Checkpoint | None:
    complete = [c for c in list_checkpoints(run_path) if c.complete]
    return complete[-1] if complete else None


@dataclass
class ResumePlan:
    checkpoint: Checkpoint
    skipped: list[Checkpoint] = field(default_factory=list)        # later, incomplete checkpoints
    changes: list[tuple[str, object, object]] = field(default_factory=list)  # (field, before, now)
    conflicts: list[str] = field(default_factory=list)  # changed fields that make resuming impossible


def resume_plan(run_path: str | Path, cfg: RunConfig) -> ResumePlan | None:
    """What Start would resume in ``run_path`` with ``cfg``: None when there is nothing to resume."""
    run_path = Path(run_path)
    last = last_complete_checkpoint(run_path)
    if last is None:
        return None
    plan = ResumePlan(checkpoint=last,
                      skipped=[c for c in list_checkpoints(run_path) if not c.complete and c.step > last.step])
    try:
        before = RunConfig.load(run_path / "run.yaml", "train")
    except (OSError, ValueError):
        return plan
    old = {f"{s}.{f.name}": v for s, f, v in iter_fields(before) if s in COMMAND_SECTIONS["train"]}
    # A run.yaml written by hand says hub "auto"; the form names the hub that means here: the same setting.
    old["model.hub"] = resolve_hub(before.model.hub)
    for section, f, value in iter_fields(cfg):
        key = f"{section}.{f.name}"
        if key == "model.hub":
            value = resolve_hub(value)
        if key in old and old[key] != value and key != "train.output_dir":
            plan.changes.append((key, old[key], value))
            if key not in _RESUMABLE_CHANGES:
                plan.conflicts.append(key)
    ranks = deepspeed_ranks(last.path)
    if ranks and ranks != cfg.processes_per_node() * cfg.distributed.nnodes:
        # DeepSpeed loads each rank's share of a ZeRO optimizer state as it was split (its rigid layout):
        # the process count cannot change between the run and its resumption.
        plan.conflicts += [key for key, *_ in plan.changes if key in _PROCESS_COUNT and key not in plan.conflicts]
    return plan


def deepspeed_ranks(path: Path) -> int:
    """How many processes wrote a DeepSpeed checkpoint (0: not a DeepSpeed checkpoint)."""
    tag = _deepspeed_tag(path)
    if tag is None:
        return 0
    return len({m.group(1) for f in tag.iterdir() if (m := _DEEPSPEED_OPTIM.match(f.name))})
