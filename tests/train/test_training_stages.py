"""Every training stage, resume, early stopping and multi-process runs: real steps on the demo model."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from engine.core.checkpoints import last_complete_checkpoint, list_checkpoints, resume_plan
from engine.core.config import RunConfig
from engine.core.rundir import FAILED, FINISHED, STOPPED, RunDir
from tests.helpers.runs import ROOT, tiny_train_config, wait_for_state
from webui import runner

pytestmark = pytest.mark.slow

STAGE_DATA = {"pt": "pt_demo", "sft": "identity", "rm": "dpo_demo", "dpo": "dpo_demo", "orpo": "dpo_demo",
              "kto": "kto_demo"}


def _config(stage: str = "sft", **train) -> RunConfig:
    cfg = tiny_train_config(**train)
    cfg.train.stage = stage
    cfg.data.datasets = [STAGE_DATA[stage]]
    cfg.data.max_samples = 16
    return cfg


def _run(cfg: RunConfig, run_dir: Path, timeout: float = 600, env: dict | None = None) -> RunDir:
    """Train in a subprocess exactly as the CLI does; returns the run directory."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.train.output_dir = str(run_dir)
    cfg.save(run_dir / "run.yaml", "train")
    with open(run_dir / "stdout.log", "ab") as out:
        subprocess.run([sys.executable, "-m", "engine", "train", str(run_dir / "run.yaml")], cwd=ROOT, stdout=out,
                       stderr=subprocess.STDOUT, timeout=timeout, check=False, env=env)
    return RunDir(run_dir)


def _losses(run: RunDir, key: str = "loss") -> dict[int, float]:
    return {e["step"]: e[key] for e in run.read_events() if key in e}


# -- each stage --------------------------------------------------------------------------------

@pytest.mark.parametrize("stage", ["pt", "rm", "orpo", "kto"])
def test_stage_trains_real_steps(stage, tmp_path, demo_model_dir):
    cfg = _config(stage)
    cfg.data.packing = stage == "pt"  # pre-training text is usually packed
    run = _run(cfg, tmp_path / stage)
    status = run.read_status()
    assert status["state"] == FINISHED, run.log_tail(40)
    assert status["step"] == status["total_steps"] > 0
    losses = _losses(run)
    assert losses and all(math.isfinite(v) for v in losses.values())
    weights = "adapter_model.safetensors"
    assert (run.path / weights).is_file()
    assert f"stage {stage}" in run.log_path.read_text()
    if stage == "pt":
        # Packed rows carry no padding, except (bf16 on CPU) a tail rounding each row up to a multiple of tokens.
        from engine.core.devices import batch_width_multiple, resolve_compute_type

        multiple = batch_width_multiple("cpu", resolve_compute_type("auto", "cpu"))
        share, real = status["metrics"]["padding_share"], status["metrics"]["num_input_tokens_seen"]
        assert share == 0.0 if multiple == 1 else 0 < real / (1 - share) - real < multiple * status["step"]
        assert "attention runs sample by sample" in run.log_path.read_text()
    if stage == "rm":  # the reward head is trained in full and saved with the adapter
        assert "score" in json.loads((run.path / "adapter_config.json").read_text())["modules_to_save"]


def test_dpo_loss_falls_and_sft_mixin(tmp_path, demo_model_dir):
    cfg = _config("dpo", logging_steps=1)
    cfg.rlhf.ftx = 0.5
    run = _run(cfg, tmp_path / "dpo")
    assert run.read_status()["state"] == FINISHED, run.log_tail(40)
    losses = _losses(run)
    steps = sorted(losses)
    # At step 1 policy and reference are the same model: the sigmoid DPO loss is ln 2, plus the SFT term.
    assert losses[steps[0]] > math.log(2)
    assert losses[steps[-1]] < losses[steps[0]] - 0.05, losses
    text = run.log_path.read_text()
    assert "stage dpo" in text


