"""Chat's linear layers on the CPU through oneDNN with their weights packed once, in bf16.

``F.linear`` in bf16 on the CPU runs oneDNN on the plain (out, in) weight at every call. Packed once into the
layout oneDNN's kernel reads (``torch.ops.mkldnn._reorder_linear_weight``, what inductor's weight freezing does),
one-row products (a decoding step's) give the same bits: bf16 accumulates in fp32 in both, in the same order
(tests/serve/test_packed_linears.py; :func:`one_row_exact` checks each shape on this CPU before it is packed). On a
2-core AMD EPYC with AVX512-BF16 (6 December), one-row products through the demo model's shapes took 0.52-0.64x the
time (the tied 49152-row output layer 0.47x, at 62 GB/s). Products of many rows are another matter: on a Xeon with
AMX, packed products of more than 32 rows round up to a few hundred outputs one bf16 step away from the plain
weight's (another kernel sums them), so where each row must get ``generate``'s bits (chat, Compare, the arena) a
prompt's positions go through the plain weights (about 1.2x the packed time at 100 positions there), and only
decoding steps through the packed ones.

fp32 is not packed: there ``F.linear`` runs MKL, which sums in another order than oneDNN, so greedy answers would
no longer be ``generate``'s on the same weights token for token.

Packing copies the weights (bf16 weights and their copies take what fp32 weights would, which is what
engine.core.memory_estimate counts for chat on the CPU), so where the copies would not fit beside the model in the
memory free at the first answer, nothing is packed. The copies live as long as the weights they were made from
(and this object): a weight changed in place or replaced (embeddings resized for an adapter) is packed again at the
next answer.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import psutil
import torch
import torch.nn.functional as F
from torch.utils.weak import WeakIdKeyDictionary

PACKED_DTYPE = torch.bfloat16
_FREE_SHARE = 0.5  # the copies may take at most this share of the memory free when they are made
# Sibling layers that read the same input (Llama, Qwen, Mistral and the DeepSeek-R1 distills name them so): packed
# as one matrix, one product gives all their outputs, the same bits as one product each.
SIBLINGS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


@functools.cache
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
    weight = module._parameters.get("weight") if type(module) is torch.nn.Linear else None
    # (a hooked layer, accelerate's offloading for one, keeps its own forward)
    return (weight is not None and weight.device.type == "cpu" and weight.dtype == PACKED_DTYPE
            and not (module._forward_hooks or module._forward_pre_hooks))


def _state(weight: torch.Tensor) -> tuple:
    """What tells a weight changed: in place (its version), or its data replaced (``resize_token_embeddings`` sets
    ``.data`` of the same parameter, which leaves the version as it was)."""
    return weight._version, weight.data_ptr(), tuple(weight.shape)


class PackedLinears:
    """The packed copies of a model's bf16 linear weights, made at the first answer and kept for the next ones."""

    def __init__(self) -> None:
        # first weight of a unit -> (the unit's _states when packed, the packed copy, the biases joined); an entry
        # goes with its weight (keyed by identity: tensors compare element by element)
        self._packs = WeakIdKeyDictionary()
        self.refused = False  # the copies would not fit in memory: nothing packed
        self._joint: dict[int, tuple] = {}  # while applied: id of a sibling group's first layer -> (the group, product)

    def __len__(self) -> int:
        """How many packed copies there are now (a group of siblings has one)."""
        return len(self._packs)

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module, rows_alone: bool = True) -> Iterator[None]:
        """Within it, the model's eligible linear layers (bf16, on the CPU, no hooks) compute through packed
        weights, siblings reading one input as one product; outside it they are as they were. For inference only
        (no gradient reaches packed weights): with gradients on, nothing is packed. ``rows_alone``: each row of a
        batch gets the bits it gets alone (:func:`rows_apart`; chat, Compare, the arena); off, a batch's rows share
        each product (Evaluate & Predict, whose left padding changes a row's sums anyway)."""
        units = _units(model) if packing_available() and not torch.is_grad_enabled() else []
        split = rows_apart if rows_alone else _rows_together
        if units and not self._fits(units):
            units_packed = []  # the copies would not fit
        else:
            units_packed = [(unit, forwards) for unit in units if (forwards := self._forwards(unit, split)) is not None]
        # layers not packed still take a batch's rows one by one (rows_apart) where asked to
        packed_ids = {id(unit[0]) for unit, _ in units_packed}
        plain = [layer for unit in units if id(unit[0]) not in packed_ids for layer in unit] if rows_alone else []
        patched = []
        try:
            for unit, forwards in units_packed:
                for layer, forward in zip(unit, forwards):
                    layer.forward = forward  # an instance attribute: shadows the class's
                    patched.append(layer)
            for layer in plain:
                layer.forward = _single_forward(layer, None, layer.bias, split)
                patched.append(layer)
            yield
        finally:
            self._joint.clear()
            for layer in patched:
                del layer.forward

    def joint(self, layers: tuple) -> object | None:
        """Within ``applied``: the product of sibling ``layers`` packed as one (all their outputs side by side, for
        callers that split it themselves), or None where they are not."""
        entry = self._joint.get(id(layers[0]))
        return entry[1] if entry is not None and entry[0] == tuple(layers) else None

    def _fits(self, units: list) -> bool:
        need = sum(layer.weight.numel() * layer.weight.element_size()
                   for unit in units if self._current(unit) is None for layer in unit)
        self.refused = need > _FREE_SHARE * psutil.virtual_memory().available
        return not self.refused

    def _current(self, unit: tuple) -> tuple | None:
        entry = self._packs.get(unit[0].weight)
        return entry[1:] if entry is not None and entry[0] == tuple(_state(layer.weight) for layer in unit) else None

    def _forwards(self, unit: tuple, split) -> list | None:
        """The forwards of ``unit``'s layers through their packed copy, or None where this CPU's packed products of
        their shape do not give one row the plain weights' bits (:func:`one_row_exact`)."""
        current = self._current(unit)
        if current is None and _exact_shapes.get(_shape_key(unit)) is False:
            return None  # (known: not packed again at every answer)
        if current is None:
            weights = [layer.weight for layer in unit]
            biases = [layer.bias for layer in unit]
            current = (pack(weights[0] if len(unit) == 1 else torch.cat(weights)),
                       None if biases[0] is None else torch.cat(biases))
            if not one_row_exact(unit, *current):
                return None
            self._packs[weights[0]] = (tuple(map(_state, weights)), *current)
        packed, bias = current
        if len(unit) == 1:
            return [_single_forward(unit[0], packed, bias, split)]
        joint = _joint_product(packed, bias, unit, split)
        self._joint[id(unit[0])] = (unit, joint)
        return _sibling_forwards(unit, joint)


