"""Chat's weight precision on the CPU, chosen by measuring this machine at Load model.

Decoding one token reads every weight once, so bf16 weights halve the bytes read per token. Whether that makes
decoding faster depends on the CPU's one-row bf16 kernels, which differ widely between CPUs that all compute
bf16 natively (AVX512-BF16 or AMX):

- 2-core Intel Xeon with AMX (6 December): the 211 linears of one SmolLM2-135M step took 25.3 ms in fp32 (21 GB/s,
  the machine's read bandwidth), 28.3 ms with bf16 ``linear`` (oneDNN) and 20.8 ms with bf16 ``torch.mv``
  (13 GB/s); streamed bf16 through ``mv`` gave 0.97x fp32 plain ``generate``, a Compare round 6.8 s instead of 4.4;
- 2-core AMD EPYC with AVX512-BF16 (6 December): one-row bf16 ``linear`` through weights larger than the caches
  took 0.32x fp32's time (``mv``: 0.60x), through packed weights 0.18x; streamed bf16 through packed weights gave
  57.8 tokens/s against fp32 plain ``generate``'s 21.9 (2.6x); an arena round (base and a LoRA checkpoint, one
  batch) 2.0 s for two 64-token answers.

So :func:`decoding_choice` times one-row ``linear`` through weights shaped like the model's MLP (more of them than
the caches hold) in fp32 and in bf16, about 0.1 s once per process and shape, and takes bf16 only where it needs
at most ``BF16_MAX_TIME`` of fp32's time. bf16 is timed as chat runs it: through weights packed for oneDNN
(engine/serve/packed_linears.py; on the AMD EPYC 0.52-0.64x of plain bf16 ``linear``'s time). TUNEBOARD_CHAT_BF16=1/0
fixes the choice instead.

Measured and not kept: one-row bf16 linears through ``torch.mv`` (the AMX Xeon's faster bf16 kernel, 0.82x of
fp32's time there, no gain end to end): on the AMD EPYC its greedy answers left ``generate``'s after some 40 tokens
(it sums in another order). Our own decode loop with a static KV cache (256 positions), eager: 0.96x of
``generate`` (the Xeon, one thread, other jobs running); with ``torch.compile`` of the one-token step, quiet, 2
threads: fp32 30.4 against ``generate``'s 26.8 tokens/s (1.14x) after 38 s of compilation, greedy tokens equal;
bf16 28.2 against 23.7 (1.19x), greedy tokens not ``generate``'s (inductor's fused bf16 arithmetic rounds
differently).
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.core.devices import cpu_has_native_bf16, inference_dtype
from engine.serve.packed_linears import pack, packed_linear, packing_available

BF16_SWITCH = "TUNEBOARD_CHAT_BF16"
# bf16 is taken where its one-row products need at most this share of fp32's time: the rest of a decoding step
# (attention, norms, Python) does not shrink with the weights' bytes.
BF16_MAX_TIME = 0.7
_PROBE_BYTES = 64 << 20  # fp32 weights the probe runs through: more than a server CPU's last-level cache
_DEFAULT_SHAPE = (2048, 8192)  # (hidden, intermediate) when the model's config.json says neither


_LABELS = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}  # the names the UI uses


@dataclass(frozen=True)
class DecodingChoice:
    """Chat's weights dtype on a device, and why."""

    dtype: torch.dtype
    why: str = ""

    @property
    def label(self) -> str:
        return _LABELS.get(self.dtype, str(self.dtype).removeprefix("torch."))


def decoding_choice(device: str, model_path: str | None = None) -> DecodingChoice:
    """How chat decodes on ``device``: accelerators as :func:`inference_dtype`; the CPU as this machine measures
    (module docstring) or as TUNEBOARD_CHAT_BF16 says."""
    if device != "cpu":
        return DecodingChoice(inference_dtype(device), why="accelerator")
    if not cpu_has_native_bf16():
        return DecodingChoice(torch.float32, why="no native bf16 on this CPU")
    forced = os.environ.get(BF16_SWITCH, "").strip()
    if forced in ("0", "1"):
        return DecodingChoice(torch.float32 if forced == "0" else torch.bfloat16, why=f"{BF16_SWITCH}={forced}")
    fp32_s, bf16_s = probe_row_products(*_mlp_shape(model_path), torch.get_num_threads())
    why = f"one-row bf16 products took {bf16_s / fp32_s:.2f}x fp32's time here"
    return DecodingChoice(torch.bfloat16 if bf16_s <= BF16_MAX_TIME * fp32_s else torch.float32, why=why)


def _mlp_shape(model_path: str | None) -> tuple[int, int]:
    """(hidden size, MLP width) from the model folder's config.json (or its text model's), else a default."""
    try:
        config = json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8"))
    except (TypeError, OSError, ValueError):
        return _DEFAULT_SHAPE
    for part in (config, config.get("text_config") or {}):
        hidden, width = part.get("hidden_size"), part.get("intermediate_size")
        if isinstance(hidden, int) and isinstance(width, int) and hidden > 0 and width > 0:
            return hidden, width
    return _DEFAULT_SHAPE


@functools.lru_cache(maxsize=8)
def probe_row_products(hidden: int, width: int, threads: int) -> tuple[float, float]:  # noqa: ARG001 - a cache key
    """Seconds per one-row ``linear`` (fp32; bf16 through packed weights where oneDNN packs them) through
    ``width`` x ``hidden`` weights, going through more of them than the caches hold, best of three passes after a
    warm-up. Remembered per shape and thread count."""
    rows = max(1, min(width, _PROBE_BYTES // 4 // (4 * hidden)))  # at least 4 matrices, each at most the MLP's
    count = max(4, _PROBE_BYTES // (4 * hidden * rows))
    weights = [torch.full((rows, hidden), 0.01 * (i + 1)) for i in range(count)]
    x = torch.full((1, hidden), 0.5)

    def per_product(ws, row, product=F.linear) -> float:
        best = float("inf")
        with torch.inference_mode():
            for attempt in range(4):
                start = time.perf_counter()
                for w in ws:
                    product(row, w)
                if attempt:
                    best = min(best, time.perf_counter() - start)
        return best / len(ws)

    fp32_s = per_product(weights, x)
    halves = [w.bfloat16() for w in weights]
    if packing_available():  # what bf16 chat runs (engine.serve.packed_linears)
        packs = [pack(w) for w in halves]
        return fp32_s, per_product(packs, x.bfloat16(), lambda row, w: packed_linear(row, w, None))
    return fp32_s, per_product(halves, x.bfloat16())
