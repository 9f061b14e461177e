"""Model folders before anything is loaded: where a model is, whether its weights are safe to read (safetensors
only), whether a checkpoint is an adapter or a whole model, and the errors that say why not."""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.core.demo_model import ensure_demo_model, is_demo


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


def refuse_unsafe_weights(folder: Path, what: str, safetensors: bool) -> None:
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


def has_model_safetensors(folder: Path) -> bool:
    return (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()


def remote_code_error(path: str) -> ModelLoadError:
    return ModelLoadError(f"model {path!r} ships its own Python code (auto_map); it is loaded only with "
                          "'Trust remote code' ticked - tick it only if you trust its source",
                          key="remote_code", path=path)


def check_remote_code(path: str, trust_remote_code: bool) -> None:
    if not trust_remote_code and _needs_remote_code(path):
        raise remote_code_error(path)


def check_checkpoint(path: str | Path) -> str:
    """'lora' for an adapter folder, 'full' for a model folder; refuses pickle-only weights."""
    p = Path(path)
    if not p.is_dir():
        raise ModelLoadError(f"checkpoint {str(path)!r} does not exist", key="checkpoint_missing", path=str(path))
    if (p / "adapter_config.json").is_file():
        refuse_unsafe_weights(p, "adapter folder", (p / "adapter_model.safetensors").is_file())
        return "lora"
    if (p / "config.json").is_file():
        refuse_unsafe_weights(p, "checkpoint folder", has_model_safetensors(p))
        return "full"
    raise ModelLoadError(f"{str(path)!r} is neither a LoRA adapter nor a model folder", key="not_checkpoint",
                         path=str(path))


def first_line(exc: BaseException) -> str:
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


class ModelUnloaded(ModelLoadError):
    """The model was unloaded while this answer was being generated; the text streamed so far stands."""

    def __init__(self) -> None:
        super().__init__("the model was unloaded while answering", key="unloaded_mid_answer")
