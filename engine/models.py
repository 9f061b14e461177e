"""Model and tokenizer loading: local folders, hub ids, the embedded demo model, adapters."""

from __future__ import annotations

import json

import os
from dataclasses import dataclass
from pathlib import Path

from engine.demo_model import DEMO_MODEL_ID, ensure_demo_model, is_demo


@dataclass(frozen=True)
class KnownModel:
    name: str
    path: str
    template: str = "auto"


# Shown in the model list: the embedded demo first, then well-known hub models.
KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel("SmolLM2-135M-Instruct (demo)", DEMO_MODEL_ID),
    KnownModel("SmolLM2-360M-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct"),
    KnownModel("SmolLM2-1.7B-Instruct", "HuggingFaceTB/SmolLM2-1.7B-Instruct"),
    KnownModel("Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct", "qwen"),
    KnownModel("Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct", "qwen"),
    KnownModel("Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "qwen"),
    KnownModel("Qwen3-0.6B", "Qwen/Qwen3-0.6B"),
    KnownModel("Qwen3-4B", "Qwen/Qwen3-4B"),
    KnownModel("Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-1B-Instruct", "llama3"),
    KnownModel("Llama-3.2-3B-Instruct", "meta-llama/Llama-3.2-3B-Instruct", "llama3"),
    KnownModel("Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct", "llama3"),
    KnownModel("gemma-2-2b-it", "google/gemma-2-2b-it"),
    KnownModel("Mistral-7B-Instruct-v0.3", "mistralai/Mistral-7B-Instruct-v0.3"),
    KnownModel("Phi-3.5-mini-instruct", "microsoft/Phi-3.5-mini-instruct"),
)

CUSTOM_MODEL = "Custom"


def known_model(name: str) -> KnownModel | None:
    return next((m for m in KNOWN_MODELS if m.name == name), None)


class ModelLoadError(RuntimeError):
    """The model cannot be loaded; the message says which path and why."""


def resolve_model_path(model_name_or_path: str) -> str:
    """A path or hub id transformers can load; the demo alias is converted once into the cache."""
    name = model_name_or_path.strip()
    if not name:
        raise ModelLoadError("no model path given")
    if "\x00" in name:
        raise ModelLoadError("model path contains a NUL byte")
    if is_demo(name):
        return str(ensure_demo_model())
    expanded = os.path.expanduser(name)
    if os.path.isabs(expanded) or name.startswith(".") or os.path.exists(expanded):
        if not os.path.isdir(expanded):
            raise ModelLoadError(f"model folder {name!r} does not exist")
        if not os.path.isfile(os.path.join(expanded, "config.json")):
            raise ModelLoadError(f"{name!r} has no config.json: not a Hugging Face model folder")
        return expanded
    return name  # a hub id


