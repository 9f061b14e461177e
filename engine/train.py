"""Supervised fine-tuning through the transformers Trainer, reporting into the run directory.

Run as ``python -m engine train <run_dir>/run.yaml``. The process writes its
own status (running -> finished | failed | stopped) and one events.jsonl line
per logging step. SIGTERM asks it to stop: it finishes the current step, saves
what it has and ends as ``stopped``.
"""

from __future__ import annotations

import math
import random
import sys
import time
import traceback
from pathlib import Path

from engine.config import RunConfig
from engine.job import StopRequested, log, start_job
from engine.rundir import FAILED, FINISHED, RUNNING, STOPPED, RunDir
from engine.templates import IGNORE_INDEX


def encode_dataset(cfg: RunConfig, tokenizer, log=print) -> tuple[list[dict], list[dict]]:
    """Load, fill placeholders, encode with prompt masking, and split off validation samples."""
    from engine.data import load_samples  # noqa: PLC0415
    from engine.paths import resolve_user_dir  # noqa: PLC0415
    from engine.templates import ChatFormatter  # noqa: PLC0415

    formatter = ChatFormatter(tokenizer, cfg.model.template)
    fill = {"name": cfg.data.identity_name, "author": cfg.data.identity_author}
    samples = load_samples(resolve_user_dir(cfg.data.dataset_dir, "data folder"), cfg.data.datasets,
                           cfg.data.max_samples, fill)
    encoded, skipped = [], 0
    for sample in samples:
        row = formatter.encode_supervised(sample.chat_messages(), cfg.data.cutoff_len)
        if all(label == IGNORE_INDEX for label in row["labels"]):
            skipped += 1  # the answer was cut off entirely: nothing to learn from
            continue
        encoded.append(row)
    if skipped:
        log(f"skipped {skipped} samples whose answer lies beyond cutoff_len={cfg.data.cutoff_len}")
    if not encoded:
        raise ValueError("no sample has an answer within the cutoff length; raise data.cutoff_len")
    random.Random(cfg.train.seed).shuffle(encoded)
    n_val = int(round(len(encoded) * cfg.data.val_size))
    if cfg.data.val_size > 0:
        n_val = max(1, n_val)
    return encoded[n_val:], encoded[:n_val]


