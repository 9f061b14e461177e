"""Chat's decoding steps on the CPU without transformers' per-module overhead, the same bits as its forward.

A decoding step of the demo model (one new token a row) through transformers' modules cost 13.7 ms on a 2-core AMD
EPYC (7 December), of which the linears' products were 6.6 ms: the rest is some 900 small ops and the Python of
~450 module calls, keyword plumbing and mask building around them. Where the model is a plain pre-norm decoder
(Llama, Qwen2, Qwen3 dense and the DeepSeek-R1 distills built on them, every layer full attention), ``applied``
makes ``model.forward`` take such a step itself: the same ops in the same order on the same modules' weights, about
11 ms. The linears are called as the contexts entered before left them (packed weights: engine.serve.packed_linears,
rows through their own adapters: engine.serve.mixed_lora); where q/k/v or gate/up are packed as one matrix the step
takes their joint product and splits it itself (q and k rotated together), adding a LoRA layer's products to its
part as that layer would. Everything else, prompts included, goes through transformers' own forward, and
``generate`` keeps its sampling, stopping and streaming: its answers are those of the model's own forward, token for
token (tests/serve/test_decode_step.py).

Attention over the cache is ``decode_attention``, registered in transformers as ``ATTENTION`` and set on the model
at load, so the model's own forward and ``generate`` compute it too: one query token against the cached keys as
two fp32 products and an fp32 softmax (sdpa's CPU flash kernel took 73 us a layer for that, these 25). The cache
(``DecodeCache``) keeps keys and values in fp32 (exact from bf16; what engine.core.memory_estimate counts for chat
on the CPU) in buffers that grow by doubling instead of a ``cat`` of the whole cache per layer and token. Prompts
(several query positions) still go through sdpa. Accelerators keep transformers' attention and forward.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from transformers import AttentionInterface, DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, create_causal_mask, sdpa_mask
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.llama.modeling_llama import rotate_half  # (Qwen2's and Qwen3's are the same op)

from engine.serve.packed_linears import PackedLinears

ATTENTION = "tuneboard_cpu"  # the attention implementation's name in transformers' registry
# model_type -> whether its attention normalises queries and keys per head (q_norm / k_norm) after the projection
_PLAIN_DECODERS = {"llama": False, "qwen2": False, "qwen3": True}
_FIRST_CAPACITY = 256  # cached positions a layer's buffers start with (doubled when full)


def decode_attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                     is_causal: bool | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' attention interface: one query position against the cache in fp32 (grouped query heads share
    their key/value head without copies); several positions (a prompt) through sdpa in the query's dtype."""
    if query.shape[2] != 1 or dropout or kwargs.get("position_bias") is not None or kwargs.get("sliding_window"):
        return sdpa_attention_forward(module, query, key.to(query.dtype), value.to(query.dtype), attention_mask,
                                      dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs)
    rows, heads, _, dim = query.shape
    groups = key.shape[1]
    scores = torch.matmul(query.reshape(rows, groups, heads // groups, dim).float(), key.float().transpose(-1, -2))
    scores.mul_(dim ** -0.5 if scaling is None else scaling)
    if attention_mask is not None:  # sdpa's mask: True where a row may attend (padding is False), or additive
        if attention_mask.dtype == torch.bool:
            scores.masked_fill_(~attention_mask, float("-inf"))
        else:
            scores.add_(attention_mask)
    out = torch.matmul(torch.softmax(scores, -1), value.float()).to(query.dtype)
    return out.reshape(rows, heads, 1, dim).transpose(1, 2), None


AttentionInterface.register(ATTENTION, decode_attention)
AttentionMaskInterface.register(ATTENTION, sdpa_mask)  # the masks sdpa takes (decode_attention passes them on)


class _GrowingLayer(DynamicLayer):
    """A layer's keys and values in fp32 buffers that double when full; ``keys`` / ``values`` are views of the
    filled part (what transformers' cache layers return). transformers' own methods that replace ``keys`` (crop,
    beam reordering, batch selection, offloading) leave them as they leave a dynamic layer's: the next update
    takes them into new buffers."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = torch.float32, key_states.device
        self._adopt(key_states[:, :, :0], value_states[:, :, :0])
        self.is_initialized = True

    def _adopt(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        filled = keys.shape[-2]
        self._keys, self._values = (_grown(states.float(), filled, max(_FIRST_CAPACITY, filled))
                                    for states in (keys, values))
        self._filled = filled
        self.keys, self.values = self._keys[:, :, :filled], self._values[:, :, :filled]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):  # noqa: ARG002
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        elif self.keys.data_ptr() != self._keys.data_ptr() or self.keys.shape[-2] != self._filled:
            self._adopt(self.keys, self.values)  # replaced by one of transformers' methods since the last update
        end = self._filled + key_states.shape[-2]
        if end > self._keys.shape[2]:
            capacity = max(2 * self._keys.shape[2], end)
            self._keys, self._values = (_grown(buffer, self._filled, capacity) for buffer in (self._keys, self._values))
        self._keys[:, :, self._filled:end] = key_states
        self._values[:, :, self._filled:end] = value_states
        self._filled = end
        self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]
        return self.keys, self.values


def _grown(buffer: torch.Tensor, filled: int, capacity: int) -> torch.Tensor:
    """A buffer of ``capacity`` positions holding ``buffer``'s first ``filled``."""
    grown = buffer.new_empty((*buffer.shape[:2], capacity, buffer.shape[3]))
    grown[:, :, :filled] = buffer[:, :, :filled]
    return grown


class DecodeCache(DynamicCache):
    """transformers' dynamic cache with every layer a growing fp32 one (for models whose attention is
    ``decode_attention``: sdpa would refuse fp32 keys beside bf16 queries)."""

    def __init__(self, config) -> None:
        super().__init__(config=config)
        self.layers = [_GrowingLayer() for _ in self.layers]


def supports(model: torch.nn.Module) -> bool:
    """Whether ``model``'s decoding steps can be taken here: a plain pre-norm decoder on the CPU whose layers all
    attend to the whole cache, with ``decode_attention`` set."""
    config = model.config
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    return (config.model_type in _PLAIN_DECODERS and type(model).__module__.startswith("transformers.models.")
            and config._attn_implementation == ATTENTION
            and set(layer_types) == {"full_attention"} and model.device.type == "cpu"
            and hasattr(model, "lm_head") and hasattr(getattr(model, "model", None), "layers"))


def use_decode_attention(model: torch.nn.Module) -> bool:
    """Set ``decode_attention`` on a CPU model whose attention is sdpa and whose architecture takes a registered
    implementation; whether it was set."""
    if model.device.type != "cpu" or model.config._attn_implementation != "sdpa":
        return False
    if model.config.model_type not in _PLAIN_DECODERS or not model._can_set_attn_implementation():
        return False
    model.set_attn_implementation(ATTENTION)
    return True


@contextlib.contextmanager
def applied(model: torch.nn.Module, packed: PackedLinears | None = None) -> Iterator[dict]:
    """Within it, ``model``'s forward takes decoding steps itself (see the module docstring); yields the keywords
    ``generate`` needs for that (a fresh :class:`DecodeCache`), or none where the model is not supported. Enter it
    inside the contexts that patch the model's linears (``packed``: the packed weights applied, whose sibling
    products a step takes whole): the layers' callables are read when it is entered."""
    if not supports(model):
        yield {}
        return
    step = _Step(model, packed)
    model.forward = step.forward  # an instance attribute: shadows the class's (generate calls model(...))
    try:
        yield {"past_key_values": DecodeCache(model.config)}
    finally:
        del model.forward


def _call(module):
    """How to call ``module`` with the least Python: its forward, unless hooks must run (peft's mixed batches)."""
    if not isinstance(module, torch.nn.Module) or module._forward_hooks or module._forward_pre_hooks:
        return module
    return module.forward


class _Layer:
    """What a step reads of one decoder layer: its norms, and its linears as callables (a sibling group packed as one:
    its joint product, split here)."""

    def __init__(self, layer: torch.nn.Module, qk_norms: bool, packed: PackedLinears | None) -> None:
        attn, mlp = _Linears(layer.self_attn), _Linears(layer.mlp)
        self.norm_in, self.norm_post = layer.input_layernorm, layer.post_attention_layernorm
        self.head_dim, self.scaling = attn.head_dim, attn.scaling
        self.q_norm = _call(attn.q_norm) if qk_norms else None
        self.k_norm = _call(attn.k_norm) if qk_norms else None
        self.q, self.k, self.v = _call(attn.q_proj), _call(attn.k_proj), _call(attn.v_proj)
        self.o, self.down, self.act = _call(attn.o_proj), _call(mlp.down_proj), _call(mlp.act_fn)
        self.gate, self.up = _call(mlp.gate_proj), _call(mlp.up_proj)
        self.qkv, self.qkv_adds = _joint(packed, (attn.q_proj, attn.k_proj, attn.v_proj))
        self.q_heads = attn.q_proj.out_features // self.head_dim
        self.kv_heads = attn.k_proj.out_features // self.head_dim
        self.gate_up, self.gate_up_adds = _joint(packed, (mlp.gate_proj, mlp.up_proj))
        self.intermediate = mlp.gate_proj.out_features


def _joint(packed: PackedLinears | None, modules: tuple) -> tuple:
    """(the joint product of sibling ``modules``' base layers, and for each LoRA layer of a mixed batch among them
    (engine.serve.mixed_lora) the span of its output and what adds its adapters to it), or (None, ()) where their
    base layers are not packed as one."""
    bases, adds, start = [], [], 0
    for module in modules:
        add = getattr(module.__dict__.get("forward"), "add_adapters", None)
        base = module.base_layer if add is not None else module
        if add is not None:
            adds.append((start, start + base.out_features, add))
        bases.append(base)
        start += base.out_features
    product = packed.joint(tuple(bases)) if packed is not None else None
    return (product, tuple(adds)) if product is not None else (None, ())


class _Linears:
    """A module's attributes, its LoRA layers that add nothing to this batch's rows read as their base layers: those
    are called, and packed with their siblings. Such a layer adds nothing where engine.serve.mixed_lora says so
    (``base_only``), or where its adapters are switched off and not merged (peft then computes its base layer alone:
    Evaluate's base pass)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self._module = module

    def __getattr__(self, name: str):
        found = getattr(self._module, name)
        if not isinstance(found, torch.nn.Module):
            return found
        forward = found.__dict__.get("forward")
        switched_off = (isinstance(found, BaseTunerLayer) and found.disable_adapters and not found.merged
                        and forward is None and not (found._forward_hooks or found._forward_pre_hooks))
        return found.base_layer if switched_off or getattr(forward, "base_only", False) else found


class _Step:
    """One model's decoding step, its modules' callables read once."""

    def __init__(self, model: torch.nn.Module, packed: PackedLinears | None) -> None:
        self.model = model
        self.original = model.forward

        @functools.wraps(self.original)  # generate reads the forward's parameters (inspect.signature)
        def forward(*args, **kwargs):
            return self._forward(*args, **kwargs)

        self.forward = forward
        inner = model.model
        self.embed, self.rotary, self.norm = _call(inner.embed_tokens), inner.rotary_emb, inner.norm
        self.head = _call(model.lm_head)
        qk_norms = _PLAIN_DECODERS[model.config.model_type]
        self.layers = [_Layer(layer, qk_norms, packed) for layer in inner.layers]

    def _forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                 inputs_embeds=None, labels=None, use_cache=None, logits_to_keep=0, **kwargs):
        if (input_ids is None or input_ids.shape[1] != 1 or inputs_embeds is not None or labels is not None
                or not isinstance(past_key_values, DecodeCache) or past_key_values.get_seq_length() == 0
                or kwargs.get("output_attentions") or kwargs.get("output_hidden_states") or torch.is_grad_enabled()):
            return self.original(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                 past_key_values=past_key_values, inputs_embeds=inputs_embeds, labels=labels,
                                 use_cache=use_cache, logits_to_keep=logits_to_keep, **kwargs)
        return CausalLMOutputWithPast(logits=self.step(input_ids, attention_mask, position_ids, past_key_values),
                                      past_key_values=past_key_values)

    def step(self, input_ids, attention_mask, position_ids, cache: DecodeCache) -> torch.Tensor:
        """The logits of one new position a row: transformers' decoder layers' ops, in their order (elementwise ops
        on a sibling group's joint output give each element the bits they give on its part)."""
        x = self.embed(input_ids)
        if position_ids is None:
            position_ids = torch.full_like(input_ids, cache.get_seq_length())
        if isinstance(attention_mask, dict):  # made by generate already
            mask = attention_mask["full_attention"]
        else:
            mask = create_causal_mask(config=self.model.config, inputs_embeds=x, attention_mask=attention_mask,
                                      past_key_values=cache, position_ids=position_ids)
        cos, sin = self.rotary(x, position_ids)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        rows = x.shape[0]
        for layer, cached in zip(self.layers, cache.layers):
            h = _rms_norm(x, layer.norm_in)
            if layer.qkv is not None and layer.q_norm is None:  # q and k rotated together, one op each
                qkv = layer.qkv(h)
                for start, end, add in layer.qkv_adds:  # a LoRA layer's part: its adapters added as it adds them
                    add(qkv[..., start:end], h)
                qkv = qkv.view(rows, 1, -1, layer.head_dim).transpose(1, 2)
                qk = qkv[:, :layer.q_heads + layer.kv_heads]
                qk = (qk * cos) + (rotate_half(qk) * sin)
                q, k, v = qk[:, :layer.q_heads], qk[:, layer.q_heads:], qkv[:, layer.q_heads + layer.kv_heads:]
            else:
                q = layer.q(h).view(rows, 1, -1, layer.head_dim)
                k = layer.k(h).view(rows, 1, -1, layer.head_dim)
                if layer.q_norm is not None:
                    q, k = layer.q_norm(q), layer.k_norm(k)
                q, k = q.transpose(1, 2), k.transpose(1, 2)
                v = layer.v(h).view(rows, 1, -1, layer.head_dim).transpose(1, 2)
                q = (q * cos) + (rotate_half(q) * sin)
                k = (k * cos) + (rotate_half(k) * sin)
            keys, values = cached.update(k, v)
            out, _ = decode_attention(None, q, keys, values, mask, scaling=layer.scaling)
            x = x + layer.o(out.reshape(rows, 1, -1))
            h = _rms_norm(x, layer.norm_post)
            if layer.gate_up is not None:
                gate_up = layer.gate_up(h)
                for start, end, add in layer.gate_up_adds:
                    add(gate_up[..., start:end], h)
                gate, up = gate_up.split(layer.intermediate, -1)
            else:
                gate, up = layer.gate(h), layer.up(h)
            x = x + layer.down(layer.act(gate) * up)
        return self.head(_rms_norm(x, self.norm))


def _rms_norm(x: torch.Tensor, norm: torch.nn.Module) -> torch.Tensor:
    """Llama's / Qwen's RMSNorm forward, op for op (its module call costs more than the ops at one position). The
    mean is taken as ATen takes it on the CPU, a sum divided in place: the same bits without the two scalar
    conversions ``mean`` adds."""
    dtype = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).sum(-1, keepdim=True).div_(h.shape[-1]) + norm.variance_epsilon)
    return norm.weight * h.to(dtype)
