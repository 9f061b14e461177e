"""GaLore, APOLLO and BAdam: optimizers that save memory in full (and, for GaLore and APOLLO, freeze) training.

GaLore and APOLLO go through the transformers Trainer's own support (its ``galore_*`` / ``apollo_*`` optimizers);
they need the names of the linear layers to project, known once the model is loaded. BAdam wraps the Trainer's
optimizer in the badam package's block optimizers, set on the trainer before it trains.
"""

from __future__ import annotations

from types import MethodType

from torch import nn

from engine.core.config import LOW_RANK_VARIANTS, ConfigError, RunConfig


def optimizer_arguments(cfg: RunConfig) -> dict:
    """Trainer arguments of the GaLore or APOLLO optimizer (nothing for the others)."""
    name = cfg.memory_optimizer()
    if name not in LOW_RANK_VARIANTS:
        return {}
    section = getattr(cfg, name)
    options = {"rank": section.rank, "update_proj_gap": section.update_interval, "scale": section.scale,
               "proj_type": "std"}
    if name == "apollo":
        options.update(proj="random", scale_type="channel")  # APOLLO's published setting (LlamaBoard's default)
    return {"optim": LOW_RANK_VARIANTS[name][cfg.train.optim],
            "optim_args": ",".join(f"{key}={value}" for key, value in options.items())}


def low_rank_targets(model, target: str, field_name: str) -> list[str]:
    """Full names of the trainable linear layers ``target`` names ("all": every one but the output layer and a reward
    head), matched by any part of their dotted name (``mlp`` takes a layer's whole MLP, ``q_proj`` one projection).
    Frozen layers (freeze method) are left out: they have no gradients to project."""
    wanted = {t.strip() for t in target.split(",") if t.strip()}
    every = not wanted or wanted == {"all"}
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or module is output or name.split(".")[-1] == "score":
            continue
        if not module.weight.requires_grad:
            continue
        if every or wanted & set(name.split(".")):
            names.append(name)
    if not names:
        raise ConfigError(field_name, "no_target_modules", target=target)
    return names


def apply_memory_optimizer(trainer, cfg: RunConfig, log=print) -> None:
    """Finish setting up ``cfg``'s memory-saving optimizer on a built trainer (before ``train``)."""
    name = cfg.memory_optimizer()
    if name in LOW_RANK_VARIANTS:
        section = getattr(cfg, name)
        # The Trainer builds the optimizer when training starts, from its arguments: the layers are named there.
        trainer.args.optim_target_modules = low_rank_targets(trainer.model, section.target, f"{name}.target")
        optim = getattr(trainer.args.optim, "value", trainer.args.optim)  # TrainingArguments holds an enum
        log(f"{name}: {optim} on {len(trainer.args.optim_target_modules)} linear layers, rank "
            f"{section.rank}, projection updated every {section.update_interval} steps, scale {section.scale:g}")
    elif name == "badam":
        trainer.optimizer = _badam_optimizer(trainer.model, trainer.args, cfg)
        _adapt_trainer_to_badam(trainer, cfg)
        b = cfg.badam
        log(f"badam: layer-wise, {b.switch_mode} order, next layer every {b.switch_interval} steps" if b.mode == "layer"
            else f"badam: ratio-wise, {b.update_ratio:g} of each weight, new share every {b.switch_interval} steps")


def _badam_optimizer(model, args, cfg: RunConfig):
    from badam import BlockOptimizer, BlockOptimizerRatio  # noqa: PLC0415 - optional package, checked before loading
    from transformers import Trainer  # noqa: PLC0415 - heavy; only BAdam runs need its optimizer lookup

    b = cfg.badam
    named = list(model.named_parameters())
    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    if b.mode == "layer":
        base = optimizer_cls([p for _, p in named], **kwargs)
        return BlockOptimizer(base_optimizer=base, named_parameters_list=named, switch_block_every=b.switch_interval,
                              switch_mode=b.switch_mode, verbose=0)
    # badam freezes the embeddings and output layer it finds by name: a tied or unnamed one is already covered.
    has = {part: any(part in n for n, _ in named) for part in ("embed", "lm_head")}
    adam = {key: kwargs[key] for key in ("lr", "betas", "eps") if key in kwargs}
    return BlockOptimizerRatio(param_groups=[{"params": [p for _, p in named]}], named_parameters_list=named,
                               update_ratio=b.update_ratio, switch_every=b.switch_interval, verbose=0,
                               include_embedding=not has["embed"], include_lm_head=not has["lm_head"], **adam)


def _adapt_trainer_to_badam(trainer, cfg: RunConfig) -> None:
    from badam import BAdamCallback, clip_grad_norm_old_version  # noqa: PLC0415 - optional package

    if cfg.badam.mode == "ratio":
        # Ratio-wise BAdam leaves sparse gradients, which torch's fused norm cannot clip: badam's own clipping can.
        trainer.accelerator.clip_grad_norm_ = MethodType(clip_grad_norm_old_version, trainer.accelerator)
    trainer.add_callback(BAdamCallback)  # gradient checkpointing that follows the trained block
