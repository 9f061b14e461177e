"""The weights' precision for chat: bf16 on CPUs that compute it natively (AVX512-BF16 or AMX), as on accelerators.

Decoding one token reads every weight once, so a decode step is bound by memory bandwidth: bf16 weights halve the
bytes read per token (bench/chat_bench.py measures the bandwidth and the limit it sets). CPUs without native bf16
keep fp32 (bf16 is emulated there, far slower). TUNEBOARD_CHAT_BF16=0 keeps fp32 on every CPU, to compare or to
rule it out.

Measured and not kept (2-core Intel Xeon with AMX, other work on the machine, ratios inside one process): our own
decode loop with a static KV cache, eager: 0.96x of ``generate`` (the static cache attends over its whole length);
the same with ``torch.compile`` of the one-token step: 1.1x, after 52 s of compilation, and its greedy answer was
not ``generate``'s (inductor's fused bf16 arithmetic rounds differently), so the streamed answer keeps using
``generate``.
"""

from __future__ import annotations

from engine.core.devices import cpu_has_native_bf16, inference_dtype
from engine.core.switches import env_switch

ENV_SWITCH = "TUNEBOARD_CHAT_BF16"


def chat_dtype(device: str):
    """The dtype chat loads a model's weights in on ``device``."""
    import torch  # noqa: PLC0415 - heavy import kept out of the web process's import time

    if device == "cpu" and env_switch(ENV_SWITCH) and cpu_has_native_bf16():
        return torch.bfloat16
    return inference_dtype(device)