class PaddingCollator:
    """Pads a batch to its longest sample; labels padded with IGNORE_INDEX."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[dict]) -> dict:
        import torch  # noqa: PLC0415

        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def apply_finetuning(model, cfg: RunConfig, log=print):
    """Wrap or freeze the model according to the fine-tuning method; returns the model to train."""
    method = cfg.train.finetuning_type
    if method == "lora":
        from peft import LoraConfig, PeftModel, TaskType, get_peft_model  # noqa: PLC0415

        if cfg.model.adapter_path:
            log(f"continuing training of adapter {cfg.model.adapter_path}")
            return PeftModel.from_pretrained(model, cfg.model.adapter_path, is_trainable=True)
        target = cfg.lora.target.strip()
        targets = "all-linear" if target in ("all", "") else [t.strip() for t in target.split(",") if t.strip()]
        lora = LoraConfig(task_type=TaskType.CAUSAL_LM, r=cfg.lora.rank, lora_alpha=cfg.lora.alpha,
                          lora_dropout=cfg.lora.dropout, target_modules=targets)
        try:
            return get_peft_model(model, lora)
        except ValueError as exc:
            raise ValueError(f"lora.target: {exc}") from None
    if method == "freeze":
        layers = _decoder_layers(model)
        n = min(cfg.freeze.trainable_layers, len(layers))
        trainable = {id(p) for layer in layers[-n:] for p in layer.parameters()}
        for p in model.parameters():
            p.requires_grad_(id(p) in trainable)
        log(f"freeze: training the last {n} of {len(layers)} layers")
        return model
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def _decoder_layers(model):
    for module in model.modules():
        layers = getattr(module, "layers", None)
        if layers is not None and hasattr(layers, "__len__") and len(layers) and module is not model:
            return list(layers)
    raise ValueError("cannot find the transformer layers of this model for the freeze method")


def make_callback(run: RunDir, stop: StopRequested, log=print):
    from transformers import TrainerCallback  # noqa: PLC0415

    class RunDirReporter(TrainerCallback):
        """Writes events.jsonl at each log, progress into status.json, and honours Stop."""

        def __init__(self) -> None:
            self.t0 = time.time()
            self.last_progress = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.t0 = time.time()
            run.write_status(RUNNING, step=0, total_steps=state.max_steps)

        def on_step_end(self, args, state, control, **kwargs):
            now = time.time()
            if now - self.last_progress >= 1.0 or state.global_step == state.max_steps:
                self.last_progress = now
                elapsed = now - self.t0
                run.write_status(RUNNING, step=state.global_step, total_steps=state.max_steps,
                                 elapsed_s=round(elapsed, 2),
                                 remaining_s=round(_remaining(elapsed, state.global_step, state.max_steps), 2))
            if stop.requested:
                control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
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
                "tokens_per_s": round((state.num_input_tokens_seen or 0) / elapsed, 1) if elapsed > 0 else 0.0,
            }
            for key, out in (("loss", "loss"), ("learning_rate", "lr"), ("grad_norm", "grad_norm"),
                             ("eval_loss", "eval_loss")):
                if key in logs and logs[key] is not None and math.isfinite(float(logs[key])):
                    event[out] = float(logs[key])
            run.append_event(event)
            parts = [f"step {event['step']}/{event['total_steps']}"]
            parts += [f"{k} {event[k]:.4g}" for k in ("loss", "eval_loss", "lr") if k in event]
            parts.append(f"{event['tokens_per_s']:.0f} tokens/s")
            log(" | ".join(parts))

    return RunDirReporter()


def _remaining(elapsed: float, step: int, total: int) -> float:
    return elapsed / step * (total - step) if step > 0 else 0.0


def build_training_arguments(cfg: RunConfig, device: str, compute: str):
    from transformers import TrainingArguments  # noqa: PLC0415

    t = cfg.train
    evaluate = cfg.data.val_size > 0
    return TrainingArguments(
        output_dir=t.output_dir,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        num_train_epochs=t.num_train_epochs,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_steps,
        max_grad_norm=t.max_grad_norm,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=t.save_steps,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=t.save_steps if evaluate else None,
        bf16=compute == "bf16",
        fp16=compute == "fp16",
        use_cpu=device == "cpu",
        seed=t.seed,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length",
        length_column_name="length",
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        save_only_model=False,
    )


def run_training(config_path: str | Path) -> int:
    """Entry point of the training subprocess; returns the process exit code."""
    cfg, run, stop = start_job(config_path, "train", "loading")

    try:
        import torch  # noqa: PLC0415
        from datasets import Dataset  # noqa: PLC0415
        from transformers import set_seed  # noqa: PLC0415

        from engine.devices import pick_device, resolve_compute_type  # noqa: PLC0415
        from engine.fast_loss import fast_loss_enabled, make_trainer_class  # noqa: PLC0415
        from engine.models import load_model, load_tokenizer  # noqa: PLC0415

        set_seed(cfg.train.seed)
        device = pick_device(cfg.model.device)
        compute = resolve_compute_type(cfg.train.compute_type, device)
        log(f"device {device}, compute type {compute}, method {cfg.train.finetuning_type}")
        tokenizer = load_tokenizer(cfg.model.model_name_or_path, cfg.model.trust_remote_code)
        train_rows, val_rows = encode_dataset(cfg, tokenizer, log)
        log(f"{len(train_rows)} training samples, {len(val_rows)} validation samples")
        # Frozen base weights may live in half precision on accelerators; on CPU fp32 + autocast is faster.
        half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(compute)
        load_dtype = half if (half is not None and device != "cpu" and cfg.train.finetuning_type == "lora") else torch.float32
        model_source = cfg.model.model_name_or_path
        if cfg.train.finetuning_type != "lora" and cfg.model.adapter_path:
            model_source = cfg.model.adapter_path  # continue a full/freeze run from its weights
        model = load_model(model_source, dtype=load_dtype, trust_remote_code=cfg.model.trust_remote_code)
        model.config.use_cache = False
        model = apply_finetuning(model, cfg, log)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        log(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)")
        if stop.requested:
            run.write_status(STOPPED, phase="stopped before training")
            return 0

        def to_dataset(rows):
            return Dataset.from_list([dict(r, length=len(r["input_ids"])) for r in rows]) if rows else None

        # The same loss as the Trainer's, with the output layer computed on answer tokens only
        # (TUNEBOARD_FAST_LOSS=0: the standard way).
        trainer_class = make_trainer_class(log, fast_loss=fast_loss_enabled())
        trainer = trainer_class(
            model=model,
            args=build_training_arguments(cfg, device, compute),
            train_dataset=to_dataset(train_rows),
            eval_dataset=to_dataset(val_rows),
            data_collator=PaddingCollator(tokenizer.pad_token_id),
            processing_class=tokenizer,
            callbacks=[make_callback(run, stop, log)],
        )
        run.write_status(RUNNING, phase="training")
        result = trainer.train()
        trainer.save_model(str(run.path))
        metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
        padding = trainer.padding_share()
        if padding is not None:
            metrics["padding_share"] = round(padding, 4)
            log(f"padding: {100 * padding:.1f}% of the tokens fed to training")
        state = STOPPED if stop.requested else FINISHED
        run.write_status(state, phase="done", metrics=metrics, step=trainer.state.global_step,
                         total_steps=trainer.state.max_steps)
        log("Training stopped; the weights so far were saved." if stop.requested else "Training finished.")
        return 0
    except BaseException as exc:  # report every failure in words, then exit non-zero
        traceback.print_exc()
        sys.stdout.flush()
        message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, KeyboardInterrupt) else "interrupted"
        if stop.requested:
            run.write_status(STOPPED, phase="stopped", error=None)
            return 0
        run.write_status(FAILED, error=message)
        return 1
