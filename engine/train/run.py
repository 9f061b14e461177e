"""Training of every stage, reporting into the run directory.

Run as ``python -m engine train <run_dir>/run.yaml``, or under torchrun for
several processes. Rank 0 writes the status (running -> finished | failed |
stopped) and one events.jsonl line per logging step. Stop (the run's
stop.request file, or SIGTERM) ends every rank after the same step: they agree
on it each step; the weights so far are saved and the run ends as ``stopped``.
With ``train.resume``, a run folder holding complete checkpoints continues
from the last one.
"""

from __future__ import annotations

import datetime
import importlib.util
import math
import os
import pickle
import shutil
import time
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import BitsAndBytesConfig, EarlyStoppingCallback, TrainerCallback, set_seed

from engine.core.checkpointing_choice import choose_checkpointing
from engine.core.checkpoints import last_complete_checkpoint
from engine.core.config import DEEPSPEED_OFF, RunConfig
from engine.core.cpu_threads import ThreadGovernor, governor_for
from engine.core.devices import batch_width_multiple, pick_device, resolve_compute_type
from engine.core.encode import encode_dataset
from engine.core.fileio import atomic_write_json
from engine.core.model_files import PARENTS_FILE
from engine.core.model_options import check_booster
from engine.core.optional_packages import check_packages
from engine.core.probe_scoring import probe_metrics
from engine.core.reward_model import check_reward_model
from engine.core.rundir import FINISHED, RUNNING, STOPPED, RunDir
from engine.jobs.job import (
    JobOutcome,
    StopRequested,
    describe_error,
    error_record,
    fetch_model,
    log,
    rank,
    settle_imports,
    start_job,
)
from engine.modeling.expansion import resize_vocab
from engine.modeling.finetuning import apply_finetuning, loraplus_optimizer, merged_parents
from engine.modeling.models import LoadOptions, load_model, load_tokenizer
from engine.train.compile_layers import check_compiler, compile_layers, compile_report, take_compile_arguments
from engine.train.fused_layer import apply_fused_layers
from engine.train.lean_activations import apply_lean_activations
from engine.train.memory_optimizers import apply_memory_optimizer
from engine.train.probes import make_probe_callback
from engine.train.shift_attention import use_shift_attention
from engine.train.trackers import finish_tracker, start_tracker
from engine.train.trainers import build_trainer, deepspeed_config, stage_arguments, training_arguments


class GovernThreads(TrainerCallback):
    """Sets the training thread's CPU thread count at each step from what other processes use
    (engine.core.cpu_threads); probe answers between steps run with the count of the step before."""

    def __init__(self, governor: ThreadGovernor) -> None:
        self.governor = governor

    def on_step_begin(self, args, state, control, **kwargs):  # noqa: ARG002 - transformers passes them by keyword
        self.governor.adjust()