def test_packed_batch_gives_the_padded_batch_loss(demo_model_dir):
    """Packing keeps attention inside each sample: the same rows, packed into one row or padded, give the
    same loss. (Were attention to cross samples, the second sample's loss would change.)"""
    import torch

    from engine.core.data import load_samples
    from engine.core.encode import encode_samples
    from engine.modeling.models import load_model, load_tokenizer
    from engine.train.collators import PackingCollator, PaddingCollator

    cfg = _config("sft")
    tokenizer = load_tokenizer(cfg.model.model_name_or_path)
    samples = load_samples(ROOT / "assets" / "data", ["identity", "general_mix"], 3, {"name": "N", "author": "A"})
    rows = encode_samples(cfg, tokenizer, samples)[:4]
    model = load_model(cfg.model.model_name_or_path).eval()
    model.config.use_cache = False  # as in training: with a cache transformers does not look for packed rows
    with torch.no_grad():
        padded = model(**PaddingCollator(tokenizer.pad_token_id)(rows)).loss
        packed_batch = PackingCollator(tokenizer.pad_token_id)(rows)
        assert packed_batch["input_ids"].shape[0] == 1 and "attention_mask" not in packed_batch
        packed = model(**packed_batch).loss
    assert float(packed) == pytest.approx(float(padded), rel=1e-4)


# -- failures that need a clear message ------------------------------------------------------

def test_qlora_on_cpu_is_refused_with_a_message(tmp_path, demo_model_dir):
    cfg = _config("sft")
    cfg.model.quantization_bit = "4"
    run = _run(cfg, tmp_path / "qlora", timeout=300)
    status = run.read_status()
    assert status["state"] == FAILED
    assert "model.quantization_bit" in status["error"] and "CUDA GPU" in status["error"]


def test_missing_tracker_is_refused_with_a_message(tmp_path, demo_model_dir):
    cfg = _config("sft", report_to="wandb")
    status = _run(cfg, tmp_path / "wandb", timeout=300).read_status()
    assert status["state"] == FAILED and "train.report_to" in status["error"]


def test_dpo_on_data_without_pairs_names_the_dataset(tmp_path, demo_model_dir):
    cfg = _config("dpo")
    cfg.data.datasets = ["identity"]
    status = _run(cfg, tmp_path / "nopairs", timeout=300).read_status()
    assert status["state"] == FAILED and "identity" in status["error"] and "ranking" in status["error"]


# -- resume -----------------------------------------------------------------------------------

def test_resume_continues_from_last_complete_checkpoint(tmp_path, demo_model_dir):
    cfg = _config("sft", save_steps=2, logging_steps=1)
    full = _run(cfg, tmp_path / "full")
    assert full.read_status()["state"] == FINISHED, full.log_tail(40)
    reference = _losses(full)
    total = full.read_status()["total_steps"]
    assert total == 4

    # The same run, as if killed during step 3's save: checkpoint-2 complete, checkpoint-3 half written.
    part = tmp_path / "part"
    shutil.copytree(full.path, part)
    for name in ("checkpoint-4", "adapter_model.safetensors"):
        target = part / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    half = part / "checkpoint-3"
    half.mkdir()
    shutil.copy(part / "checkpoint-2" / "adapter_model.safetensors", half)  # weights but no optimizer/state
    assert [c.step for c in list_checkpoints(part) if not c.complete] == [3]
    assert last_complete_checkpoint(part).step == 2

    plan = resume_plan(part, cfg)
    assert plan.checkpoint.step == 2 and [c.step for c in plan.skipped] == [3] and not plan.conflicts
    changed = _config("sft", save_steps=2, logging_steps=1, learning_rate=1e-4)
    changed_plan = resume_plan(part, changed)
    assert ("train.learning_rate", 5e-4, 1e-4) in changed_plan.changes and not changed_plan.conflicts
    other = _config("sft", save_steps=2, logging_steps=1)
    other.lora.rank = 4
    assert resume_plan(part, other).conflicts == ["lora.rank"]

    resumed = _run(cfg, part)
    status = resumed.read_status()
    assert status["state"] == FINISHED and status["resumed_from"] == "checkpoint-2", resumed.log_tail(40)
    assert status["step"] == total
    assert "resuming from checkpoint-2 (step 2)" in resumed.log_path.read_text()
    after = _losses(resumed)
    assert sorted(after) == sorted(reference)  # no step logged twice
    # Optimizer, scheduler and RNG state carried over: the resumed steps reproduce the uninterrupted run.
    for step in (3, 4):
        assert after[step] == pytest.approx(reference[step], rel=2e-3), (after, reference)


