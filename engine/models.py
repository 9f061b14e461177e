"""Model and tokenizer loading: local folders, hub ids, the embedded demo model, adapters."""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.demo_model import ensure_demo_model, is_demo


class ModelLoadError(RuntimeError):
    """The model cannot be loaded; the message says which path and why.

    ``key`` and ``params`` let the web UI show the same message in the user's language."""

    def __init__(self, message: str, key: str = "", **params) -> None:
        super().__init__(message)
        self.key, self.params = key, params


# Files torch.load / pickle would read: loading one can run arbitrary code, so weights are read from
# safetensors only. (The Trainer's own optimizer.pt / rng_state.pth next to safetensors weights are fine:
# transformers reads those with weights_only=True, and we never load them ourselves.)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def _pickle_files(folder: Path) -> list[str]:
    return sorted(f.name for f in folder.iterdir() if f.is_file() and f.suffix.lower() in PICKLE_SUFFIXES)


def _refuse_unsafe_weights(folder: Path, what: str, safetensors: bool) -> None:
    """Refuse a folder whose weights exist only as pickle files (or not at all), naming the folder and files."""
    if safetensors:
        return
    pickles = _pickle_files(folder)
    if pickles:
        names = ", ".join(pickles)
        raise ModelLoadError(
            f"{what} {str(folder)!r} holds its weights only as pickle file(s) ({names}), which can run code "
            "when loaded; TuneBoard loads safetensors only. Convert them to safetensors first.",
            key="pickle_weights", folder=str(folder), files=names)
    raise ModelLoadError(f"{what} {str(folder)!r} has no safetensors weights", key="no_weights",
                         folder=str(folder))


def local_model_path(model_name_or_path: str) -> str | None:
    """The folder of a local model (the demo alias converted once into the cache), or None for a hub id.

    A path (absolute, starting with ".", or existing) is a local folder on every hub setting."""
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
            raise ModelLoadError(f"model folder {name!r} does not exist", key="model_missing", path=name)
        if not os.path.isfile(os.path.join(expanded, "config.json")):
            raise ModelLoadError(f"{name!r} has no config.json: not a Hugging Face model folder",
                                 key="no_config", path=name)
        return expanded
    return None


def resolve_model_path(model_name_or_path: str, hub: str = "auto") -> str:
    """A local folder transformers can load: a local folder as it is, the demo alias converted once, a hub id of
    ``hub`` downloaded first (engine.download; found on disk without the network once downloaded)."""
    from engine.download import ensure_model  # noqa: PLC0415 - it imports this module

    return ensure_model(model_name_or_path, hub)


def _needs_remote_code(path: str) -> bool:
    """Whether a local folder maps a model or tokenizer class to Python files it ships (``auto_map``)."""
    for name in ("config.json", "tokenizer_config.json"):
        try:
            data = json.loads((Path(path) / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("auto_map"):
            return True
    return False


def _load_failure(model_name_or_path: str, what: str, exc: BaseException) -> ModelLoadError:
    """transformers' refusals in our words: remote code not allowed, or an architecture it does not know."""
    text = str(exc)
    if "trust_remote_code" in text:
        return _remote_code_error(model_name_or_path)
    if "does not recognize this architecture" in text or "Unrecognized model" in text:
        return ModelLoadError(f"{model_name_or_path!r} is a model type this transformers version does not know "
                              f"({_first_line(exc)}); if it ships its own code, tick 'Trust remote code' only if "
                              "you trust it", key="unknown_model", path=model_name_or_path)
    return ModelLoadError(f"cannot load {what} {model_name_or_path!r}: {_first_line(exc)}", key="load_failed",
                          path=model_name_or_path, error=_first_line(exc))


def load_tokenizer(model_name_or_path: str, trust_remote_code: bool = False, hub: str = "auto"):
    from transformers import AutoTokenizer  # noqa: PLC0415

    path = resolve_model_path(model_name_or_path, hub)
    _check_remote_code(path, trust_remote_code)
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
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification  # noqa: PLC0415

    path = resolve_model_path(model_name_or_path, hub)
    _check_remote_code(path, trust_remote_code)
    if os.path.isdir(path):
        _refuse_unsafe_weights(Path(path), "model folder", _has_model_safetensors(Path(path)))
    if reward_head:
        kwargs["num_labels"] = 1
    auto = AutoModelForSequenceClassification if reward_head else AutoModelForCausalLM
    try:
        # use_safetensors: a hub model is never fetched as pickle weights either.
        return auto.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code,
                                    use_safetensors=True, **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_failure(model_name_or_path, "model", exc) from None


def _has_model_safetensors(folder: Path) -> bool:
    return (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()


def _remote_code_error(path: str) -> ModelLoadError:
    return ModelLoadError(f"model {path!r} ships its own Python code (auto_map); it is loaded only with "
                          "'Trust remote code' ticked - tick it only if you trust its source",
                          key="remote_code", path=path)


def _check_remote_code(path: str, trust_remote_code: bool) -> None:
    if not trust_remote_code and _needs_remote_code(path):
        raise _remote_code_error(path)


def check_checkpoint(path: str | Path) -> str:
    """'lora' for an adapter folder, 'full' for a model folder; refuses pickle-only weights."""
    p = Path(path)
    if not p.is_dir():
        raise ModelLoadError(f"checkpoint {str(path)!r} does not exist", key="checkpoint_missing", path=str(path))
    if (p / "adapter_config.json").is_file():
        _refuse_unsafe_weights(p, "adapter folder", (p / "adapter_model.safetensors").is_file())
        return "lora"
    if (p / "config.json").is_file():
        _refuse_unsafe_weights(p, "checkpoint folder", _has_model_safetensors(p))
        return "full"
    raise ModelLoadError(f"{str(path)!r} is neither a LoRA adapter nor a model folder", key="not_checkpoint",
                         path=str(path))


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
    check_checkpoint(path)  # training goes on from it with peft directly, so it is checked here too
    return [*parents, str(path)]


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
        from peft import PeftModel  # noqa: PLC0415

        *parents, _ = chain
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