def make_callback(run: RunDir, stop: StopRequested, log=print, parents: list[str] | None = None):
    class RunDirReporter(TrainerCallback):
        """Writes events.jsonl at each log, progress into status.json, and honours Stop."""

        def __init__(self) -> None:
            self.t0 = time.time()
            self.last_progress = 0.0
            self.saving: Path | None = None  # the checkpoint being written, if a save is under way

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ARG002 - transformers passes them by keyword
            self.t0 = time.time()
            run.write_status(RUNNING, step=0, total_steps=state.max_steps)

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ARG002 - transformers passes them by keyword
            now = time.time()
            if now - self.last_progress >= 1.0 or state.global_step == state.max_steps:
                self.last_progress = now
                elapsed = now - self.t0
                run.write_status(RUNNING, step=state.global_step, total_steps=state.max_steps,
                                 elapsed_s=round(elapsed, 2),
                                 remaining_s=round(_remaining(elapsed, state.global_step, state.max_steps), 2))
            if _all_agree_to_stop(stop.requested):
                control.should_training_stop = True
            if control.should_save:  # the Trainer saves right after this callback
                self.saving = run.path / f"checkpoint-{state.global_step}"
            return control

        def on_save(self, args, state, control, **kwargs):  # noqa: ARG002 - transformers passes them by keyword
            self.saving = None
            if parents and run.writer:  # a checkpoint of an adapter trained on top of others names them
                _write_parents(run.path / f"checkpoint-{state.global_step}", parents)

        def on_initial_loss(self, _args, state, loss: float) -> None:  # from TuneBoardTrainer (fast_loss.py)
            if not math.isfinite(loss):
                return
            run.append_event({"step": 0, "total_steps": state.max_steps, "epoch": 0.0,
                              "elapsed_s": round(time.time() - self.t0, 2), "tokens_seen": 0, "loss": loss,
                              "initial": True})
            log(f"step 0/{state.max_steps} | loss {loss:.4g} (the first batch, before any update)")

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ARG002 - transformers passes them by keyword
            logs = logs or {}
            if not any(k in logs for k in ("loss", "eval_loss")):
                return
            elapsed = time.time() - self.t0
            event = {
                "step": state.global_step,
                "total_steps": state.max_steps,
                "epoch": round(float(state.epoch or 0.0), 4),
                "elapsed_s": round(elapsed, 2),
                "remaining_s": round(_remaining(elapsed, state.global_step, state.max_steps), 2),
                "tokens_seen": int(state.num_input_tokens_seen or 0),
            }
            if event["tokens_seen"] and elapsed > 0:  # trl's ORPO feeds no input_ids the Trainer could count
                event["tokens_per_s"] = round(event["tokens_seen"] / elapsed, 1)
            for key, out in (("loss", "loss"), ("learning_rate", "lr"), ("grad_norm", "grad_norm"),
                             ("eval_loss", "eval_loss"), *_reward_keys(logs)):
                if key in logs and logs[key] is not None and math.isfinite(float(logs[key])):
                    event[out] = float(logs[key])
            run.append_event(event)
            parts = [f"step {event['step']}/{event['total_steps']}"]
            parts += [f"{k} {event[k]:.4g}" for k in ("loss", "eval_loss", "lr", "reward", "reward_std", "kl")
                      if k in event]
            if "tokens_per_s" in event:
                parts.append(f"{event['tokens_per_s']:.0f} tokens/s")
            log(" | ".join(parts))

    return RunDirReporter()


def _reward_keys(logs: dict) -> list[tuple[str, str]]:
    """Reward figures -> their names in events.jsonl. GRPO (as trl logs them): the mean reward and its spread over
    the step's completions, each reward's mean (``rewards/format/mean`` -> ``reward_format``), the mean length;
    PPO: the rollout's mean score and KL to the reference."""
    keys = [("reward", "reward"), ("reward_std", "reward_std"), ("completions/mean_length", "completion_length"),
            ("kl", "kl")]
    keys += [(k, "reward_" + k.split("/")[1]) for k in logs if k.startswith("rewards/") and k.endswith("/mean")]
    return keys


def _save_final(trainer, run: RunDir) -> None:
    """The run's weights, written beside the run and moved in file by file, weights last: a run killed
    while saving never shows half-written weights as its result."""
    tmp = run.path / ".final.tmp"
    if run.writer:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))  # every rank calls it; only rank 0 writes
    if not run.writer:
        return
    for f in sorted(tmp.iterdir(), key=lambda p: p.suffix == ".safetensors"):
        target = run.path / f.name
        if f.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(f, target)
    shutil.rmtree(tmp, ignore_errors=True)


def _failed_save(folder: Path, error: str) -> str:
    """The message for a checkpoint that could not be written (a full disk, a quota); the half-written
    folder is removed so it frees its space, and the complete checkpoints before it stay."""
    if rank() == 0:
        shutil.rmtree(folder, ignore_errors=True)
    return (f"could not write {folder.name} ({error}); the disk may be full. Complete checkpoints before it "
            "are kept, and Resume continues from the last of them.")


def _write_parents(folder: Path, parents: list[str]) -> None:
    if folder.is_dir():
        atomic_write_json(folder / PARENTS_FILE, parents)


