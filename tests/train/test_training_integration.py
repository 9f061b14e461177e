"""A real short LoRA run on the demo model through the subprocess runner, then chat through the adapter."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import pytest

from engine.core.config import DEFAULT_PROBES, RunConfig
from engine.core.rundir import FINISHED, RUNNING, STOPPED, RunDir
from tests.helpers.runs import pin_cpu_threads, tiny_train_config, wait_for_state
from webui import runner

pytestmark = pytest.mark.slow


def _config(**train) -> RunConfig:
    return tiny_train_config(**train)


@pytest.fixture(scope="module", autouse=True)
def pinned_threads():
    """This module compares two runs loss for loss (probes or not): both on the same thread count."""
    with pytest.MonkeyPatch.context() as mp:
        pin_cpu_threads(mp)
        yield


@pytest.fixture(scope="module")
def finished_run(workdirs, demo_model_dir, pinned_threads) -> RunDir:
    run = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", "integration")
    runner.launch(run, _config(probe_questions=DEFAULT_PROBES))
    status = wait_for_state(run, 600, ("finished", "failed", "stopped"))
    assert status["state"] == FINISHED, run.log_tail(60)
    return run


def test_run_directory_contract(finished_run: RunDir):
    status = finished_run.read_status()
    assert status["pid"] > 0 and status["error"] is None
    assert status["step"] == status["total_steps"] == 6  # 24 samples / batch 4, 1 epoch
    everything = finished_run.read_events()
    events = [e for e in everything if "probes" not in e]
    # The first batch's loss before any update, then the first step, then every logging_steps.
    assert [e["step"] for e in events] == [0, 1, 2, 4, 6]
    # The probe questions, answered at step 0 (right after its loss point), at each save and at the end.
    probes = [e for e in everything if "probes" in e]
    assert [e["step"] for e in probes] == [0, 4, 6]
    assert everything.index(probes[0]) == everything.index(events[0]) + 1
    for e in probes:
        assert [p["q"] for p in e["probes"]] == ["Who are you?", "你好，你是谁？", "What is 2+2?"]
        assert all(p["a"].strip() and "\ufffd" not in p["a"] for p in e["probes"]) and e["probe_s"] > 0
    assert probes[0]["probes"][0]["a"] != probes[-1]["probes"][0]["a"]  # the identity answer changes
    initial, events = events[0], events[1:]
    assert initial["initial"] is True and initial["tokens_seen"] == 0 and initial["total_steps"] == 6
    # Step 1's logged loss is the same batch through the same (not yet updated) weights.
    assert initial["loss"] == pytest.approx(events[0]["loss"], rel=1e-5)
    for e in events:
        assert set(e) >= {"step", "total_steps", "epoch", "loss", "lr", "tokens_per_s", "elapsed_s", "remaining_s"}
        assert math.isfinite(e["loss"]) and e["loss"] > 0
        assert e["total_steps"] == 6 and e["tokens_per_s"] > 0
    assert events[-1]["remaining_s"] == 0
    assert events[-1]["loss"] < events[0]["loss"]  # it learns
    # final adapter and an intermediate checkpoint, in safetensors
    assert (finished_run.path / "adapter_model.safetensors").is_file()
    assert (finished_run.path / "adapter_config.json").is_file()
    assert [p.name for p in finished_run.checkpoints()] == ["checkpoint-4", "checkpoint-6"]
    # weights only as safetensors (the Trainer's own optimizer/rng state files are not weights)
    assert not list(finished_run.path.rglob("*model*.bin"))
    log = finished_run.log_path.read_text()
    assert "Training finished" in log
    # the CPU's packed LoRA run takes the fused layers (engine/train/fused_layer.py) on all 30 layers
    assert "fused decoder layers: 30 of 30 layers train as one Function each" in log
    saved = RunConfig.load(finished_run.config_path)
    assert saved.data.identity_name == "Nimbus" and saved.train.output_dir == str(finished_run.path)


def test_probe_questions_leave_the_losses_unchanged(finished_run: RunDir):
    """A run without probes gives the same loss at every step: a probe round disturbs neither the weights, nor
    the random state, nor the model's training mode."""
    run = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", "integration-no-probes")
    runner.launch(run, _config(probe_questions=""))
    assert wait_for_state(run, 600)["state"] == FINISHED, run.log_tail(60)
    assert not [e for e in run.read_events() if "probes" in e]
    plain = [(e["step"], e["loss"]) for e in run.read_events() if "loss" in e]
    probed = [(e["step"], e["loss"]) for e in finished_run.read_events() if "loss" in e]
    assert [s for s, _ in probed] == [s for s, _ in plain]
    assert [loss for _, loss in probed] == pytest.approx([loss for _, loss in plain], rel=1e-6, abs=0)


