"""Named starting points for the form. The demo preset makes the identity lesson fit a classroom:
on a 2-core CPU it finishes in a few minutes and visibly changes "Who are you?"."""

from __future__ import annotations

import dataclasses

from engine.core.config import RunConfig

# One and a half epochs at a learning rate of 1e-3: 50 steps, a checkpoint every 25 (Chat can compare them, and
# the probe questions are answered at each). Three epochs at 5e-4 (100 steps) took twice the time for the same
# final probe score, 100: both identity questions and 2+2 (README, Benchmarks); at 5e-4 over 1.5 or 2 epochs
# the model still answered "Two and two is two." at the end.
# Identity data alone teaches the model to answer *every* question with its identity,
# so general samples (English and Chinese) are mixed in to keep ordinary answers ordinary.
# The probes say what a good answer holds, so each checkpoint gets a score: the identity learnt (the default
# identity name) and an ordinary question still answered.
DEMO_PROBES = ("Who are you? => contains: TuneBoard\n"
               "你好，你是谁？ => contains: TuneBoard\n"
               "What is 2+2? => contains: 4")
DEMO_PRESET: dict[str, dict] = {
    "model": {"model_name_or_path": "demo/SmolLM2-135M-Instruct", "template": "auto"},
    "data": {"datasets": ["identity", "general_mix"], "cutoff_len": 256, "max_samples": 100,
             "val_size": 0.0},
    "train": {"finetuning_type": "lora", "learning_rate": 1e-3, "num_train_epochs": 1.5,
              "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "lr_scheduler_type": "cosine",
              "logging_steps": 2, "save_steps": 25, "warmup_steps": 0, "compute_type": "auto",
              "probe_questions": DEMO_PROBES},
    "lora": {"rank": 8, "alpha": 16, "dropout": 0.0, "target": "all"},
}


# GRPO: the demo model learns to end its answers with "Answer: <number>" (the format reward) on arithmetic
# questions that ask for it; the accuracy reward counts right sums too. Measured in README (Training options).
GRPO_PROBES = ('What is 17 + 25? End your reply with "Answer: <number>".\n'
               "9 乘以 7 等于多少？回答的最后请写“Answer: <数字>”。")
GRPO_PRESET: dict[str, dict] = {
    "model": {"model_name_or_path": "demo/SmolLM2-135M-Instruct", "template": "auto"},
    "data": {"datasets": ["arithmetic_answer"], "cutoff_len": 128, "max_samples": 120, "val_size": 0.0},
    "train": {"stage": "grpo", "finetuning_type": "lora", "learning_rate": 5e-4, "num_train_epochs": 1.0,
              "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1, "lr_scheduler_type": "constant",
              "logging_steps": 2, "save_steps": 25, "warmup_steps": 0, "compute_type": "auto",
              "probe_questions": GRPO_PROBES, "probe_max_new_tokens": 32},
    "lora": {"rank": 8, "alpha": 16, "dropout": 0.0, "target": "all"},
    "grpo": {"rewards": ["accuracy", "format"], "format_regex": r".*Answer: -?\d+(\.\d+)?", "num_generations": 4,
             "max_completion_length": 48, "temperature": 1.0, "beta": 0.0},
}


def apply_preset(cfg: RunConfig, preset: dict[str, dict]) -> RunConfig:
    """A copy of ``cfg`` with the preset's values; unknown keys are a programming error."""
    raw = cfg.to_dict()
    for section, values in preset.items():
        raw[section].update(values)
    return RunConfig.from_dict(raw)


def demo_config() -> RunConfig:
    return apply_preset(RunConfig(data=dataclasses.replace(RunConfig().data, datasets=["identity"])), DEMO_PRESET)


def grpo_config() -> RunConfig:
    return apply_preset(RunConfig(), GRPO_PRESET)
