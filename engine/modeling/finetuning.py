"""What gets trained: LoRA and its variants (through peft), chosen layers (freeze), or everything (full)."""

from __future__ import annotations

from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from peft.optimizers import create_loraplus_optimizer
from transformers import Trainer

from engine.core.config import RunConfig
from engine.core.model_files import adapter_chain
from engine.modeling.expansion import embedding_names, expand_blocks, layer_list


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def lora_config(cfg: RunConfig, task_type: str = "CAUSAL_LM", embeddings: list[str] | None = None):
    """peft's LoraConfig for the form's LoRA settings (rsLoRA, DoRA, PiSSA, extra trained modules);
    ``embeddings``: the embedding layers' names, trained in full and saved with the adapter (resize vocab)."""
    lora = cfg.lora
    target = lora.target.strip()
    modules_to_save = _names(lora.additional_target)
    if task_type == "SEQ_CLS":
        modules_to_save.append("score")  # the reward head starts untrained: it must learn in full
    modules_to_save += [name for name in embeddings or [] if name not in modules_to_save]
    return LoraConfig(
        ensure_weight_tying=bool(embeddings),  # tied input and output embeddings stay one trained matrix
        task_type=task_type, r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        target_modules="all-linear" if target in ("all", "") else _names(target),
        modules_to_save=modules_to_save or None, use_rslora=lora.use_rslora, use_dora=lora.use_dora,
        # PiSSA through a fast randomised SVD: the exact one takes minutes on large layers.
        init_lora_weights="pissa_niter_16" if lora.pissa_init else True)


def apply_finetuning(model, cfg: RunConfig, log=print, task_type: str = "CAUSAL_LM"):
    """Wrap or freeze the model according to the fine-tuning method; returns the model to train."""
    method = cfg.train.finetuning_type
    if method == "lora":
        return _apply_lora(model, cfg, log, task_type)
    if method == "freeze":
        return _apply_freeze(model, cfg, log)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def _apply_lora(model, cfg: RunConfig, log, task_type: str):
    if getattr(model, "is_quantized", False):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    for parent in merged_parents(cfg):
        log(f"merging adapter {parent} into the base")
        model = PeftModel.from_pretrained(model, parent).merge_and_unload()
    if cfg.model.adapter_path and not cfg.lora.create_new_adapter:
        log(f"continuing training of adapter {cfg.model.adapter_path}")
        return PeftModel.from_pretrained(model, cfg.model.adapter_path, is_trainable=True)
    if cfg.model.adapter_path:
        log("training a new adapter on top")
    embeddings = embedding_names(model) if cfg.train.resize_vocab else None
    try:
        return get_peft_model(model, lora_config(cfg, task_type, embeddings))
    except ValueError as exc:
        raise ValueError(f"lora.target: {exc}") from None


def merged_parents(cfg: RunConfig) -> list[str]:
    """Adapters merged into the base before training: the selected one's own parents, and with "create
    new adapter" the selected one too. The new run records them (see engine.core.model_files.adapter_chain)."""
    if cfg.train.finetuning_type != "lora" or not cfg.model.adapter_path:
        return []
    chain = adapter_chain(cfg.model.adapter_path)
    return chain if cfg.lora.create_new_adapter else chain[:-1]


def _apply_freeze(model, cfg: RunConfig, log):
    freeze = cfg.freeze
    added = expand_blocks(model, freeze.trainable_layers, log) if freeze.use_llama_pro else None
    layers = decoder_layers(model)
    n = min(abs(freeze.trainable_layers), len(layers))
    chosen = layers[-n:] if freeze.trainable_layers > 0 else layers[:n]
    if added is not None:
        chosen, n = [layers[i] for i in added], len(added)
    wanted = _names(freeze.trainable_modules)
    train_all = not wanted or wanted == ["all"]
    trainable = set()
    for layer in chosen:
        for name, p in layer.named_parameters():
            if train_all or any(w in name.split(".") for w in wanted):
                trainable.add(id(p))
    extra = _names(freeze.extra_modules) + (embedding_names(model) if cfg.train.resize_vocab else [])
    for name, p in model.named_parameters():
        if any(e in name.split(".") for e in extra):
            trainable.add(id(p))
    if not trainable:
        raise ValueError("freeze.trainable_modules: no parameter in the chosen layers matches "
                         f"{freeze.trainable_modules!r}")
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)
    side = "added" if added is not None else "last" if freeze.trainable_layers > 0 else "first"
    log(f"freeze: training the {side} {n} of {len(layers)} layers"
        + ("" if train_all else f" (modules {', '.join(wanted)})") + (f" and {', '.join(extra)}" if extra else ""))
    return model


def decoder_layers(model):
    try:
        return list(layer_list(model))
    except ValueError:
        raise ValueError("cannot find the transformer layers of this model for the freeze method") from None


def loraplus_optimizer(model, cfg: RunConfig, args):
    """LoRA+ (B matrices learn ``loraplus_lr_ratio`` times faster) through peft's optimizer builder."""
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    optimizer_kwargs.pop("lr", None)
    return create_loraplus_optimizer(model, optimizer_cls, lr=args.learning_rate,
                                     loraplus_lr_ratio=cfg.lora.loraplus_lr_ratio,
                                     weight_decay=args.weight_decay, **optimizer_kwargs)
