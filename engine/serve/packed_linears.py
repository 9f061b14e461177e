"""Chat's linear layers on the CPU through oneDNN with their weights packed once, in bf16.

``F.linear`` in bf16 on the CPU runs oneDNN on the plain (out, in) weight at every call. Packed once into the
layout oneDNN's kernel reads (``torch.ops.mkldnn._reorder_linear_weight``, what inductor's weight freezing does),
the same products give the same bits: bf16 accumulates in fp32 in both, in the same order (tests/serve/
test_packed_linears.py). On a 2-core AMD EPYC with AVX512-BF16 (6 December), one-row products through the demo
model's shapes took 0.52-0.64x the time (the tied 49152-row output layer 0.47x, at 62 GB/s), and prompts too.

fp32 is not packed: there ``F.linear`` runs MKL, which sums in another order than oneDNN, so greedy answers would
no longer be ``generate``'s on the same weights token for token.

Packing copies the weights, so where the copies would not fit beside the model in the memory free at the first
answer, nothing is packed. The copies live as long as the weights they were made from (and this object): a
weight changed in place or replaced (embeddings resized for an adapter) is packed again at the next answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psutil
import torch
import torch.nn.functional as F
from torch.utils.weak import WeakIdKeyDictionary

PACKED_DTYPE = torch.bfloat16
_FREE_SHARE = 0.5  # the copies may take at most this share of the memory free when they are made


def packing_available() -> bool:
    """Whether this torch's oneDNN can pack bf16 linear weights on this CPU."""
    mkldnn = torch.ops.mkldnn
    return (torch.backends.mkldnn.is_available() and hasattr(mkldnn, "_reorder_linear_weight")
            and bool(mkldnn._is_mkldnn_bf16_supported()))


def pack(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (out, in) in oneDNN's packed layout for one-row products (faster at many rows too)."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), 1)


def packed_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` through ``pack(weight)``."""
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


def _eligible(module: torch.nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    # (a hooked layer, accelerate's offloading for one, keeps its own forward)
    return (type(module) is torch.nn.Linear and weight is not None and weight.device.type == "cpu"
            and weight.dtype == PACKED_DTYPE and not (module._forward_hooks or module._forward_pre_hooks))


def _state(weight: torch.Tensor) -> tuple:
    """What tells a weight changed: in place (its version), or its data replaced (``resize_token_embeddings`` sets
    ``.data`` of the same parameter, which leaves the version as it was)."""
    return weight._version, weight.data_ptr(), tuple(weight.shape)


class PackedLinears:
    """The packed copies of a model's bf16 linear weights, made at the first answer and kept for the next ones."""

    def __init__(self) -> None:
        # weight -> (its _state when packed, the packed copy); an entry goes with its weight (keyed by identity:
        # tensors compare element by element)
        self._packs = WeakIdKeyDictionary()
        self.refused = False  # the copies would not fit in memory: nothing packed

    def __len__(self) -> int:
        """How many weights have a packed copy now."""
        return len(self._packs)

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """Within it, the model's eligible linear layers (bf16, on the CPU, no hooks) compute through packed
        weights; outside it they are as they were. For inference only (no gradient reaches packed weights): with
        gradients on, nothing is packed."""
        usable = packing_available() and not torch.is_grad_enabled()
        layers = [m for m in model.modules() if _eligible(m)] if usable else []
        if layers and not self._fits(layers):
            layers = []
        patched = []
        try:
            for layer in layers:
                layer.forward = self._forward(layer)  # an instance attribute: shadows the class's
                patched.append(layer)
            yield
        finally:
            for layer in patched:
                del layer.forward

    def _fits(self, layers: list) -> bool:
        new = {id(w): w for w in (layer.weight for layer in layers) if self._current(w) is None}
        need = sum(w.numel() * w.element_size() for w in new.values())
        self.refused = need > _FREE_SHARE * psutil.virtual_memory().available
        return not self.refused

    def _current(self, weight: torch.Tensor) -> torch.Tensor | None:
        entry = self._packs.get(weight)
        return entry[1] if entry is not None and entry[0] == _state(weight) else None

    def _forward(self, layer: torch.nn.Linear):
        weight, bias = layer.weight, layer.bias
        packed = self._current(weight)
        if packed is None:
            packed = pack(weight)
            self._packs[weight] = (_state(weight), packed)

        def forward(x: torch.Tensor) -> torch.Tensor:
            if x.dtype != PACKED_DTYPE or x.device.type != "cpu":
                return F.linear(x, weight, bias)
            return packed_linear(x, packed, bias)

        return forward
