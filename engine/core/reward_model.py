"""PPO's reward model: which folders may serve as one, checked the same way by Start and by the training job.

A reward model is a finished (or stopped) reward modeling run of the same base model, or one of its complete
checkpoints, inside a runs folder (saves/, or a login's workspaces/<user>/saves). The check reads the run's
``run.yaml``, so it is made when a PPO run starts, not when a config is read: a PPO run whose reward model was
deleted later still lists and reloads.
"""

from __future__ import annotations

from pathlib import Path

from engine.core.config import ConfigError, RunConfig
from engine.core.paths import PathError, resolve_user_dir, saves_dir, workspaces_dir

FIELD = "rlhf.reward_model"
_WEIGHTS = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json")


def _run_folder(folder: Path) -> Path:
    """The run a folder belongs to: itself, or the run holding it when it is a checkpoint-N folder."""
    return folder.parent if folder.name.startswith("checkpoint-") else folder


def reward_run_config(folder: str | Path) -> RunConfig | None:
    """The config of the reward modeling run ``folder`` is (or is a checkpoint of); None if it is none."""
    try:
        cfg = RunConfig.load(_run_folder(Path(folder)) / "run.yaml")
    except (OSError, ValueError):  # no run.yaml, or one that no longer reads: not a usable reward model
        return None
    return cfg if cfg.train.stage == "rm" else None


def _runs_roots() -> list[Path]:
    return [saves_dir(), *sorted(workspaces_dir().glob("*/saves"))]


def check_reward_model(cfg: RunConfig) -> Path:
    """``cfg.rlhf.reward_model`` resolved, or a ConfigError naming the field: empty, outside every runs folder, not
    a reward modeling run, trained on another base model, or without weights yet."""
    text = cfg.rlhf.reward_model.strip()
    if not text:
        raise ConfigError(FIELD, "ppo_needs_reward_model")
    try:
        folder = resolve_user_dir(text, "reward model", FIELD)
    except PathError:  # a NUL byte: not a folder of any run
        raise ConfigError(FIELD, "reward_model_not_rm", path=text) from None
    roots = _runs_roots()
    if not any(root in folder.parents for root in roots):  # resolved: a link leading out is refused too
        raise ConfigError(FIELD, "reward_model_outside_saves", path=text, roots=", ".join(map(str, roots)))
    rm_cfg = reward_run_config(folder)
    if rm_cfg is None:
        raise ConfigError(FIELD, "reward_model_not_rm", path=text)
    if rm_cfg.model.model_name_or_path != cfg.model.model_name_or_path:
        raise ConfigError(FIELD, "reward_model_other_base", path=text, base=rm_cfg.model.model_name_or_path,
                          model=cfg.model.model_name_or_path)
    if not (any((folder / name).is_file() for name in _WEIGHTS) or any(folder.glob("model-*.safetensors"))):
        raise ConfigError(FIELD, "reward_model_no_weights", path=text)
    return folder
