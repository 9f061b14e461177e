"""One trainer per stage: the transformers Trainer for pre-training and SFT, trl for the preference stages, and
our own PPO (engine/train/ppo.py) on the transformers Trainer.

Rows arrive already tokenised by :mod:`engine.core.encode` with TuneBoard's chat
templates; the trl trainers are told to use them as they are (their own
tokenisation would render prompts differently from chat). Hyper-parameters
come from the one RunConfig, mapped here onto the trainer arguments.
"""

from __future__ import annotations

import os

from datasets import Dataset
from transformers import TrainingArguments

from engine.core.config import DEEPSPEED_OFF, RunConfig
from engine.core.encode import row_length, training_formatter
from engine.core.rewards import reward_functions
from engine.modeling.models import resolve_model_path
from engine.train.collators import PackingCollator, PaddingCollator
from engine.train.compile_layers import uncompiled
from engine.train.fast_loss import fast_loss_enabled, make_trainer_class
from engine.train.memory_optimizers import optimizer_arguments
from engine.train.ppo import build_ppo_trainer
from engine.train.segment_attention import use_segment_attention
from engine.train.trackers import tracker_arguments


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def training_arguments(cfg: RunConfig, device: str, compute: str) -> dict:
    """Trainer arguments common to every stage (trl's configs accept the same)."""
    t, evaluate = cfg.train, cfg.data.val_size > 0
    args = dict(
        output_dir=t.output_dir,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        num_train_epochs=t.num_train_epochs,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_steps,
        max_grad_norm=t.max_grad_norm,
        optim=t.optim,
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
        report_to=t.report_to,
        disable_tqdm=True,
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        save_only_model=False,
    )
    if t.neftune_noise_alpha > 0:
        args["neftune_noise_alpha"] = t.neftune_noise_alpha
    if t.early_stopping_patience and t.early_stopping_metric == "eval_loss":
        # Early stopping compares validation losses and keeps the best checkpoint to the end (on the probe score
        # the probe callback stops training, and the checkpoints stay as they are: see engine/train/probes.py).
        args.update(load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False)
    if world_size() > 1:
        args["ddp_backend"] = {"cpu": "gloo", "npu": "hccl"}.get(device, "nccl")
        args["ddp_find_unused_parameters"] = False
    if cfg.distributed.deepspeed != DEEPSPEED_OFF:
        args["deepspeed"] = os.path.join(t.output_dir, "deepspeed.json")
    args.update(optimizer_arguments(cfg))  # GaLore / APOLLO
    args.update(tracker_arguments(cfg))
    args.update(cfg.extra_arguments())
    return args


def deepspeed_config(cfg: RunConfig) -> dict:
    """A ZeRO config whose sizes the Trainer fills in ("auto")."""
    stage = int(cfg.distributed.deepspeed)
    zero: dict = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True}
    if cfg.distributed.offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        if stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    if stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {"train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
            "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"}, "zero_optimization": zero}


def _datasets(train_rows: list[dict], val_rows: list[dict], with_length: bool):
    def to_dataset(rows):
        if not rows:
            return None
        return Dataset.from_list([dict(r, length=row_length(r)) for r in rows] if with_length else rows)

    return to_dataset(train_rows), to_dataset(val_rows)