# -- early stopping ---------------------------------------------------------------------------

def test_early_stopping_keeps_the_best_checkpoint(tmp_path, demo_model_dir):
    # A learning rate far too high makes the validation loss worse after the first update.
    cfg = _config("sft", learning_rate=0.05, save_steps=1, logging_steps=1, lr_scheduler_type="constant",
                  num_train_epochs=3.0)
    cfg.data.val_size, cfg.train.early_stopping_patience = 0.25, 1
    cfg.validate()
    run = _run(cfg, tmp_path / "early")
    status = run.read_status()
    assert status["state"] == FINISHED, run.log_tail(40)
    assert status["stopped_early"] is True and status["step"] < status["total_steps"]
    eval_losses = _losses(run, "eval_loss")
    best_step = min(eval_losses, key=eval_losses.get)
    assert status["best_checkpoint"] == f"checkpoint-{best_step}"
    marked = [c for c in list_checkpoints(run.path) if c.best]
    assert [c.step for c in marked] == [best_step] and marked[0].complete
    assert "Early stopping" in run.log_path.read_text()


# -- several processes --------------------------------------------------------------------------

def _ddp_pair(tmp_path: Path, port: int) -> tuple[RunConfig, RunConfig]:
    """A single-process run and a 2-process run that see the same samples per optimizer step."""
    single = _config("sft", per_device_train_batch_size=2, gradient_accumulation_steps=2, logging_steps=1)
    ddp = _config("sft", per_device_train_batch_size=2, gradient_accumulation_steps=1, logging_steps=1)
    ddp.distributed.nproc_per_node, ddp.distributed.master_port = 2, port
    return single, ddp


def test_torchrun_two_gloo_processes_match_one(tmp_path, workdirs, demo_model_dir):
    single_cfg, ddp_cfg = _ddp_pair(tmp_path, 29617)
    # The answer-only loss is off under torchrun; compare with the standard loss alone.
    import os

    single = _run(single_cfg, tmp_path / "single", env={**os.environ, "TUNEBOARD_FAST_LOSS": "0"})
    assert single.read_status()["state"] == FINISHED

    run = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", "ddp-two")
    preview = runner.command_preview(run, ddp_cfg)
    assert "torch.distributed.run" in preview and "--nproc_per_node 2" in preview
    assert "MASTER_PORT=29617" in preview and "NNODES=1" in preview
    runner.launch(run, ddp_cfg)
    launcher_pid = run.read_status()["pid"]
    status = wait_for_state(run, 600, (FINISHED, FAILED, STOPPED))
    assert status["state"] == FINISHED, run.log_tail(60)
    assert status["pid"] == launcher_pid  # the launcher is what the UI watches
    text = run.log_path.read_text()
    assert "2 processes" in text
    assert text.count("Training finished.") == 1  # rank 0 alone reports
    ours, reference = _losses(run), _losses(single)
    assert sorted(ours) == sorted(reference)  # one events file, each step once
    for step, loss in reference.items():
        assert ours[step] == pytest.approx(loss, rel=5e-3), (ours, reference)
    assert [p.name for p in run.checkpoints()] == ["checkpoint-4"]
    assert (run.path / "adapter_model.safetensors").is_file()


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _longer_ddp(port: int) -> RunConfig:
    cfg = _config("sft", per_device_train_batch_size=1, gradient_accumulation_steps=1, logging_steps=1,
                  num_train_epochs=4.0, save_steps=1000)
    cfg.distributed.nproc_per_node, cfg.distributed.master_port = 2, port
    return cfg


