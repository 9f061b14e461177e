"""The top bar's model-load options worked out without torch: RoPE scaling parameters and what a booster needs.

RoPE scaling follows LlamaBoard's rule: training with a cutoff beyond the model's trained length scales by
ceil(cutoff / trained length) (a cutoff within it: no scaling, as there is nothing to stretch); chat and
evaluation, which know no length in advance, scale by 2. transformers 5 keeps the parameters in
``config.rope_parameters`` (``rope_type``, ``factor``, and for some types the trained length).
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass

from engine.core.config import CUDA_BOOSTERS, ConfigError

INFERENCE_FACTOR = 2.0

# Each of CUDA_BOOSTERS -> (import name, pip name) of the package it needs besides a CUDA GPU.
BOOSTER_PACKAGES = {"flashattn2": ("flash_attn", "flash-attn"), "liger_kernel": ("liger_kernel", "liger-kernel")}


@dataclass(frozen=True)
class RopePlan:
    """What RoPE scaling does to a model's config: the new ``rope_parameters`` and ``max_position_embeddings``;
    ``parameters`` None when it leaves the model as it is (``reason`` says why)."""

    parameters: dict | None
    max_positions: int | None
    reason: str

    def log_line(self) -> str:
        return f"RoPE scaling: {self.reason}"


def rope_plan(rope_scaling: str, rope_parameters: dict | None, max_positions: int | None,
              cutoff_len: int | None) -> RopePlan:
    """The RoPE parameters for ``rope_scaling`` given the model's own (``rope_parameters``, ``max_positions``);
    ``cutoff_len`` is the training length, None for inference."""
    if rope_scaling == "none":
        return RopePlan(None, None, "none")
    current = dict(rope_parameters or {})
    if any(isinstance(v, dict) for v in current.values()):
        return RopePlan(None, None, "the model has its own RoPE per layer type: left as it is")
    if "factor" in current and current.get("rope_type", "default") != "default":
        trained = current.get("original_max_position_embeddings") or max_positions
    else:
        trained = max_positions
    if not trained:
        return RopePlan(None, None, "the model's config names no maximum position: left as it is")
    if cutoff_len is not None:
        if cutoff_len <= trained:
            return RopePlan(None, None, f"cutoff {cutoff_len} is within the model's {trained} positions: not "
                                        "scaled")
        factor = float(math.ceil(cutoff_len / trained))
    else:
        factor = INFERENCE_FACTOR
    params = {"rope_type": rope_scaling, "factor": factor}
    if "rope_theta" in current:
        params["rope_theta"] = current["rope_theta"]
    if "partial_rotary_factor" in current:
        params["partial_rotary_factor"] = current["partial_rotary_factor"]
    if rope_scaling in ("dynamic", "yarn", "llama3"):
        params["original_max_position_embeddings"] = trained
    if rope_scaling == "llama3":  # Llama 3.1's own values
        params.update(low_freq_factor=1.0, high_freq_factor=4.0)
    new_max = int(trained * factor)
    return RopePlan(params, new_max, f"{rope_scaling}, factor {factor:g}: {trained} -> {new_max} positions")


def check_booster(booster: str, device: str) -> None:
    """Refuse a booster this device or environment cannot run, saying what it needs (ConfigError on
    ``model.booster``)."""
    if booster not in CUDA_BOOSTERS:
        return
    module, package = BOOSTER_PACKAGES[booster]
    if device != "cuda":
        raise ConfigError("model.booster", "booster_needs_cuda", booster=booster, device=device)
    if importlib.util.find_spec(module) is None:
        raise ConfigError("model.booster", "booster_needs_package", booster=booster, package=package,
                          command=f"pip install {package}")