def stage_arguments(cfg: RunConfig, args: dict):
    """The arguments object of ``cfg.train.stage``'s trainer (TrainingArguments, or trl's config for the stage).

    Create it before loading the model: under DeepSpeed, creating it registers the ZeRO config with
    transformers, and only then does ``from_pretrained`` load a ZeRO-3 model straight into its partitions
    (deepspeed.zero.Init) instead of every rank holding the whole model. transformers keeps that registration
    by weak reference, so hold the object until the trainer is built with it."""
    stage, r = cfg.train.stage, cfg.rlhf
    if stage == "ppo":  # our own trainer on the transformers Trainer (engine/train/ppo.py)
        return TrainingArguments(**args)
    if stage in ("pt", "sft"):
        if not cfg.data.packing:
            args = dict(args, train_sampling_strategy="group_by_length", length_column_name="length")
        return TrainingArguments(**args)
    if stage == "dpo":
        from trl import DPOConfig  # noqa: PLC0415 - only preference stages need trl

        losses = {"loss_type": [r.loss_type, "sft"], "loss_weights": [1.0, r.ftx]} if r.ftx > 0 \
            else {"loss_type": [r.loss_type]}
        return DPOConfig(**args, beta=r.beta, max_length=None, **losses)
    if stage == "kto":
        from trl import KTOConfig  # noqa: PLC0415 - only preference stages need trl

        return KTOConfig(**args, beta=r.beta, loss_type=r.kto_loss_type, desirable_weight=r.desirable_weight,
                         undesirable_weight=r.undesirable_weight, max_length=None)
    if stage == "orpo":
        from trl.experimental.orpo import ORPOConfig  # noqa: PLC0415 - only preference stages need trl

        width = cfg.data.cutoff_len
        return ORPOConfig(**args, beta=r.beta, max_length=width, max_completion_length=width)
    if stage == "rm":
        from trl import RewardConfig  # noqa: PLC0415 - only preference stages need trl

        return RewardConfig(**args, max_length=None)
    if stage == "grpo":
        from trl import GRPOConfig  # noqa: PLC0415 - only reinforcement learning needs trl

        g = cfg.grpo
        # The batch counts completions (num_generations per prompt), as in trl; Start has checked it divides.
        # trl counts GRPO's tokens itself (prompts and sampled completions); the Trainer's count finds no
        # input_ids in a batch of prompts and warns at every step
        args = dict(args, include_num_input_tokens_seen="no")
        return GRPOConfig(**args, num_generations=g.num_generations, max_completion_length=g.max_completion_length,
                          temperature=g.temperature, beta=g.beta, log_completions=False,
                          # training turns the model's cache off; sampling token by token needs it
                          generation_kwargs={"use_cache": True})
    raise ValueError(f"unknown stage {stage!r}")


def build_trainer(cfg: RunConfig, model, tokenizer, train_rows: list[dict], val_rows: list[dict], arguments,
                  callbacks: list, log=print, ref_model=None, width_multiple: int = 1):
    """The trainer for ``cfg.train.stage``, with ``arguments`` from :func:`stage_arguments`; pre-training and
    SFT batches are padded to a multiple of ``width_multiple`` tokens."""
    stage = cfg.train.stage
    if stage in ("pt", "sft"):
        return _build_lm_trainer(cfg, model, tokenizer, train_rows, val_rows, arguments, callbacks, log,
                                 width_multiple)
    if stage == "ppo":
        return build_ppo_trainer(cfg, model, tokenizer, train_rows, arguments, callbacks, ref_model, log)
    train_ds, eval_ds = _datasets(train_rows, val_rows, with_length=False)
    common = dict(model=model, processing_class=tokenizer, train_dataset=train_ds, eval_dataset=eval_ds,
                  callbacks=callbacks, args=arguments)
    if stage == "dpo":
        from trl import DPOTrainer  # noqa: PLC0415 - only preference stages need trl

        return _pretokenized(DPOTrainer)(ref_model=ref_model, **common)
    if stage == "kto":
        from trl import KTOTrainer  # noqa: PLC0415 - only preference stages need trl

        return _pretokenized(KTOTrainer)(ref_model=ref_model, **common)
    if stage == "orpo":
        from trl.experimental.orpo import ORPOTrainer  # noqa: PLC0415 - only preference stages need trl

        return _orpo_pretokenized(ORPOTrainer)(**common)
    if stage == "rm":
        from trl import RewardTrainer  # noqa: PLC0415 - only preference stages need trl

        # The reward model scores whole sequences: prompt and answer together.
        def whole(rows):
            return [{k: row["prompt_ids"] + row[k] for k in ("chosen_ids", "rejected_ids")} for row in rows]

        common["train_dataset"], common["eval_dataset"] = _datasets(whole(train_rows), whole(val_rows), False)
        return RewardTrainer(**common)
    if stage == "grpo":
        return _build_grpo_trainer(cfg, model, tokenizer, train_rows, val_rows, common)
    raise ValueError(f"unknown stage {stage!r}")


def _build_lm_trainer(cfg, model, tokenizer, train_rows, val_rows, arguments, callbacks, log, width_multiple):
    own = cfg.model.booster != "none"  # booster none: plain transformers, none of TuneBoard's fast paths
    if cfg.data.packing and cfg.data.neat_packing and own:
        use_segment_attention(model, log)  # packed rows attend sample by sample
    # The answer-only loss calls the model's parts directly, around the DDP wrapper's forward that
    # synchronises gradients: with several processes the standard loss is used.
    fast = fast_loss_enabled() and world_size() == 1 and own
    if cfg.data.packing:
        collator = PackingCollator(tokenizer.pad_token_id, width_multiple, neat=cfg.data.neat_packing)
        if not cfg.data.neat_packing:
            log("plain packing (neat packing off): the samples of a row attend to the samples before them")
    else:
        collator = PaddingCollator(tokenizer.pad_token_id, width_multiple)
    train_ds, eval_ds = _datasets(train_rows, val_rows, with_length=not cfg.data.packing)
    trainer_class = make_trainer_class(log, fast_loss=fast)
    return trainer_class(model=model, args=arguments, train_dataset=train_ds, eval_dataset=eval_ds,
                         data_collator=collator, processing_class=tokenizer, callbacks=callbacks)