def test_stop_ends_every_rank_with_weights_saved(workdirs, demo_model_dir):
    run = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", "ddp-stop")
    runner.launch(run, _longer_ddp(29619))
    deadline = time.time() + 300
    while not run.read_events() and time.time() < deadline:
        time.sleep(0.5)
    assert run.read_events(), run.log_tail(40)
    pid = run.read_status()["pid"]
    ranks = _children(pid)
    assert runner.stop(run) and runner.stop(run) is not None  # pressing twice is harmless
    status = wait_for_state(run, 300, (FINISHED, FAILED, STOPPED))
    assert status["state"] == STOPPED, run.log_tail(40)
    assert status["step"] < status["total_steps"]
    assert (run.path / "adapter_model.safetensors").is_file()
    psutil.wait_procs(ranks, timeout=30)
    assert not [p for p in ranks if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def _training_workers(run: RunDir) -> tuple[int, list[psutil.Process]]:
    """Once the run has logged a step: the torchrun launcher's pid and its two worker processes."""
    deadline = time.time() + 300
    while not run.read_events() and time.time() < deadline:
        time.sleep(0.5)
    pid = run.read_status()["pid"]
    workers = [p for p in _children(pid) if "engine" in " ".join(p.cmdline())]
    assert len(workers) == 2, [p.cmdline() for p in workers]
    return pid, workers


def test_a_dying_rank_fails_the_run_with_its_error(workdirs, demo_model_dir):
    run = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", "ddp-kill")
    runner.launch(run, _longer_ddp(29621))
    pid, workers = _training_workers(run)
    victim = next(p for p in workers if "LOCAL_RANK" in p.environ() and p.environ()["LOCAL_RANK"] == "1")
    victim.send_signal(signal.SIGKILL)
    status = wait_for_state(run, 300, (FINISHED, FAILED, STOPPED))
    assert status["state"] == FAILED, status
    assert status["error"]
    psutil.wait_procs(workers, timeout=60)
    assert not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_a_killed_launcher_fails_the_run_and_its_workers_go(workdirs, demo_model_dir):
    """kill -9 of torchrun itself leaves its workers orphaned; the first look at the run fails it and
    kills them, so nothing trains on unseen and the device is free for the queue."""
    run = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", "ddp-kill-launcher")
    runner.launch(run, _longer_ddp(29623))
    pid, workers = _training_workers(run)
    os.kill(pid, signal.SIGKILL)
    status = wait_for_state(run, 60, (FINISHED, FAILED, STOPPED))
    assert status["state"] == FAILED and "exited unexpectedly" in status["error"], status
    psutil.wait_procs(workers, timeout=30)
    assert not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


# -- a new adapter on top of a selected one ---------------------------------------------------------

def test_new_adapter_on_top_is_used_with_its_parent_everywhere(tmp_path, demo_model_dir, monkeypatch):
    """Chat (both adapters active) and evaluation/export (parent merged) see the model training saw."""
    import torch

    monkeypatch.setenv("TUNEBOARD_CHAT_BF16", "0")  # chat's logits against the merged fp32 model's

    from engine.core.model_files import PARENTS_FILE, adapter_chain
    from engine.modeling.models import load_with_checkpoint
    from engine.serve.chat import ChatEngine

    parent = _run(_config("sft"), tmp_path / "parent")
    assert parent.read_status()["state"] == FINISHED, parent.log_tail(40)
    cfg = _config("sft", learning_rate=2e-3)
    cfg.model.adapter_path = str(parent.path)
    cfg.lora.create_new_adapter = True
    cfg.validate()
    child = _run(cfg, tmp_path / "child")
    assert child.read_status()["state"] == FINISHED, child.log_tail(40)
    assert json.loads((child.path / PARENTS_FILE).read_text()) == [str(parent.path)]
    assert (child.path / "checkpoint-4" / PARENTS_FILE).is_file()
    assert adapter_chain(child.path) == [str(parent.path), str(child.path)]

    ids = torch.tensor([[1, 9690, 198, 2683, 359, 253, 5356, 5646, 30, 2]])
    merged, _, _ = load_with_checkpoint(cfg.model.model_name_or_path, str(child.path))
    engine = ChatEngine()
    engine.load(cfg.model.model_name_or_path, str(child.path))
    with torch.no_grad():
        expected = merged.eval()(input_ids=ids).logits
        got = engine.model(input_ids=ids).logits
        engine.load(cfg.model.model_name_or_path, str(parent.path))  # switching back to the parent alone
        parent_only = engine.model(input_ids=ids).logits
    assert torch.allclose(got, expected, atol=1e-3), (got - expected).abs().max()
    assert not torch.allclose(parent_only, expected, atol=1e-3)
    engine.unload()