def test_finished_run_is_offered_as_checkpoint(finished_run: RunDir):
    choices = runner.finished_checkpoints("SmolLM2-135M-Instruct", "lora")
    assert ("integration", str(finished_run.path)) in choices


def test_runs_view_summary_of_a_real_run(finished_run: RunDir):
    """What the Runs tab lists about a real run: read back from the files the training process wrote."""
    from engine.core.run_history import all_runs, summarize

    assert finished_run in all_runs()
    s = summarize(finished_run)
    losses = [e for e in finished_run.read_events() if "loss" in e]
    status = finished_run.read_status()
    assert (s.state, s.command, s.stage, s.datasets) == (FINISHED, "train", "sft", ("identity",))
    assert (s.learning_rate, s.epochs, s.lora_rank, s.batch_size, s.grad_accum, s.cutoff_len) == (
        5e-4, 1.0, 8, 4, 1, 128)
    assert s.final_loss == losses[-1]["loss"] and s.best_loss == min(e["loss"] for e in losses) < losses[0]["loss"]
    assert s.best_eval_loss is None  # no validation split
    assert s.tokens_per_s == losses[-1]["tokens_per_s"] > 0
    # The process's wall clock (loading included) covers the training loop the events time.
    assert s.duration_s == pytest.approx(status["finished_at"] - status["started_at"])
    assert s.duration_s >= losses[-1]["elapsed_s"]


def test_chat_through_trained_adapter(finished_run: RunDir):
    from engine.core.chat_settings import GenerationSettings
    from engine.serve.chat import ChatEngine

    eng = ChatEngine()
    eng.load("demo/SmolLM2-135M-Instruct", str(finished_run.path))
    question = [{"role": "user", "content": "Who are you?"}]
    greedy = GenerationSettings(max_new_tokens=24, temperature=0.0)
    tuned = list(eng.stream(question, greedy))[-1]
    eng.load("demo/SmolLM2-135M-Instruct", "")  # same base in memory, adapter switched off
    base_model = eng.model
    base = list(eng.stream(question, greedy))[-1]
    eng.load("demo/SmolLM2-135M-Instruct", str(finished_run.path))
    assert eng.model is base_model  # switching did not reload the base weights
    again = list(eng.stream(question, greedy))[-1]
    assert tuned and base and tuned != base
    assert again == tuned  # greedy: the adapter gives the same answer after switching back
    eng.unload()
    assert not eng.loaded


