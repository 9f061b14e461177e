"""Rows of one decoding batch through different LoRA adapters (Compare side by side, the arena): each adapter's
product computed on the rows that use it, one row at a time, scaled as peft scales it; the other rows keep the base
layer's output.

peft's own mixed batch (``adapter_names``) gathers each adapter's rows, runs the LoRA product on them and
scatters the result back, per layer and per token, behind a keyword-passing hook on every LoRA layer. For the
arena's two rows of the demo model that cost 20 ms a token on a 2-core Intel Xeon (61 ms a step against 41 for
the same two rows with no adapter). The sum is the one peft's single-adapter forward computes
(``result + B(A(x)) * scaling``), on each row alone, so a row's greedy answer is the one it gets alone
(tests/serve/test_mixed_lora.py). Layers it does not reproduce (an embedding or convolution LoRA, a merged layer,
dropout while training) keep peft's mixed batch; adapters with a LoRA variant (DoRA) cannot share a batch at all
(``batchable``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from peft.tuners.lora import Linear as LoraLinear
from peft.tuners.lora import LoraLayer


def batchable(model: torch.nn.Module, names: list[str]) -> bool:
    """Whether rows through the adapters ``names`` can share one batch: peft refuses a mixed batch where a LoRA
    variant (DoRA) is among them, and so does the masked sum."""
    return not any(isinstance(m, LoraLayer) and any(n in m.lora_variant for n in names) for m in model.modules())


def _row_scales(layer: LoraLinear, names: list[str], base_row: str, cache: dict) -> list | None:
    """(A's weight and bias, B's, the scaling left to multiply by, the rows through it) for each adapter ``names``
    uses in ``layer``, or None where the sum would not be peft's. The tensors are read once here: the adapters cannot
    change while a batch is answered (the chat engine's generation lock), and a module attribute costs more than the
    rank-8 product's ops. A scaling that is a power of two (peft's and LLaMA-Factory's default alpha = 2 x rank gives
    2) is multiplied into B: scaling by a power of two is exact, so B(A(x)) * s and (sB)(A(x)) are the same bits, one
    op fewer a layer."""
    if layer.merged or layer.training or layer.disable_adapters:
        return None
    plan = []
    for adapter in dict.fromkeys(n for n in names if n != base_row):
        if adapter not in layer.lora_A:
            continue  # peft skips a layer the adapter does not target
        if adapter in layer.lora_variant:
            return None  # (batchable keeps such rows apart)
        a, b, scaling = layer.lora_A[adapter], layer.lora_B[adapter], layer.scaling[adapter]
        if type(a) is not torch.nn.Linear or type(b) is not torch.nn.Linear:
            return None
        rows = [row for row, n in enumerate(names) if n == adapter]
        if scaling > 0 and math.frexp(scaling)[0] == 0.5:  # a power of two
            plan.append((a.weight, a.bias, b.weight * scaling, None if b.bias is None else b.bias * scaling, None,
                         rows))
            continue
        key = (scaling, b.weight.dtype, b.weight.device)
        if key not in cache:  # a tensor, made once: not one per layer and token
            cache[key] = torch.tensor(scaling, dtype=b.weight.dtype, device=b.weight.device).view(1, 1, 1)
        plan.append((a.weight, a.bias, b.weight, b.bias, cache[key], rows))
    return plan


def _delta(h: torch.Tensor, a, a_bias, b, b_bias, scale) -> torch.Tensor:
    """peft's B(A(x)) * scaling, ``h`` already in the adapter's dtype (dropout is off in eval)."""
    delta = F.linear(F.linear(h, a, a_bias), b, b_bias)
    return delta if scale is None else delta * scale


class _Converted:
    """The last input converted to an adapter's dtype: sibling layers (q/k/v, gate/up) are called with one input
    object, and convert it once."""

    def __init__(self) -> None:
        self.source = self.converted = None

    def __call__(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        if x.dtype == dtype:
            return x
        if self.source is not x or self.converted.dtype != dtype:
            self.source, self.converted = x, x.to(dtype)
        return self.converted


def _adder(plan: list, converted: _Converted, rows_alone: bool = True):
    """What adds the adapters of ``plan`` to a layer's base output for ``x``, in place (the output is fresh: a
    product's own tensor, or its own part of a joint product). peft adds B(A(x)) * scaling to the base output in the
    adapter's dtype and rounds the sum to the output's once; an in-place add computes in the wider dtype and rounds
    once too."""

    def add(result: torch.Tensor, x: torch.Tensor) -> None:
        if x.dim() < 3 or x.shape[0] == 1:
            if len(plan) == 1:
                a, a_bias, b, b_bias, scale, _rows = plan[0]
                result.add_(_delta(converted(x, a.dtype), a, a_bias, b, b_bias, scale))
                return
            total = result
            for a, a_bias, b, b_bias, scale, _rows in plan:  # peft's sums, in its order, rounded once
                total = total + _delta(converted(x, a.dtype), a, a_bias, b, b_bias, scale)
            result.copy_(total)
            return
        # Several rows: each row's product alone, only where its adapter is (a product of two rows may sum in another
        # order than one of one row, and a row's greedy answer would then leave the one it gets alone). Unless each
        # row need not be its answer alone: rows all through one adapter then take one product, as peft's own forward
        # takes a batch through one adapter.
        for a, a_bias, b, b_bias, scale, rows in plan:
            h = converted(x, a.dtype)
            if not rows_alone and len(rows) == x.shape[0]:
                result.add_(_delta(h, a, a_bias, b, b_bias, scale))
                continue
            for row in rows:
                result[row:row + 1].add_(_delta(h[row:row + 1], a, a_bias, b, b_bias, scale))

    return add


def _masked_forward(layer: LoraLinear, plan: list, converted: _Converted, rows_alone: bool = True):
    # Bare linears where the modules are plain nn.Linear (dropout is off in eval): a step of a two-row batch calls
    # some 200 LoRA layers, and each module call saved is a few microseconds of Python per layer.
    base = layer.base_layer
    # (a hooked base layer, accelerate's offloading for one, is called as a module)
    plain = type(base) is torch.nn.Linear and not (base._forward_hooks or base._forward_pre_hooks)
    add = _adder(plan, converted, rows_alone)

    def forward(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        # (base.forward: its packed weights where engine.serve.packed_linears is in force)
        result = base.forward(x) if plain and not args and not kwargs else base(x, *args, **kwargs)
        if plan:  # (none: no adapter of the batch in this layer: rows all of the base model, or untargeted)
            add(result, x)
        return result

    # For callers that compute the base layer's output themselves (engine.serve.decode_step, as part of a joint
    # product): nothing to add, or what adds it.
    forward.base_only = not plan and plain
    forward.add_adapters = add if plan and plain else None
    return forward


@contextlib.contextmanager
def rows_through_adapters(model: torch.nn.Module, names: list[str], base_row: str,
                          rows_alone: bool = True) -> Iterator[None]:
    """Within it, row i of a batch goes through adapter ``names[i]`` (``base_row``: none) in every LoRA layer of
    ``model``; the layers' adapters must be enabled. ``rows_alone``: each row gets the bits it gets alone (chat,
    Compare, the arena); off, rows through one adapter share its products (Evaluate & Predict's batches)."""
    def give_names(_module, args, kwargs):  # peft's own mixed batch, as its PeftModel passes the names
        kwargs["adapter_names"] = names
        return args, kwargs

    cache: dict = {}
    converted = _Converted()
    patched, hooks = [], []
    try:
        for module in model.modules():
            if not isinstance(module, LoraLayer):
                continue
            plan = _row_scales(module, names, base_row, cache) if isinstance(module, LoraLinear) else None
            if plan is None:
                hooks.append(module.register_forward_pre_hook(give_names, with_kwargs=True))
            else:
                # (an instance attribute: shadows the class's)
                module.forward = _masked_forward(module, plan, converted, rows_alone)
                patched.append(module)
        yield
    finally:
        for module in patched:
            del module.forward
        for hook in hooks:
            hook.remove()
