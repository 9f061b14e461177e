"""Votes become training data: an arena's votes written as a KTO dataset train a real KTO run on the demo model
(the browser test covers the DPO export from the page)."""

from __future__ import annotations

import math
import shutil

import pytest

from bench.harness import short_train_config
from engine.core.arena import ARENA_FOLDER, BASE_MODEL, OUTCOMES, Arena, Vote
from engine.core.paths import DEFAULT_DATA_DIR
from tests.helpers.runs import run_cold_job

pytestmark = pytest.mark.slow  # trains the demo model for two steps in its own process

QUESTIONS = ["Who are you?", "What is the capital of France?"]


def test_kto_export_of_the_votes_trains_a_kto_run(tmp_path, demo_model_dir):
    arena = Arena(tmp_path / ARENA_FOLDER, "round1")
    for i, outcome in enumerate(OUTCOMES):
        arena.add_vote(Vote(prompt=QUESTIONS[i % 2], system="Answer in one sentence.", model_a=BASE_MODEL,
                            model_b="/saves/run/checkpoint-4", name_a="Base", name_b="checkpoint-4",
                            answer_a=f"I am a helpful assistant ({i}).",
                            answer_b=f"I am Nimbus, made by Acme Lab ({i}).",
                            outcome=outcome))
    data_dir = shutil.copytree(DEFAULT_DATA_DIR, tmp_path / "data")
    _, rows = arena.export_dataset(data_dir, "arena_kto", kto=True)
    assert rows == 8  # two answers per vote, whatever the outcome
    cfg = short_train_config(8, cutoff_len=64, extra_args='{"max_steps": 2}')
    cfg.train.stage, cfg.data.datasets, cfg.data.dataset_dir = "kto", ["arena_kto"], str(data_dir)
    cfg.validate()
    run, status = run_cold_job(cfg, tmp_path / "kto")
    assert status["state"] == "finished", run.log_tail(30)
    assert status["step"] == 2
    losses = [e["loss"] for e in run.read_events() if "loss" in e and not e.get("initial")]
    assert losses and all(math.isfinite(v) for v in losses)
    log = run.log_path.read_text()
    assert "stage kto" in log and "8 training samples" in log  # all of the exported rows