def _all_agree_to_stop(local: bool) -> bool:
    """Whether any rank wants to stop, agreed by all ranks at the same step (a rank stopping alone
    would leave the others waiting for it in the next gradient exchange)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    backend = dist.get_backend()
    device = {"nccl": "cuda", "hccl": "npu"}.get(backend, "cpu")
    if device != "cpu":
        device = f"{device}:{int(os.environ.get('LOCAL_RANK', '0'))}"
    flag = torch.tensor([1.0 if local else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)


def _remaining(elapsed: float, step: int, total: int) -> float:
    return elapsed / step * (total - step) if step > 0 else 0.0


def _check_device_features(cfg: RunConfig, device: str) -> None:
    """Features that need a particular device or package, refused up front with what to do instead."""
    needs_bnb = []
    if cfg.model.quantization_bit != "none":
        needs_bnb.append(("model.quantization_bit", f"{cfg.model.quantization_bit}-bit QLoRA"))
    if "8bit" in cfg.train.optim:
        needs_bnb.append(("train.optim", f"the {cfg.train.optim} optimizer"))
    for key, what in needs_bnb:
        if device != "cuda":
            raise RuntimeError(f"{key}: {what} needs a CUDA GPU (bitsandbytes); this run is on {device}. "
                               "Choose none / adamw_torch, or train on a GPU.")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise RuntimeError(f"{key}: {what} needs the bitsandbytes package (pip install bitsandbytes)")
    if cfg.distributed.deepspeed != DEEPSPEED_OFF:
        # DeepSpeed runs on CUDA, Ascend and (its CPU accelerator, gloo between processes) the CPU; not on MPS.
        if device not in ("cuda", "npu", "cpu"):
            raise RuntimeError(f"distributed.deepspeed: DeepSpeed needs CUDA GPUs, Ascend NPUs or the CPU; this run "
                               f"is on {device}. Choose none.")
        if importlib.util.find_spec("deepspeed") is None:
            raise RuntimeError("distributed.deepspeed: the deepspeed package is not installed (pip install deepspeed)")
    check_booster(cfg.model.booster, device)


def _quantization_config(cfg: RunConfig, compute_dtype):
    if cfg.model.quantization_bit == "none":
        return None
    if cfg.model.quantization_bit == "8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype)


def _load_models(cfg: RunConfig, device: str, compute: str, tokenizer, log, compiled: bool = False):
    """The model to train (wrapped for its method) and, where the stage needs one, a frozen reference;
    ``compiled``: its layers will be compiled (engine.train.compile_layers)."""
    half = {"bf16": torch.bfloat16, "fp16": torch.float16, "pure_bf16": torch.bfloat16}.get(compute)
    # LoRA's frozen base weights live in half precision (its adapters stay fp32, under autocast): faster and
    # lighter than fp32 weights cast at every step (README, Benchmarks). pure_bf16 keeps every weight in bf16.
    lora = cfg.train.finetuning_type == "lora"
    load_dtype = half if compute == "pure_bf16" or (half is not None and lora) else torch.float32
    source = cfg.model.model_name_or_path
    if not lora and cfg.model.adapter_path:
        source = cfg.model.adapter_path  # continue a full/freeze run from its weights
    reward = cfg.train.stage == "rm"
    kwargs = {}
    quant = _quantization_config(cfg, half or torch.float32)
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": int(os.environ.get("LOCAL_RANK", "0"))})
    options = LoadOptions.of(cfg, training=True)
    model = load_model(source, dtype=load_dtype, trust_remote_code=cfg.model.trust_remote_code,
                       reward_head=reward, hub=cfg.model.hub, options=options, log=log, **kwargs)
    model.config.use_cache = False
    if reward and model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if cfg.train.resize_vocab:
        resize_vocab(model, tokenizer, log)
    model = apply_finetuning(model, cfg, log, task_type="SEQ_CLS" if reward else "CAUSAL_LM")
    if cfg.model.booster != "none" and compiled:
        # Their hand-fused Functions are opaque to the compiler: a graph break at every LoRA layer.
        log("lean activations off under torch_compile: the compiler fuses the layers itself")
    elif cfg.model.booster != "none":  # none: plain transformers, none of TuneBoard's fast paths
        apply_lean_activations(model, log, device=device)  # LoRA modules that can keep fewer activations
    if cfg.train.shift_attn:
        use_shift_attention(model, log)
    ref_model = None
    if cfg.train.stage in ("dpo", "kto", "ppo") and not lora:
        # LoRA's reference is the model with its adapter switched off; other methods need a frozen copy.
        ref_model = load_model(source, dtype=load_dtype, trust_remote_code=cfg.model.trust_remote_code,
                               hub=cfg.model.hub, options=options, log=log).eval()
        if cfg.train.resize_vocab:
            resize_vocab(ref_model, tokenizer, log)
        ref_model.requires_grad_(False)
    return model, ref_model


def run_training(config_path: str | Path) -> int:
    """Entry point of each training process; returns the process exit code."""
    code = _train(config_path)
    if code == 0 and dist.is_available() and dist.is_initialized():
        # Gloo's worker threads outliving the interpreter abort the process at exit ("terminate called without an
        # active exception", exit -6) after a run that finished. Only on success: a rank that failed may leave
        # the others inside a collective, where tearing down would wait for it.
        dist.destroy_process_group()
    return code


def _train(config_path: str | Path) -> int:
    cfg, run, stop = start_job(config_path, "train", "loading")
    under_torchrun = "TORCHELASTIC_RUN_ID" in os.environ
    reporter = None

    def describe(exc: BaseException) -> tuple[str, dict | None]:
        if reporter is not None and reporter.saving is not None:  # the error came while writing a checkpoint
            return _failed_save(reporter.saving, describe_error(exc)), None
        return describe_error(exc), error_record(exc)

    # A signal alone may come from torchrun ending this rank after another failed: that run failed.
    outcome = JobOutcome(run, stop, user_stopped=lambda: stop.by_user or (stop.signalled and not under_torchrun),
                         describe=describe)
    with outcome:
        settle_imports()
        set_seed(cfg.train.seed)
        device = pick_device(cfg.model.device)
        compute = resolve_compute_type(cfg.train.compute_type, device)
        _check_device_features(cfg, device)
        if cfg.train.stage == "ppo":
            check_reward_model(cfg)  # before any model loads: a wrong choice fails at once, naming the field
        check_packages(cfg)  # GaLore, APOLLO, BAdam, trackers: a missing package ends the run before loading
        world = int(os.environ.get("WORLD_SIZE", "1"))
        log(f"stage {cfg.train.stage}, device {device}, compute type {compute}, method {cfg.train.finetuning_type}"
            + (f", {world} processes" if world > 1 else ""))
        fetch_model(cfg, run, stop)  # a hub model not on disk yet is downloaded first, its progress in status.json
        tokenizer = load_tokenizer(cfg.model.model_name_or_path, cfg.model.trust_remote_code, cfg.model.hub)
        train_rows, val_rows = encode_dataset(cfg, tokenizer, log)
        log(f"{len(train_rows)} training samples, {len(val_rows)} validation samples")
        args = training_arguments(cfg, device, compute)
        compile_settings = take_compile_arguments(args)  # applied to the layers below, not by accelerate
        check_compiler(compile_settings)  # before the model loads: inductor builds C++ at the first step
        checkpointing = choose_checkpointing(cfg, device)  # by device and memory estimate (checkpointing_choice.py)
        if checkpointing.reason != "explicit":  # an explicit extra argument is in args already, and wins
            # transformers' current name: it overrides trl's configs' own default (gradient_checkpointing=True)
            args["activation_checkpointing"] = checkpointing.enabled
        log(checkpointing.log_line())
        run.write_status(RUNNING, gradient_checkpointing=checkpointing.to_status())  # for the train status line
        if cfg.distributed.deepspeed != DEEPSPEED_OFF:
            atomic_write_json(args["deepspeed"], deepspeed_config(cfg))  # every rank: each reads it right away
            import deepspeed  # noqa: PLC0415 - optional, only DeepSpeed runs need it

            # ZeRO-3's partitioned loading (zero.Init) takes the world size from DeepSpeed's own process group,
            # which accelerate sets up on GPUs but not on the CPU (use_cpu): set it up first on every device.
            deepspeed.init_distributed(timeout=datetime.timedelta(seconds=args.get("ddp_timeout", 1800)))
        # Before the model loads: under ZeRO-3 this is what makes from_pretrained load it partitioned.
        arguments = stage_arguments(cfg, args)
        model, ref_model = _load_models(cfg, device, compute, tokenizer, log, compiled=bool(compile_settings))
        if compile_settings:
            compile_layers(model, compile_settings, log)
        # ZeRO-3 leaves each rank an empty placeholder per weight; ds_numel is the weight's real size.
        trainable = sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters() if p.requires_grad)
        total = sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters())
        log(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)")
        if stop.requested:
            run.write_status(STOPPED, phase="stopped before training")
            return 0

        resume = last_complete_checkpoint(run.path) if cfg.train.resume else None
        if resume is not None:
            log(f"resuming from {resume.path.name} (step {resume.step}): weights, optimizer, scheduler and "
                "random state carry over")
            run.truncate_events(resume.step)
        parents = merged_parents(cfg)
        reporter = make_callback(run, stop, log, parents)
        callbacks = [reporter]
        governor = governor_for(device, log)
        if governor is not None and compile_settings:
            # Compiled code is guarded on the thread count: each change would recompile every graph.
            log("CPU thread governor off under torch_compile: the thread count stays as it starts")
            governor = None
        if governor is not None:
            callbacks.append(GovernThreads(governor))
        if cfg.train.early_stopping_patience and cfg.train.early_stopping_metric == "eval_loss":
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.train.early_stopping_patience))
        # (on the probe score the probe callback stops training itself: engine/train/probes.py)
        start_tracker(cfg, run.path, log)
        trainer = build_trainer(cfg, model, tokenizer, train_rows, val_rows, arguments, callbacks, log,
                                ref_model=ref_model, width_multiple=batch_width_multiple(device, compute))
        if cfg.model.booster != "none" and not compile_settings:
            # After the trainer set up the packed rows' attention, which the fused layers compute themselves.
            apply_fused_layers(model, log, device=device)
        apply_memory_optimizer(trainer, cfg, log)
        probes = make_probe_callback(cfg, tokenizer, run, log)
        if probes is not None:
            probes.defer_first = bool(getattr(trainer, "reports_initial_loss", False))
            trainer.add_callback(probes)
        if cfg.train.finetuning_type == "lora" and cfg.lora.loraplus_lr_ratio > 0:
            # Built from the trainer's own resolved arguments; the Trainer keeps an optimizer already set.
            trainer.optimizer = loraplus_optimizer(trainer.model, cfg, trainer.args)
            log(f"LoRA+: B matrices learn {cfg.lora.loraplus_lr_ratio:g}x faster")
        run.write_status(RUNNING, phase="training", resumed_from=resume.path.name if resume else None)
        try:
            result = trainer.train(resume_from_checkpoint=str(resume.path) if resume else None)
        except pickle.UnpicklingError:
            if resume is None:
                raise
            # torch refuses (weights_only) state files that are more than tensors: say which checkpoint.
            raise RuntimeError(f"checkpoint {resume.path} holds optimizer, scheduler or random state that is not "
                               "plain tensors; refusing to load it (delete that checkpoint or untick Resume)") from None
        finish_tracker(cfg)
        _save_final(trainer, run)
        if parents and run.writer:
            _write_parents(run.path, parents)
        metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
        padding = trainer.padding_share() if hasattr(trainer, "padding_share") else None
        if padding is not None:
            metrics["padding_share"] = round(padding, 4)
            log(f"padding: {100 * padding:.1f}% of the tokens fed to training")
        if compile_settings:
            log(compile_report())
        metrics.update(probe_metrics(run.read_events()))
        best = trainer.state.best_model_checkpoint
        if best:
            metrics["best_eval_loss"] = trainer.state.best_metric
            log(f"best checkpoint: {Path(best).name} (validation loss {trainer.state.best_metric:.4f}); "
                "the saved weights are the best ones")
        user_stop = stop.by_user or (stop.signalled and not under_torchrun)
        if stop.requested and not user_stop:
            raise RuntimeError("interrupted: another process of this run failed (see the log above)")
        state = STOPPED if stop.requested else FINISHED
        early = trainer.state.global_step < trainer.state.max_steps and not stop.requested
        run.write_status(state, phase="done", metrics=metrics, step=trainer.state.global_step,
                         total_steps=trainer.state.max_steps, best_checkpoint=Path(best).name if best else None,
                         stopped_early=early)
        if early and "best_probe_score" in metrics and cfg.train.early_stopping_metric == "probe_score":
            log(f"Early stopping: the probe score has not improved for {cfg.train.early_stopping_patience} probe "
                f"rounds (best {metrics['best_probe_score']:g} at step {metrics['best_probe_step']}).")
        elif early and cfg.train.early_stopping_metric == "eval_loss":
            log(f"Early stopping: no validation improvement for {cfg.train.early_stopping_patience} evaluations.")
        log("Training stopped; the weights so far were saved." if stop.requested else "Training finished.")
        return 0
    return outcome.code
