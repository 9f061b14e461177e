"""Model and tokenizer loading: local folders, hub ids, the embedded demo model, adapters."""

from __future__ import annotations

import os
from pathlib import Path

from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

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
    check_remote_code(path, trust_remote_code)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise _load_failure(model_name_or_path, "the tokenizer of", exc) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(model_name_or_path: str, dtype=None, trust_remote_code: bool = False, reward_head: bool = False,
               hub: str = "auto", **kwargs):
    """The causal LM (or, with ``reward_head``, the same body with a one-score head for reward modelling)."""
    path = resolve_model_path(model_name_or_path, hub)
    check_remote_code(path, trust_remote_code)
    if os.path.isdir(path):
        refuse_unsafe_weights(Path(path), "model folder", has_model_safetensors(Path(path)))
    if reward_head:
        kwargs["num_labels"] = 1
    auto = AutoModelForSequenceClassification if reward_head else AutoModelForCausalLM
    try:
        # use_safetensors: a hub model is never fetched as pickle weights either.
        return auto.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code,
                                    use_safetensors=True, **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_failure(model_name_or_path, "model", exc) from None


def load_with_checkpoint(model_name_or_path: str, adapter_path: str = "", dtype=None,
                         trust_remote_code: bool = False, log=print, hub: str = "auto"):
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
        return load_model(source, dtype=dtype, trust_remote_code=trust_remote_code), tokenizer, kind
    tokenizer = load_tokenizer(model_name_or_path, trust_remote_code, hub)
    model = load_model(model_name_or_path, dtype=dtype, trust_remote_code=trust_remote_code, hub=hub)
    if kind == "lora":
        *parents, _ = chain
        for parent in parents:  # LoRA is additive: merging the parents first gives what training saw
            model = PeftModel.from_pretrained(model, parent).merge_and_unload()
            log(f"merged parent adapter {parent}")
        try:
            model = PeftModel.from_pretrained(model, adapter_path, is_trainable=False)
        except Exception as exc:  # noqa: BLE001 - peft raises several types for an adapter that does not fit the base
            raise ModelLoadError(f"cannot attach adapter {adapter_path!r} to {model_name_or_path!r}: "
                                 f"{first_line(exc)}") from None
        log(f"attached LoRA adapter {adapter_path}")
    return model, tokenizer, kind