def _units(model: torch.nn.Module) -> list[tuple]:
    """The model's eligible linear layers, grouped where siblings read one input (``SIBLINGS``). (Children are read
    from ``_modules``: ``getattr`` on a module costs microseconds, and this runs at every answer.)"""
    grouped, units = set(), []
    modules = list(model.modules())
    for module in modules:
        children = module._modules
        for names in SIBLINGS:
            if names[0] not in children:
                continue
            layers = [_plain_layer(children.get(name)) for name in names]
            if all(layer is not None and _eligible(layer) for layer in layers) and len(
                    {(layer.in_features, layer.bias is None) for layer in layers}) == 1:
                units.append(tuple(layers))
                grouped.update(map(id, layers))
    return units + [(m,) for m in modules if id(m) not in grouped and _eligible(m)]


def _plain_layer(module):
    """The linear layer that computes ``module``'s product: itself, or a LoRA layer's base layer (peft)."""
    return module._modules.get("base_layer", module) if module is not None else None


def rows_apart(product, x: torch.Tensor, width: int | None = None, plain=None) -> torch.Tensor:
    """``product(x)`` with each row of a batch (batch, positions, features) getting the bits ``generate`` gets for it
    alone: a prompt's positions through ``plain`` (the plain weights' product; see the module's doc), and each row on
    its own, as oneDNN sums some shapes in another order for two rows than for one (on the AMD EPYC the demo's down
    projection, 1536 inputs). One decoding position of a packed product (``width`` outputs) whose shape
    :func:`rows_invariant` finds safe is one product for the batch."""
    if plain is not None and x.dim() >= 2 and x.shape[-2] > 1:
        product, width = plain, None
    if x.dim() < 3 or x.shape[0] == 1:
        return product(x)
    if width is not None and x.shape[1] == 1 and rows_invariant(width, x.shape[-1], x.shape[0],
                                                                torch.get_num_threads()):
        return product(x)
    return torch.cat([product(x[i:i + 1]) for i in range(x.shape[0])])


_PROBE_SAMPLES = 1 << 18  # outputs compared: a sum taken in another order shows in bf16's rounding of some of them


