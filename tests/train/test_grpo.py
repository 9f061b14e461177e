"""GRPO trains real steps on the demo model: completions sampled from the chat template's prompts, scored by the
picked rewards, the reward figures in events.jsonl beside the loss, checkpoints and probe answers as for any stage."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import yaml

from engine.core.rundir import FINISHED, RunDir
from tests.helpers.runs import ROOT, short_train_config

pytestmark = pytest.mark.slow


def test_grpo_trains_and_records_rewards(tmp_path, demo_model_dir):
    # 4 prompts x 2 completions, 4 completions a step: 2 steps, a checkpoint after the first.
    cfg = short_train_config(4, save_steps=1, stage="grpo", probe_questions="What is 2 + 3?",
                             probe_max_new_tokens=3)
    cfg.data.datasets = ["arithmetic_answer"]
    cfg.grpo.rewards = ["accuracy", "format", "length"]
    cfg.grpo.num_generations, cfg.grpo.max_completion_length, cfg.grpo.length_target = 2, 6, 4
    cfg.validate()
    run = RunDir(tmp_path / "grpo")
    run.path.mkdir()
    cfg.train.output_dir = str(run.path)
    cfg.save(run.config_path, "train")
    with open(run.log_path, "wb") as log:
        subprocess.run([sys.executable, "-m", "engine", "train", str(run.config_path)], cwd=ROOT, stdout=log,
                       stderr=subprocess.STDOUT, timeout=600, check=False)
    status = run.read_status()
    assert status["state"] == FINISHED, run.log_tail(40)
    assert status["step"] == status["total_steps"] == 2
    assert "stage grpo" in run.log_path.read_text()
    points = [e for e in run.read_events() if "loss" in e]
    assert [e["step"] for e in points] == [1, 2]
    for point in points:
        for key in ("reward", "reward_std", "reward_accuracy", "reward_format", "reward_length", "completion_length"):
            assert math.isfinite(point[key]), (key, point)
        assert 0.0 <= point["reward_length"] <= 1.0 and 0 < point["completion_length"] <= 6
    assert [e["step"] for e in run.read_events() if "probes" in e] == [0, 1, 2]  # probes keep working
    assert (run.path / "checkpoint-1" / "adapter_model.safetensors").is_file()
    assert (run.path / "adapter_model.safetensors").is_file()
    assert yaml.safe_load(run.config_path.read_text())["grpo"]["num_generations"] == 2
