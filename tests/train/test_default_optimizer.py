"""The default optimizer is fused AdamW: the Trainer builds it from the default config, and its update is the
per-parameter AdamW's (adamw_torch) on the CPU, where it runs one kernel instead of a dozen ops per parameter."""

import torch
from transformers import Trainer, TrainingArguments

from engine.core.config import RunConfig
from engine.train.trainers import training_arguments


def _lora_shaped(seed: int) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    shapes = [(8, 576), (576, 8), (8, 576), (192, 8), (8, 1536), (576, 8)]
    return [torch.nn.Parameter(torch.randn(s, generator=generator) * 0.02) for s in shapes]


def test_the_default_config_trains_with_fused_adamw(tmp_path):
    cfg = RunConfig()
    cfg.train.output_dir = str(tmp_path)
    args = TrainingArguments(**training_arguments(cfg, "cpu", "fp32"))
    model = torch.nn.Linear(4, 4)
    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    assert optimizer_cls is torch.optim.AdamW and kwargs.get("fused") is True


def test_fused_adamw_updates_as_the_per_parameter_loop_does():
    fused, looped = _lora_shaped(0), _lora_shaped(0)
    opt_fused = torch.optim.AdamW(fused, lr=1e-3, weight_decay=0.01, fused=True)
    opt_looped = torch.optim.AdamW(looped, lr=1e-3, weight_decay=0.01, foreach=False)
    for step in range(5):
        grads = _lora_shaped(100 + step)
        for a, b, g in zip(fused, looped, grads):
            a.grad, b.grad = g.detach().clone(), g.detach().clone()
        opt_fused.step()
        opt_looped.step()
    moved = max(float((a - b).abs().max()) for a, b in zip(fused, _lora_shaped(0)))
    assert moved > 1e-3  # the five steps changed the weights
    for a, b in zip(fused, looped):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
