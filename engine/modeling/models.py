"""Model and tokenizer loading: local folders, hub ids, the embedded demo model, adapters."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from peft import PeftModel
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from engine.core.download import ensure_model
from engine.core.model_files import (
    ModelLoadError,
    adapter_chain,
    check_checkpoint,
    check_remote_code,
    first_line,
    has_model_safetensors,
    has_tokenizer_files,
    refuse_unsafe_weights,
    remote_code_error,
)
from engine.core.model_options import rope_plan
from engine.modeling.expansion import embedding_names


def resolve_model_path(model_name_or_path: str, hub: str = "auto") -> str:
    """A local folder transformers can load: a local folder as it is, the demo alias converted once, a hub id of
    ``hub`` downloaded first (engine.core.download; found on disk without the network once downloaded)."""
    return ensure_model(model_name_or_path, hub)


def _load_failure(model_name_or_path: str, what: str, exc: BaseException) -> ModelLoadError:
    """transformers' refusals in our words: remote code not allowed, or an architecture it does not know."""
    text = str(exc)
    if "trust_remote_code" in text:
        return remote_code_error(model_name_or_path)
    if "does not recognize this architecture" in text or "Unrecognized model" in text:
        return ModelLoadError(f"{model_name_or_path!r} is a model type this transformers version does not know "
                              f"({first_line(exc)}); if it ships its own code, tick 'Trust remote code' only if "
                              "you trust it", key="unknown_model", path=model_name_or_path)
    return ModelLoadError(f"cannot load {what} {model_name_or_path!r}: {first_line(exc)}", key="load_failed",
                          path=model_name_or_path, error=first_line(exc))


def load_tokenizer(model_name_or_path: str, trust_remote_code: bool = False, hub: str = "auto"):
    path = resolve_model_path(model_name_or_path, hub)
    return _tokenizer_in(path, model_name_or_path, trust_remote_code)


def _tokenizer_in(path: str, name: str, trust_remote_code: bool):
    """The tokenizer in folder ``path`` (``name``: how the user knows it), a pad token set."""
    check_remote_code(path, trust_remote_code)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise _load_failure(name, "the tokenizer of", exc) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@dataclass(frozen=True)
class LoadOptions:
    """The top bar's model-load options (model.rope_scaling, model.booster); ``rope_length`` is the training
    cutoff (None: inference, see engine.core.model_options)."""

    rope_scaling: str = "none"
    booster: str = "auto"
    rope_length: int | None = None

    @classmethod
    def of(cls, cfg, training: bool = False) -> LoadOptions:
        return cls(cfg.model.rope_scaling, cfg.model.booster, cfg.data.cutoff_len if training else None)


def load_model(model_name_or_path: str, dtype=None, trust_remote_code: bool = False, reward_head: bool = False,
               hub: str = "auto", options: LoadOptions = LoadOptions(), log=print, **kwargs):
    """The causal LM (or, with ``reward_head``, the same body with a one-score head for reward modelling)."""
    path = resolve_model_path(model_name_or_path, hub)
    check_remote_code(path, trust_remote_code)
    if os.path.isdir(path):
        refuse_unsafe_weights(Path(path), "model folder", has_model_safetensors(Path(path)))
    if reward_head:
        kwargs["num_labels"] = 1
    auto = AutoModelForSequenceClassification if reward_head else AutoModelForCausalLM
    try:
        if options.rope_scaling != "none":
            labels = kwargs.pop("num_labels", None)
            kwargs["config"] = _rope_scaled_config(path, trust_remote_code, options, log, labels)
        if options.booster == "flashattn2":
            kwargs["attn_implementation"] = "flash_attention_2"
        # use_safetensors: a hub model is never fetched as pickle weights either.
        model = auto.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code,
                                     use_safetensors=True, **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_failure(model_name_or_path, "model", exc) from None
    if options.booster == "liger_kernel":
        from liger_kernel.transformers import _apply_liger_kernel_to_instance  # noqa: PLC0415 - optional, CUDA only

        _apply_liger_kernel_to_instance(model=model)
        log("booster: Liger kernels applied")
    return model


