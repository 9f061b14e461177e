"""The PPO stage: its math against hand-computed values, and a real reward model then PPO on top of it on CPU."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest
import torch

from engine.core.chat_settings import GenerationSettings
from engine.core.checkpoints import list_checkpoints
from engine.core.config import RunConfig
from engine.core.rundir import FINISHED, RunDir
from engine.serve.chat import ChatEngine
from engine.train.ppo import VALUE_HEAD_FILE, RunningMoments, gae, masked_whiten, ppo_rows
from tests.helpers.runs import ROOT, tiny_train_config
from webui import runner

# -- the math, by hand ----------------------------------------------------------------------------------------


def test_gae_matches_hand_computed_values():
    # One answer of three tokens and one of two (the third position is padding).
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.5, -1.0, 9.0]])
    values = torch.tensor([[0.5, 0.25, 0.0], [0.0, 1.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # Row 0: deltas d2 = 1 - 0 = 1, d1 = 0 + 0 - 0.25 = -0.25, d0 = 0 + 0.25 - 0.5 = -0.25;
    # A2 = 1, A1 = -0.25 + 0.5 * 1 = 0.25, A0 = -0.25 + 0.5 * 0.25 = -0.125.
    # Row 1 ends after two tokens (the value after the last one is 0): d1 = -1 - 1 = -2, d0 = 0.5 + 1 - 0 = 1.5;
    # A1 = -2, A0 = 1.5 + 0.5 * -2 = 0.5; the padding position stays 0.
    assert adv.tolist() == [[-0.125, 0.25, 1.0], [0.5, -2.0, 0.0]]
    assert ret.tolist() == [[0.375, 0.5, 1.0], [0.5, -1.0, 0.0]]


def test_whitening_by_hand():
    x = torch.tensor([[1.0, 3.0, 100.0], [5.0, 7.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    # Kept: 1, 3, 5, 7: mean 4, population variance (9 + 1 + 1 + 9) / 4 = 5.
    s = math.sqrt(5)
    centred = masked_whiten(x, mask)
    assert torch.allclose(centred, torch.tensor([[-3 / s, -1 / s, 0.0], [1 / s, 3 / s, 0.0]]), atol=1e-6)
    kept_mean = masked_whiten(x, mask, shift_mean=False)  # rewards keep their mean, only their scale changes
    assert torch.allclose(kept_mean, torch.tensor([[4 - 3 / s, 4 - 1 / s, 0.0], [4 + 1 / s, 4 + 3 / s, 0.0]]),
                          atol=1e-6)


def test_running_moments_are_those_of_all_scores_seen():
    moments = RunningMoments()
    moments.update(torch.tensor([1.0, 3.0]))
    moments.update(torch.tensor([5.0, 7.0, 9.0]))
    assert moments.count == 5 and moments.mean == pytest.approx(5.0) and moments.var == pytest.approx(8.0)
    assert moments.normalise(torch.tensor([5.0 + math.sqrt(8)])).item() == pytest.approx(1.0)
    again = RunningMoments()
    again.load(moments.state())  # saved beside the value head, read back on resume
    assert (again.count, again.mean, again.var) == pytest.approx((5, 5.0, 8.0))


def test_each_step_of_prompts_comes_ppo_epochs_times_in_a_row():
    rows = [{"prompt_ids": [i]} for i in range(5)]
    laid = ppo_rows(rows, batch=2, accumulation=2, ppo_epochs=2)
    # Steps of 4 prompts: 0-3 twice, then 4 and the first three again (filled up) twice; a rollout per micro-batch.
    assert [r["prompt_ids"][0] for r in laid] == [0, 1, 2, 3] * 2 + [4, 0, 1, 2] * 2
    assert [r["rollout"] for r in laid] == [0, 0, 1, 1] * 2 + [2, 2, 3, 3] * 2


# -- a reward model, then PPO on top of it -------------------------------------------------------------------


@pytest.fixture(scope="module")
def reward_run(workdirs, demo_model_dir) -> RunDir:
    """A demo reward model trained for one step, as the RM stage saves it under saves/."""
    cfg = tiny_train_config()
    cfg.train.stage, cfg.data.datasets, cfg.data.max_samples = "rm", ["dpo_demo"], 4
    cfg.train.save_steps = 100
    run = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", "ppo-reward")
    run.path.mkdir(parents=True)
    cfg.train.output_dir = str(run.path)
    cfg.save(run.config_path, "train")
    assert runner_train(run) == FINISHED, run.log_tail(40)
    return run


def runner_train(run: RunDir) -> str:
    """Train ``run`` in a subprocess as the command line does; its final state."""
    with open(run.log_path, "ab") as out:
        subprocess.run([sys.executable, "-m", "engine", "train", str(run.config_path)], cwd=ROOT, stdout=out,
                       stderr=subprocess.STDOUT, timeout=600, check=False)
    return run.read_status().get("state")


def ppo_config(reward_model: str) -> RunConfig:
    cfg = tiny_train_config(per_device_train_batch_size=2, logging_steps=1, save_steps=1)
    cfg.data.max_samples, cfg.train.stage = 2, "ppo"
    cfg.rlhf.reward_model, cfg.rlhf.ppo_epochs, cfg.rlhf.ppo_max_new_tokens = reward_model, 2, 8
    cfg.rlhf.ppo_score_norm = cfg.rlhf.ppo_whiten_rewards = True
    cfg.train.probe_questions, cfg.train.probe_max_new_tokens = "Who are you?", 4
    cfg.validate()
    return cfg


@pytest.mark.slow
def test_ppo_trains_on_the_reward_model_and_chat_loads_it(reward_run: RunDir):
    run = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", "ppo")
    run.path.mkdir(parents=True)
    cfg = ppo_config(str(reward_run.path))
    cfg.train.output_dir = str(run.path)
    cfg.save(run.config_path, "train")
    assert runner_train(run) == FINISHED, run.log_tail(40)
    status = run.read_status()
    # 2 prompts in one batch, its answers trained on twice: 2 optimizer steps.
    assert status["step"] == status["total_steps"] == 2
    events = run.read_events()
    points = [e for e in events if "loss" in e]
    assert [e["step"] for e in points] == [1, 2]
    assert all(math.isfinite(e["loss"]) for e in points)
    # The rollout's reward and KL come with the step that sampled it; at step 1 the policy is the reference.
    assert math.isfinite(points[0]["reward"]) and points[0]["kl"] == 0.0 and "reward" not in points[1]
    assert any("probes" in e for e in events)
    log = run.log_path.read_text()
    assert f"reward model: {reward_run.path}" in log and "stage ppo" in log
    ckpts = list_checkpoints(run.path)
    assert [c.step for c in ckpts] == [1, 2] and all(c.complete for c in ckpts)
    assert (ckpts[0].path / VALUE_HEAD_FILE).is_file()
    # The result is a plain causal-LM LoRA adapter: the checkpoint dropdown offers it and Chat answers through it.
    assert json.loads((run.path / "adapter_config.json").read_text())["task_type"] == "CAUSAL_LM"
    assert str(run.path) in [p for _, p in runner.finished_checkpoints("SmolLM2-135M-Instruct", "lora")]
    # Resume from the first checkpoint (weights, value head, score moments, optimizer) in a new folder.
    resumed = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", "ppo-resumed")
    resumed.path.mkdir(parents=True)
    shutil.copytree(ckpts[0].path, resumed.path / ckpts[0].path.name)
    cfg.train.output_dir = str(resumed.path)
    cfg.save(resumed.config_path, "train")
    assert runner_train(resumed) == FINISHED, resumed.log_tail(40)
    assert "resuming from checkpoint-1" in resumed.log_path.read_text()
    assert [e["step"] for e in resumed.read_events() if "loss" in e] == [2]
    eng = ChatEngine()
    eng.load("demo/SmolLM2-135M-Instruct", str(ckpts[-1].path))
    answer = list(eng.stream([{"role": "user", "content": "Who are you?"}],
                             GenerationSettings(max_new_tokens=8, temperature=0.0)))[-1]
    eng.unload()
    assert answer
