"""GPTQ quantization of a merged export (LlamaBoard's export quantization bit and dataset), through transformers'
GPTQConfig, which runs the `gptqmodel` package. gptqmodel quantizes on NVIDIA GPUs (CUDA): elsewhere, or
without the package, the export is refused before anything is loaded, with a message naming what it needs.

Not run by TuneBoard's test suite, which has no CUDA device: the refusals are tested, this path is not.
"""

from __future__ import annotations

from pathlib import Path

from engine.core.config import ConfigError, RunConfig
from engine.core.data.loader import load_samples
from engine.core.export_checks import calibration_dataset, check_gptq_package
from engine.core.paths import confined_data_dir

CALIBRATION_SAMPLES = 128


def check_gptq(cfg: RunConfig, device: str) -> list[str]:
    """The calibration texts, once the device and package are known to be there (ConfigError otherwise)."""
    if device != "cuda":
        raise ConfigError("export.export_quantization_bit", "gptq_needs_cuda", device=device)
    check_gptq_package()
    spec = calibration_dataset(cfg)
    samples = load_samples(confined_data_dir(cfg.export.quantization_dataset_dir), [spec.name], CALIBRATION_SAMPLES)
    return [s.pretrain_text() for s in samples]


def quantize_gptq(folder: Path, tokenizer, bits: int, texts: list[str], max_shard_bytes: int, log=print) -> None:
    """Replace the merged weights in ``folder`` (the tokenizer is written there later) by their GPTQ-quantized
    form."""
    from transformers import AutoModelForCausalLM, GPTQConfig  # noqa: PLC0415 - GPTQ exports only

    config = GPTQConfig(bits=bits, dataset=texts, tokenizer=tokenizer)
    model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=config, device_map="cuda")
    for old in folder.glob("*.safetensors*"):
        old.unlink()
    model.save_pretrained(folder, max_shard_size=max_shard_bytes)
    log(f"quantized the weights to {bits}-bit GPTQ on {len(texts)} calibration samples")