def _rope_scaled_config(path: str, trust_remote_code: bool, options: LoadOptions, log, num_labels=None):
    """The model's config with RoPE scaling applied (engine.core.model_options.rope_plan), the plan logged."""
    extra = {} if num_labels is None else {"num_labels": num_labels}
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **extra)
    text = getattr(config, "get_text_config", lambda: config)()
    plan = rope_plan(options.rope_scaling, getattr(text, "rope_parameters", None),
                     getattr(text, "max_position_embeddings", None), options.rope_length)
    log(plan.log_line())
    if plan.parameters is not None:
        text.rope_parameters = plan.parameters
        text.max_position_embeddings = plan.max_positions
    return config


def fit_adapter_vocab(model, adapter_path: str, log=print) -> bool:
    """Grow ``model``'s embeddings to those an adapter trained with resize vocab saved (peft cannot attach them to
    smaller ones); True when it did."""
    weights = Path(adapter_path) / "adapter_model.safetensors"
    names = embedding_names(model)
    if not weights.is_file() or not names:
        return False
    with safe_open(str(weights), framework="pt") as f:
        rows = max((f.get_slice(k).get_shape()[0] for k in f.keys()  # noqa: SIM118 - safe_open is no mapping
                    if k.endswith(".weight") and any(f".{n}." in f".{k}" for n in names)), default=0)
    current = model.get_input_embeddings().weight.shape[0]
    if rows <= current:
        return False
    model.resize_token_embeddings(rows)
    log(f"embeddings resized {current} -> {rows} rows for adapter {adapter_path} (trained with resize vocab)")
    return True


def load_with_checkpoint(model_name_or_path: str, adapter_path: str = "", dtype=None,
                         trust_remote_code: bool = False, log=print, hub: str = "auto",
                         options: LoadOptions = LoadOptions()):
    """(model, tokenizer, kind) for evaluation and export.

    kind is ``None`` when there is no checkpoint (the base model itself), ``"lora"`` when
    ``adapter_path`` is a LoRA adapter (the model is a peft ``PeftModel`` around the base, so
    ``model.disable_adapter()`` gives the base and ``merge_and_unload()`` merges it), or ``"full"``
    when it is a whole model folder from a full/freeze run (loaded as the model; its own tokenizer
    if it saved one, else the base model's). Pickle-only checkpoints are refused by ``check_checkpoint``.
    """
    kind = check_checkpoint(adapter_path) if adapter_path else None
    chain = adapter_chain(adapter_path) if kind == "lora" else []  # a refused parent fails before any loading
    if kind == "full":
        source = adapter_path
        tokenizer = load_tokenizer(adapter_path if has_tokenizer_files(adapter_path) else model_name_or_path,
                                   trust_remote_code, hub)
        log(f"checkpoint {adapter_path} is a whole model (full/freeze run): loading it as the model")
        model = load_model(source, dtype=dtype, trust_remote_code=trust_remote_code, options=options, log=log)
        return model, tokenizer, kind
    tokenizer = load_tokenizer(model_name_or_path, trust_remote_code, hub)
    model = load_model(model_name_or_path, dtype=dtype, trust_remote_code=trust_remote_code, hub=hub,
                       options=options, log=log)
    if kind == "lora":
        *parents, _ = chain
        for parent in parents:  # LoRA is additive: merging the parents first gives what training saw
            fit_adapter_vocab(model, parent, log)
            model = PeftModel.from_pretrained(model, parent).merge_and_unload()
            log(f"merged parent adapter {parent}")
        if fit_adapter_vocab(model, adapter_path, log) and has_tokenizer_files(adapter_path):
            # the tokenizer whose tokens the new rows are (the adapter folder has no config.json to load it by)
            tokenizer = _tokenizer_in(adapter_path, adapter_path, trust_remote_code)
        try:
            model = PeftModel.from_pretrained(model, adapter_path, is_trainable=False)
        except Exception as exc:  # noqa: BLE001 - peft raises several types for an adapter that does not fit the base
            raise ModelLoadError(f"cannot attach adapter {adapter_path!r} to {model_name_or_path!r}: "
                                 f"{first_line(exc)}") from None
        log(f"attached LoRA adapter {adapter_path}")
    return model, tokenizer, kind
