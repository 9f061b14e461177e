"""bf16 decoding for chat on CPUs that compute bf16 natively (AVX512-BF16 or AMX): the weights' precision, and the
matrix-vector kernel that one-token steps go through.

Decoding one token reads every weight once, so a decode step is bound by memory bandwidth: bf16 weights halve the
bytes read per token (bench/chat_bench.py measures the bandwidth and the limit it sets). CPUs without native bf16
keep fp32 (bf16 is emulated there, far slower). But a decode step's linear layers multiply one row by the weight
matrix, and torch's bf16 ``linear`` of one row reads its weights at about half the rate of fp32's (oneDNN's matmul,
measured on a 2-core Intel Xeon with AMX: a 576x576 layer 57 us in bf16 against 21 us in fp32), while ``torch.mv``
takes 32 us; so during chat's ``generate`` the linears of one row go through ``torch.mv`` (``one_row_linears``).
Two rows (Compare side by side) keep ``linear``: one ``mv`` per row made a round 1.2x slower.
Switches: TUNEBOARD_CHAT_BF16=0 keeps fp32 weights, TUNEBOARD_CHAT_GEMV=0 keeps ``linear``.

Measured and not kept (same machine, other work on it, ratios inside one process, one thread): our own decode loop
with a static KV cache, eager: 0.96x of ``generate`` (the static cache attends over its whole length); the same with
``torch.compile`` of the one-token step: 1.1x, after 52 s of compilation, and its greedy answer was not
``generate``'s (inductor's fused bf16 arithmetic rounds differently), so chat keeps ``generate``.
"""

from __future__ import annotations

import contextlib

import torch
from torch.overrides import TorchFunctionMode

from engine.core.devices import cpu_has_native_bf16, inference_dtype
from engine.core.switches import env_switch

BF16_SWITCH = "TUNEBOARD_CHAT_BF16"
GEMV_SWITCH = "TUNEBOARD_CHAT_GEMV"


def chat_dtype(device: str) -> torch.dtype:
    """The dtype chat loads a model's weights in on ``device``."""
    if device == "cpu" and env_switch(BF16_SWITCH) and cpu_has_native_bf16():
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