def _build_grpo_trainer(cfg: RunConfig, model, tokenizer, train_rows, val_rows, common: dict):
    """trl's GRPOTrainer scoring with the rewards picked in the form, sampling from TuneBoard's prompt ids."""
    from trl import GRPOTrainer  # noqa: PLC0415 - only reinforcement learning needs trl

    # trl reads its prompts from a "prompt" column and would tokenise them itself: the column holds the prompt's
    # text, and the trainer maps it back to the ids the chat template gave (the prompt chat shows the model).
    ids_of = {}

    def with_text(rows):
        out = []
        for row in rows:
            text = tokenizer.decode(row["prompt_ids"])
            ids_of[text] = row["prompt_ids"]
            out.append({"prompt": text, "answer": row["answer"]})
        return out

    common["train_dataset"], common["eval_dataset"] = _datasets(with_text(train_rows), with_text(val_rows), False)

    class TemplatePrompts(GRPOTrainer):
        def _tokenize_prompts(self, prompts: list):
            return [list(ids_of[p]) for p in prompts], None, {}

        def _generate_single_turn(self, *args, **kwargs):
            with uncompiled():  # completions through torch_compile's layers: plain code, not a graph per cache state
                return super()._generate_single_turn(*args, **kwargs)

    TemplatePrompts.__name__ = GRPOTrainer.__name__
    rewards = reward_functions(cfg.grpo.rewards, cfg.grpo.format_regex, cfg.grpo.length_target)
    g = cfg.grpo
    original = model.config._name_or_path
    if g.beta > 0 and not hasattr(model, "peft_config"):
        # trl loads its frozen reference from the policy's name_or_path: the folder the weights came from (the
        # demo model's config names its id, no folder). LoRA's reference is the model with its adapter off.
        model.config._name_or_path = str(resolve_model_path(cfg.model.adapter_path or cfg.model.model_name_or_path,
                                                            cfg.model.hub))
    try:
        trainer = TemplatePrompts(reward_funcs=rewards, **common)
    finally:
        model.config._name_or_path = original
    # A completion ends where a chat answer ends: at the template's end-of-turn tokens too.
    stops = [i for i in training_formatter(cfg, tokenizer).stop_token_ids() if i not in trainer.eos_token_ids]
    trainer.eos_token_ids = [*trainer.eos_token_ids, *stops]
    trainer.generation_config.eos_token_id = trainer.eos_token_ids
    trainer.generation_kwargs["eos_token_id"] = trainer.eos_token_ids
    return trainer


def _pretokenized(trainer_class):
    """The trl trainer, taking TuneBoard's token ids as they are instead of tokenising text itself."""

    class Pretokenized(trainer_class):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):  # noqa: ARG002
            if getattr(self, "calculate_KL", False):
                # KTO's KL term pairs each prompt with another sample's answer in the same batch (as trl does).
                size = args.per_device_train_batch_size

                def add_kl(batch):
                    batch["KL_completion_ids"] = batch["completion_ids"][-1:] + batch["completion_ids"][:-1]
                    return batch

                dataset = dataset.map(add_kl, batched=True, batch_size=size)
            return dataset

    Pretokenized.__name__ = trainer_class.__name__
    return Pretokenized


def _orpo_pretokenized(trainer_class):
    """trl's ORPO trainer (experimental, older layout) fed the same token ids."""

    class Pretokenized(trainer_class):
        def tokenize_row(self, feature, model=None):  # noqa: ARG002
            out = {"prompt_input_ids": feature["prompt_ids"], "prompt_attention_mask": [1] * len(feature["prompt_ids"])}
            for side in ("chosen", "rejected"):
                ids = feature["prompt_ids"] + feature[f"{side}_ids"]
                out[f"{side}_input_ids"] = ids
                out[f"{side}_attention_mask"] = [1] * len(ids)
                out[f"{side}_labels"] = [-100] * len(feature["prompt_ids"]) + feature[f"{side}_ids"]
            return out

    Pretokenized.__name__ = trainer_class.__name__
    return Pretokenized