@functools.lru_cache(maxsize=256)
def rows_invariant(width: int, features: int, rows: int, threads: int) -> bool:  # noqa: ARG001 - a cache key
    """Whether ``rows`` rows through a packed ``width`` x ``features`` bf16 weight each get the bits they get alone,
    at this thread count: measured on random data, once per shape (tens of milliseconds)."""
    gen = torch.Generator().manual_seed(0)
    weight = pack((torch.randn(width, features, generator=gen) * features ** -0.5).to(PACKED_DTYPE))
    with torch.inference_mode():
        for _ in range(max(4, _PROBE_SAMPLES // (width * rows))):
            x = torch.randn(rows, 1, features, generator=gen).to(PACKED_DTYPE)
            together = packed_linear(x, weight, None)
            if not all(torch.equal(together[i], packed_linear(x[i:i + 1], weight, None)[0]) for i in range(rows)):
                return False
    return True


_exact_shapes: dict[tuple, bool] = {}  # _shape_key (widths, features, bias, threads) -> one_row_exact's finding


def _shape_key(unit: tuple) -> tuple:
    return (tuple(layer.out_features for layer in unit), unit[0].in_features, unit[0].bias is not None,
            torch.get_num_threads())


def one_row_exact(unit: tuple, packed: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether one row through ``packed`` (the layers ``unit`` packed as one) gets the bits their plain weights give it
    (what decoding's answers being ``generate``'s rests on): measured on random rows, once per shape and thread count
    (a few one-row products)."""
    key = _shape_key(unit)
    if key not in _exact_shapes:
        gen = torch.Generator().manual_seed(1)
        rows = torch.randn(8, 1, 1, key[1], generator=gen).to(PACKED_DTYPE)
        with torch.inference_mode():
            _exact_shapes[key] = all(torch.equal(packed_linear(x, packed, bias), torch.cat(
                [F.linear(x, layer.weight, layer.bias) for layer in unit], -1)) for x in rows)
    return _exact_shapes[key]


def _rows_together(product, x: torch.Tensor, width: int | None = None, plain=None) -> torch.Tensor:  # noqa: ARG001
    """``product(x)``, a batch's rows in one product (rows_apart's signature)."""
    return product(x)


def _single_forward(layer: torch.nn.Linear, packed: torch.Tensor | None, bias: torch.Tensor | None, split=rows_apart):
    """``layer``'s forward through ``packed`` (None: its plain weight), a batch's rows as ``split`` takes them."""
    weight = layer.weight

    def plain(x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, weight, bias)

    def product(x: torch.Tensor) -> torch.Tensor:
        return packed_linear(x, packed, bias)

    def forward(x: torch.Tensor) -> torch.Tensor:
        if x.dtype != PACKED_DTYPE or x.device.type != "cpu":
            return F.linear(x, weight, bias)
        if packed is None:
            return split(plain, x)
        return split(product, x, layer.out_features, plain)

    return forward


def _joint_product(packed: torch.Tensor, bias: torch.Tensor | None, unit: tuple, split=rows_apart):
    """The outputs of the sibling layers ``unit`` side by side, through their ``packed`` joint weight."""
    def product(x: torch.Tensor) -> torch.Tensor:
        return packed_linear(x, packed, bias)

    def plain(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.linear(x, layer.weight, layer.bias) for layer in unit], -1)

    return functools.partial(split, product, width=sum(layer.out_features for layer in unit), plain=plain)


def _sibling_forwards(unit: tuple, joint) -> list:
    """Forwards for siblings packed as one (``joint``: their joint product): the first of them called with an input
    computes every sibling's part, which the others take when called with that same input object (HF's attention
    and MLP pass one tensor to all)."""
    sizes = [layer.out_features for layer in unit]
    held: dict = {}  # the input of the last joint product, and its parts not taken yet

    def make(i: int, layer: torch.nn.Linear):
        def forward(x: torch.Tensor) -> torch.Tensor:
            if x.dtype != PACKED_DTYPE or x.device.type != "cpu":
                return F.linear(x, layer.weight, layer.bias)
            parts = held.get("parts") if held.get("x") is x else None
            if parts is None or parts[i] is None:
                parts = list(joint(x).split(sizes, -1))
                held.update(x=x, parts=parts)
            part, parts[i] = parts[i], None
            if all(p is None for p in parts):
                held.clear()  # no reference kept to the input
            return part.contiguous()  # a plain layer's output is contiguous, and code may rely on it (view)

        return forward

    return [make(i, layer) for i, layer in enumerate(unit)]
