"""Votes become training data: an arena's votes written as a KTO dataset train a real KTO run on the demo model
(the browser test covers the DPO export from the page); the arena benchmark runs a round on that run's adapter."""

from __future__ import annotations

import math
import shutil

import pytest

from bench.arena_round import bench_arena
from bench.harness import short_train_config
from engine.core.arena import ARENA_FOLDER, BASE_MODEL, OUTCOMES, Arena, Vote
from engine.core.paths import DEFAULT_DATA_DIR
from tests.helpers.runs import run_cold_job

pytestmark = pytest.mark.slow  # trains the demo model for two steps in its own process, then chats with it

QUESTIONS = ["Who are you?", "What is the capital of France?"]


@pytest.fixture(scope="module")
def kto_run(tmp_path_factory, demo_model_dir):
    """A KTO run trained on an arena's KTO export: (the run, its final status)."""
    tmp_path = tmp_path_factory.mktemp("arena")
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
    return run_cold_job(cfg, tmp_path / "kto")


def test_kto_export_of_the_votes_trains_a_kto_run(kto_run):
    run, status = kto_run
    assert status["state"] == "finished", run.log_tail(30)
    assert status["step"] == 2
    losses = [e["loss"] for e in run.read_events() if "loss" in e and not e.get("initial")]
    assert losses and all(math.isfinite(v) for v in losses)
    log = run.log_path.read_text()
    assert "stage kto" in log and "8 training samples" in log  # all of the exported rows


def test_the_arena_benchmark_runs_a_round_against_a_plain_answer(kto_run):
    """bench/arena_round.py on the trained adapter, one short round: its figures are there and consistent."""
    run, _ = kto_run
    out = bench_arena(1, str(run.path), max_new_tokens=4)
    # Counted by tokenizing the answers again: a token or two more than generated is possible.
    assert len(out["round_tokens"]) == 2 and 0 < max(out["round_tokens"]) <= 8 and 0 < out["plain_tokens"] <= 8
    assert out["round_s"] > 0 and out["plain_s"] > 0
    assert out["ratio"] == pytest.approx(out["round_s"] / out["plain_s"], rel=0.01)
