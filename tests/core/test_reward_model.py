"""PPO's reward model field: required, and only a reward modeling run (or checkpoint) of the same model inside a
runs folder; every refusal names the field."""

from __future__ import annotations

import pytest

from engine.core.config import ConfigError, RunConfig
from engine.core.reward_model import check_reward_model


def _run(saves, name: str, stage: str = "rm", model: str = "demo/SmolLM2-135M-Instruct", weights: bool = True):
    folder = saves / "SmolLM2-135M-Instruct" / "lora" / name
    folder.mkdir(parents=True)
    cfg = RunConfig()
    cfg.data.datasets = ["dpo_demo"]
    cfg.train.stage, cfg.model.model_name_or_path = stage, model
    cfg.save(folder / "run.yaml", "train")
    if weights:
        (folder / "adapter_model.safetensors").write_bytes(b"")
    return folder


def _ppo(reward_model: str) -> RunConfig:
    cfg = RunConfig()
    cfg.data.datasets, cfg.train.stage, cfg.rlhf.reward_model = ["identity"], "ppo", reward_model
    return cfg


@pytest.fixture
def saves(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEBOARD_SAVES", str(tmp_path / "saves"))
    monkeypatch.setenv("TUNEBOARD_WORKSPACES", str(tmp_path / "workspaces"))
    (tmp_path / "saves").mkdir()
    return tmp_path / "saves"


def _refusal(cfg: RunConfig) -> str:
    with pytest.raises(ConfigError) as info:
        check_reward_model(cfg)
    assert info.value.field_name == "rlhf.reward_model"
    return info.value.key


def test_ppo_without_a_reward_model_is_refused_naming_the_field():
    with pytest.raises(ConfigError, match=r"^rlhf\.reward_model: PPO needs a reward model"):
        _ppo("").validate()
    assert _refusal(_ppo("  ")) == "ppo_needs_reward_model"


def test_a_reward_run_or_its_checkpoint_is_accepted(saves):
    rm = _run(saves, "rm")
    assert check_reward_model(_ppo(str(rm))) == rm.resolve()
    ckpt = rm / "checkpoint-2"
    ckpt.mkdir()
    (ckpt / "adapter_model.safetensors").write_bytes(b"")
    assert check_reward_model(_ppo(str(ckpt))) == ckpt.resolve()


def test_other_folders_are_refused_with_the_reason(saves, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    assert _refusal(_ppo(str(outside))) == "reward_model_outside_saves"
    (saves / "link").symlink_to(outside)  # a link inside saves/ that leads out of it
    assert _refusal(_ppo(str(saves / "link"))) == "reward_model_outside_saves"
    assert _refusal(_ppo(str(_run(saves, "sft", stage="sft")))) == "reward_model_not_rm"
    assert _refusal(_ppo(str(saves / "missing"))) == "reward_model_not_rm"
    assert _refusal(_ppo(str(_run(saves, "other", model="Qwen/Qwen2.5-0.5B")))) == "reward_model_other_base"
    assert _refusal(_ppo(str(_run(saves, "running", weights=False)))) == "reward_model_no_weights"


def test_ppo_has_no_validation_split_and_runs_in_one_process():
    cfg = _ppo("saves/x")
    cfg.data.val_size = 0.1
    with pytest.raises(ConfigError, match=r"^data\.val_size: PPO has no validation loss"):
        cfg.validate()
    cfg.data.val_size, cfg.distributed.nproc_per_node = 0.0, 2
    with pytest.raises(ConfigError, match=r"^train\.stage: PPO runs in one process"):
        cfg.validate()
