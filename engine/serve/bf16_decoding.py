"""bf16 decoding for chat, opt-in (TUNEBOARD_CHAT_BF16=1) on CPUs that compute bf16 natively (AVX512-BF16 or AMX):
the weights' precision, and the matrix-vector kernel one-token steps go through.

Decoding one token reads every weight once, so bf16 weights halve the bytes read per token and double the
memory-bandwidth limit (bench/chat_bench.py measures it). But torch's bf16 kernels for one row read weights far
below the bandwidth: on a 2-core Intel Xeon with AMX, quiet, 2 threads, the 211 linears of one SmolLM2-135M step
take 25.3 ms in fp32 (21 GB/s, the machine's read bandwidth), 28.3 ms with bf16 ``linear`` (oneDNN) and 20.8 ms
with bf16 ``torch.mv`` (13 GB/s). So with bf16 weights, ``one_row_linears`` sends one-row linears through
``torch.mv`` (TUNEBOARD_CHAT_GEMV=0: ``linear``). Measured there, same process, alternating: streamed bf16 22.8
tokens/s against fp32 plain ``generate``'s 23.5 (0.97x); Compare side by side's round (two rows: ``linear``, LoRA
in fp32 beside bf16) 6.8 s against fp32's 4.4 s. Hence off by default; it stayed faster only while other jobs
loaded both cores (streamed bf16 22.4 against fp32 plain 5.3 tokens/s: ``mv`` has fewer parallel regions to wait in).

Measured and not kept (same machine, one process, alternating): our own decode loop with a static KV cache (256
positions), eager: 0.96x of ``generate`` (one thread, other jobs running); with ``torch.compile`` of the one-token
step, quiet, 2 threads: fp32 30.4 against ``generate``'s 26.8 tokens/s (1.14x) after 38 s of compilation, greedy
tokens equal; bf16 28.2 against 23.7 (1.19x), greedy tokens not ``generate``'s (inductor's fused bf16 arithmetic
rounds differently). fp32 plain ``generate`` takes 38-42 ms a token there, 25 ms of it in the linears (at the read
bandwidth), the rest Python and small ops; a compiled step recovers only part of that.
"""

from __future__ import annotations

import contextlib
import os

import torch
from torch.overrides import TorchFunctionMode

from engine.core.devices import cpu_has_native_bf16, inference_dtype
from engine.core.switches import env_switch

BF16_SWITCH = "TUNEBOARD_CHAT_BF16"
GEMV_SWITCH = "TUNEBOARD_CHAT_GEMV"


def chat_dtype(device: str) -> torch.dtype:
    """The dtype chat loads a model's weights in on ``device``."""
    if device == "cpu" and os.environ.get(BF16_SWITCH) == "1" and cpu_has_native_bf16():
        return torch.bfloat16
    return inference_dtype(device)


def one_row_linears(model) -> contextlib.AbstractContextManager:
    """A context in which ``model``'s bf16 CPU linears of one row run as matrix-vector products (a
    no-op context for other models, or with TUNEBOARD_CHAT_GEMV=0)."""
    if model.dtype != torch.bfloat16 or model.device.type != "cpu" or not env_switch(GEMV_SWITCH):
        return contextlib.nullcontext()
    return RowLinears()


class RowLinears(TorchFunctionMode):
    """``F.linear`` of one bf16 row as ``torch.mv`` (see the module docstring)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.linear:
            x, weight = args[0], args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            if x.numel() == x.shape[-1] > 0 and x.dtype == torch.bfloat16 == weight.dtype and weight.dim() == 2:
                out = torch.mv(weight, x.reshape(-1)).reshape(*x.shape[:-1], weight.shape[0])
                return out if bias is None else out + bias
        return func(*args, **kwargs)