def _needs_remote_code(path: str) -> bool:
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    import json  # noqa: PLC0415

    try:
        return "auto_map" in json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def load_tokenizer(model_name_or_path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer  # noqa: PLC0415

    path = resolve_model_path(model_name_or_path)
    _check_remote_code(path, trust_remote_code)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise ModelLoadError(f"cannot load the tokenizer of {model_name_or_path!r}: {_first_line(exc)}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(model_name_or_path: str, dtype=None, trust_remote_code: bool = False, reward_head: bool = False,
               **kwargs):
    """The causal LM (or, with ``reward_head``, the same body with a one-score head for reward modelling)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification  # noqa: PLC0415

    path = resolve_model_path(model_name_or_path)
    _check_remote_code(path, trust_remote_code)
    if reward_head:
        kwargs["num_labels"] = 1
    auto = AutoModelForSequenceClassification if reward_head else AutoModelForCausalLM
    try:
        return auto.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code, **kwargs)
    except OSError as exc:
        raise ModelLoadError(f"cannot load model {model_name_or_path!r}: {_first_line(exc)}") from None


def _check_remote_code(path: str, trust_remote_code: bool) -> None:
    if not trust_remote_code and _needs_remote_code(path):
        raise ModelLoadError(f"{path!r} ships its own model code; tick 'trust remote code' only if you trust it")


def check_checkpoint(path: str | Path) -> str:
    """'lora' for an adapter folder, 'full' for a model folder; refuses pickle-only weights."""
    p = Path(path)
    if not p.is_dir():
        raise ModelLoadError(f"checkpoint {str(path)!r} does not exist")
    if (p / "adapter_config.json").is_file():
        if not (p / "adapter_model.safetensors").is_file():
            raise ModelLoadError(f"checkpoint {str(path)!r} has no adapter_model.safetensors (pickle weights are refused)")
        return "lora"
    if (p / "config.json").is_file():
        if not any(p.glob("*.safetensors")):
            raise ModelLoadError(f"checkpoint {str(path)!r} has no safetensors weights (pickle weights are refused)")
        return "full"
    raise ModelLoadError(f"{str(path)!r} is neither a LoRA adapter nor a model folder")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def has_tokenizer_files(path: str | Path) -> bool:
    """Whether a folder carries its own tokenizer (a full checkpoint saved by the Trainer does)."""
    p = Path(path)
    return (p / "tokenizer.json").is_file() or (p / "tokenizer_config.json").is_file() \
        or (p / "tokenizer.model").is_file()


PARENTS_FILE = "tuneboard_parents.json"


def adapter_chain(path: str | Path) -> list[str]:
    """The adapters that make up ``path``: those it was trained on top of ("create new adapter": merged into
    the base before it was trained), then itself."""
    try:
        parents = json.loads((Path(path) / PARENTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        parents = []
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise ModelLoadError(f"{PARENTS_FILE} in {str(path)!r} must be a list of adapter folders")
    for parent in parents:
        check_checkpoint(parent)
    return [*parents, str(path)]


def load_with_checkpoint(model_name_or_path: str, adapter_path: str = "", dtype=None,
                         trust_remote_code: bool = False, log=print):
    """(model, tokenizer, kind) for evaluation and export.

    kind is ``None`` when there is no checkpoint (the base model itself), ``"lora"`` when
    ``adapter_path`` is a LoRA adapter (the model is a peft ``PeftModel`` around the base, so
    ``model.disable_adapter()`` gives the base and ``merge_and_unload()`` merges it), or ``"full"``
    when it is a whole model folder from a full/freeze run (loaded as the model; its own tokenizer
    if it saved one, else the base model's). Pickle-only checkpoints are refused by ``check_checkpoint``.
    """
    kind = check_checkpoint(adapter_path) if adapter_path else None
    if kind == "full":
        source = adapter_path
        tokenizer = load_tokenizer(adapter_path if has_tokenizer_files(adapter_path) else model_name_or_path,
                                   trust_remote_code)
        log(f"checkpoint {adapter_path} is a whole model (full/freeze run): loading it as the model")
        return load_model(source, dtype=dtype, trust_remote_code=trust_remote_code), tokenizer, kind
    tokenizer = load_tokenizer(model_name_or_path, trust_remote_code)
    model = load_model(model_name_or_path, dtype=dtype, trust_remote_code=trust_remote_code)
    if kind == "lora":
        from peft import PeftModel  # noqa: PLC0415

        *parents, _ = adapter_chain(adapter_path)
        for parent in parents:  # LoRA is additive: merging the parents first gives what training saw
            model = PeftModel.from_pretrained(model, parent).merge_and_unload()
            log(f"merged parent adapter {parent}")
        try:
            model = PeftModel.from_pretrained(model, adapter_path, is_trainable=False)
        except Exception as exc:  # peft raises several types for an adapter that does not fit the base
            raise ModelLoadError(f"cannot attach adapter {adapter_path!r} to {model_name_or_path!r}: "
                                 f"{_first_line(exc)}") from None
        log(f"attached LoRA adapter {adapter_path}")
    return model, tokenizer, kind