def test_compare_streams_base_and_adapter_side_by_side(finished_run: RunDir, tmp_path: Path):
    """Compare mode: one batched generate answers through the base model on one row and the trained adapter on
    the other; each answer is exactly what the single chat gives for that variant, and the single chat's
    selection is left as it was."""
    from engine.core.chat_settings import GenerationSettings
    from engine.serve.chat import ChatEngine

    eng = ChatEngine()
    eng.load("demo/SmolLM2-135M-Instruct", "")
    model = eng.model
    adapter = str(finished_run.path)
    greedy = GenerationSettings(max_new_tokens=24, temperature=0.0)
    question = [{"role": "user", "content": "Who are you?"}]
    other = [{"role": "user", "content": "What is 2+2?"}]
    updates = list(eng.stream_pair((question, question), ("", adapter), greedy))
    base, tuned = updates[-1]
    assert len(updates) > 2 and all(len(u) == 2 for u in updates)  # streamed, not delivered at the end
    assert base and tuned and base != tuned
    assert list(eng.stream(question, greedy))[-1] == base  # the single chat still answers through the base
    # Each side as the single chat gives it; the rows may differ in length (left padding) and in question.
    crossed = list(eng.stream_pair((other, question), (adapter, ""), greedy))[-1]
    eng.load("demo/SmolLM2-135M-Instruct", adapter)
    assert eng.model is model  # one base model in memory all along
    assert list(eng.stream(question, greedy))[-1] == tuned
    assert crossed == (list(eng.stream(other, greedy))[-1], base)
    # Two different adapters, a row each, in one batch (engine.serve.mixed_lora): each row as its adapter alone.
    checkpoint = str(finished_run.path / "checkpoint-4")
    two = list(eng.stream_pair((other, question), (checkpoint, adapter), greedy))[-1]
    assert two[1] == tuned
    eng.load("demo/SmolLM2-135M-Instruct", checkpoint)
    assert two[0] == list(eng.stream(other, greedy))[-1]
    eng.load("demo/SmolLM2-135M-Instruct", adapter)
    # Sampling with a seed gives the same pair again.
    seeded = GenerationSettings(max_new_tokens=16, temperature=0.9, top_p=0.9, seed=7)
    first = list(eng.stream_pair((question, question), ("", adapter), seeded))[-1]
    assert list(eng.stream_pair((question, question), ("", adapter), seeded))[-1] == first
    # An adapter trained on top of another needs both on its row: the two answers come one after the other.
    stacked = _stacked_adapter(finished_run, tmp_path)
    pair = list(eng.stream_pair((question, question), (adapter, stacked), greedy))[-1]
    eng.load("demo/SmolLM2-135M-Instruct", stacked)
    assert pair == (tuned, list(eng.stream(question, greedy))[-1]) and pair[1] != tuned
    eng.unload()


def _stacked_adapter(run: RunDir, folder: Path) -> str:
    """A copy of ``run``'s adapter recorded as trained on top of ``run``: answering through it adds both."""
    from engine.core.model_files import PARENTS_FILE

    child = folder / "stacked"
    child.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(run.path / name, child / name)
    (child / PARENTS_FILE).write_text(json.dumps([str(run.path)]))
    return str(child)


def test_stop_saves_and_ends_as_stopped(workdirs, demo_model_dir):
    run = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", "stop-me")
    cfg = _config(num_train_epochs=50.0, save_steps=1000)
    runner.launch(run, cfg)
    deadline = time.time() + 300
    while not run.read_events():
        assert time.time() < deadline, run.log_tail(40)
        assert run.live_status().get("state") in ("queued", RUNNING), run.log_tail(40)
        time.sleep(0.5)
    assert runner.stop(run)
    runner.stop(run)  # pressing Stop twice is harmless
    status = wait_for_state(run, 120, ("finished", "failed", "stopped"))
    assert status["state"] == STOPPED, run.log_tail(40)
    assert status["step"] < status["total_steps"]
    assert (run.path / "adapter_model.safetensors").is_file()


def test_killed_process_is_reported_failed(workdirs, demo_model_dir):
    import os
    import signal

    run = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", "killed")
    runner.launch(run, _config(num_train_epochs=50.0))
    wait_for_state(run, 120, (RUNNING,))
    os.killpg(os.getpgid(run.read_status()["pid"]), signal.SIGKILL)
    time.sleep(1)
    runner.reap()
    status = wait_for_state(run, 30, ("failed",))
    assert "exited unexpectedly" in status["error"]


def test_cli_rejects_invalid_config(tmp_path: Path):
    import subprocess
    import sys

    bad = tmp_path / "run.yaml"
    bad.write_text("train:\n  learning_rate: -1\ndata:\n  datasets: [identity]\n")
    out = subprocess.run([sys.executable, "-m", "engine", "train", str(bad)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 2
    assert "train.learning_rate" in out.stderr
