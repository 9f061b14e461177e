"""A Llama-style decoder layer with LoRA on all seven projections, trained on the CPU as one autograd Function.

Why: a bf16 LoRA step of the demo model on a 2-core CPU spent about 40% of its time between the matmuls
(bench/train_floor.py), in small ops that cost their dispatch more than their arithmetic at 150 rows, and in
autograd's bookkeeping for each of them. This Function runs the layer's forward with autograd off and its backward
written out: the same products; for the demo layer (148 rows, bf16) one autograd node instead of 59, 168 non-view
ops instead of 226, and none of the layer's dozen module calls with their keyword plumbing. A layer's forward and
backward took 6.2 instead of 7.1 ms, and the training benchmark's forward and backward 224-229 instead of 275-277
ms a step (2-core AMD EPYC, alternating runs); the packed backward weights below took off about 5% more.

- the three attention projections read one weight (q, k and v stored as views of one matrix, no copy): one base
  product, one product for the three LoRA A, one for their B (block-diagonal);
- q and k are rotated together in fp32, where the CPU's attention runs anyway (transformers rotates in the model's
  dtype and casts after), and each packed sample attends alone through PyTorch's CPU flash-attention kernel,
  forward and backward called directly (engine/train/segment_attention.py explains the per-sample attention);
- RMSNorm, the rotary and the SwiGLU MLP have their backward in closed form; norm outputs and the MLP's activation
  are recomputed from what is saved (the layer's input, the residual after attention, the gate and up products)
  instead of being kept, as engine/train/lean_activations.py does module by module.

It applies only where that is exactly the layer's computation, checked at every call (anything else runs the layer's
own forward): training with gradients, on the CPU, not under torch.compile, one packed row or one sample (no padding
mask), no KV cache, a known decoder layer class (Llama, Qwen2, Mistral) with RMSNorm, SiLU MLP and no sliding
window, frozen norms, and plain LoRA on the seven projections (what lean_activations' checks accept: one adapter,
dropout 0, no DoRA, frozen unquantized base). The patch checks its output and gradients against the layer's own on
a random row before it is kept. Gradient checkpointing, which transformers does inside the layer class's forward
that this replaces, is done here the same way. ``TUNEBOARD_FUSED_LAYERS=0`` turns it off.
"""

from __future__ import annotations

import types
import weakref
from functools import lru_cache

import torch
import torch.nn.functional as F

from engine.core.switches import env_switch
from engine.train import lean_activations as lean
from engine.train.segment_attention import NAME as SEGMENTS
from engine.train.segment_attention import SPECIAL_ARGUMENTS, cached_lengths

ENV_SWITCH = "TUNEBOARD_FUSED_LAYERS"
_ORIGINAL = "_fused_original_forward"
_PLAN = "_fused_plan"
_LAYERS = ("LlamaDecoderLayer", "Qwen2DecoderLayer", "MistralDecoderLayer")
_NORMS = ("LlamaRMSNorm", "Qwen2RMSNorm", "MistralRMSNorm")
_PROJECTIONS = (("self_attn", "q_proj"), ("self_attn", "k_proj"), ("self_attn", "v_proj"), ("self_attn", "o_proj"),
                ("mlp", "gate_proj"), ("mlp", "up_proj"), ("mlp", "down_proj"))


def fused_layers_enabled() -> bool:
    return env_switch(ENV_SWITCH)


def _join(bases):
    """One matrix of the projections' weights, the weights made views of it (no copy: the joint product needs
    none), and their biases joined (None where none has one); with each view's first row."""
    weights = [b.weight for b in bases]
    joint = torch.cat([w.detach() for w in weights])
    starts, start = [], 0
    for base in bases:
        rows = base.weight.shape[0]
        base.weight.data = joint[start:start + rows]
        starts.append(start)
        start += rows
    biases = [b.bias for b in bases]
    bias = None if all(b is None for b in biases) else torch.cat(
        [b.detach() if b is not None else torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
         for b, w in zip(biases, weights)])
    return joint, bias, tuple(b.weight for b in bases), tuple(starts)


class _Plan:
    """One layer's frozen parts, found once: the joint q/k/v weight (the three projections' weights are views of
    it) and biases, the other base weights, the norms, the attention's shape."""

    def __init__(self, layer) -> None:
        attn, mlp = layer.self_attn, layer.mlp
        self.layer = weakref.ref(layer)
        self.heads = attn.config.num_attention_heads
        self.kv_heads = attn.config.num_key_value_heads
        self.head_dim = attn.head_dim
        self.scale = float(attn.scaling)
        self.eps1 = float(layer.input_layernorm.variance_epsilon)
        self.eps2 = float(layer.post_attention_layernorm.variance_epsilon)
        self.w_qkv, self.b_qkv, self.views, self._starts = _join(
            [p.base_layer for p in (attn.q_proj, attn.k_proj, attn.v_proj)])
        # The other projections' frozen weights as planned: a weight replaced since sends the layer its own way.
        # (Gate and up stay apart: joined like q/k/v they measured no faster, and in fp32 the two copies that
        # joining leaves behind until they are reused raised a run's peak by about 200 MB.)
        self.others = tuple(p.base_layer.weight for p in (attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj))
        self._pointers = tuple(w.data_ptr() for w in self.others)
        self.backward_weights = None  # see pack

    def current(self) -> bool:
        """The weights are still the planned ones: q/k/v views of their joint matrix, the others unreplaced."""
        layer = self.layer()
        if layer is None:
            return False
        attn, mlp = layer.self_attn, layer.mlp
        return (all(getattr(p, "base_layer", None) is not None and p.base_layer.weight is v
                    and v.data_ptr() == self.w_qkv[start:].data_ptr()
                    for p, v, start in zip((attn.q_proj, attn.k_proj, attn.v_proj), self.views, self._starts))
                and all(getattr(p, "base_layer", None) is not None and p.base_layer.weight is w
                        and w.data_ptr() == ptr
                        for p, w, ptr in zip((attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj), self.others,
                                             self._pointers)))

    def pack(self) -> None:
        """Keep the frozen weights transposed and packed in oneDNN's layout as well (bf16): the input's gradient
        (``grad @ W``) reads ``W`` untransposed, where bf16 oneDNN on the plain weight is slowest (the demo model's
        30 layers: 50 -> 40 ms a step on a 2-core AMD EPYC). The same bits as the plain products for q/k/v, o and
        down; gate's and up's input gradients are summed inside one product. (Packed copies for the forward's
        products measured 1.002-1.007x the plain step time on a 2-core Xeon with AMX, for 139 MiB more: not
        kept.)"""
        from engine.serve.packed_linears import pack  # noqa: PLC0415 - bf16 CPU runs only

        o, gate, up, down = (w.detach() for w in self.others)
        # gate and up as one matrix: their two input gradients summed inside one product
        self.backward_weights = [pack(w.t().contiguous()) for w in (self.w_qkv, o, torch.cat((gate, up)), down)]

    def packed_bytes(self) -> int:
        return sum(w.numel() * w.element_size() for w in (self.w_qkv, *self.others))

    def input_grad(self, grad, index: int):
        """``grad @ W`` (index: q/k/v 0, o 1, down 3), through the packed transpose where there is one."""
        if self.backward_weights is None:
            return grad.mm((self.w_qkv, self.others[0], None, self.others[3])[index])
        from engine.serve.packed_linears import packed_linear  # noqa: PLC0415

        return packed_linear(grad, self.backward_weights[index], None)

    def gate_up_input_grad(self, grad_gate, grad_up):
        """``grad_gate @ W_gate + grad_up @ W_up``."""
        if self.backward_weights is None:
            return grad_gate.mm(self.others[1]).addmm_(grad_up, self.others[2])
        from engine.serve.packed_linears import packed_linear  # noqa: PLC0415

        return packed_linear(torch.cat((grad_gate, grad_up), dim=1), self.backward_weights[2], None)


# -- closed-form pieces ------------------------------------------------------------------------------------
def _rms(x, weight, eps):
    """transformers' RMSNorm of 2-D ``x`` (fp32 statistics, the output in x's dtype times the weight) and the
    reciprocal root it used."""
    xf = x.float()
    rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True).add_(eps))
    return weight * (xf * rstd).to(x.dtype), rstd


def _rms_again(x, rstd, weight):
    return weight * (x.float() * rstd).to(x.dtype)


def _rms_backward(grad, x, rstd, weight):
    """The gradient of :func:`_rms`'s output with respect to ``x``, the weight frozen."""
    dy = (grad * weight).float()
    y = x.float().mul_(rstd)
    return (dy - y * (dy * y).mean(-1, keepdim=True)).mul_(rstd).to(x.dtype)


def _rotate(x, cos, sin_signed):
    """Rotary embedding of ``x`` [T, heads, D]: ``x cos + rotate_half(x) sin`` with rotate_half's sign folded into
    ``sin_signed`` (rotating by half the width is its own inverse, so the backward is the same roll)."""
    return torch.addcmul(x * cos, x.roll(x.shape[-1] // 2, -1), sin_signed)


def _unrotate(grad, cos, sin_signed):
    return (grad * cos).add_((grad * sin_signed).roll(grad.shape[-1] // 2, -1))


_attention = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
_attention_backward = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward


def _heads(t):
    """[T, heads, D] as the [1, heads, T, D] view the attention kernel takes (a sample: its rows of dim 2)."""
    return t.transpose(0, 1).unsqueeze(0)


def _lora(x, out, a, b, scaling):
    """``out += (x A^T) B^T * scaling`` in place, and the rank-wide ``x A^T`` backward needs."""
    inner = x.mm(a.t())
    out.addmm_(inner, b.t(), alpha=scaling)
    return out, inner


@lru_cache(maxsize=1)
def _function():
    class FusedLoraLayer(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, cos, sin_signed, plan, lengths, scalings, *adapters):
            dt = x.dtype
            shape = x.shape
            x = x.reshape(-1, shape[-1])
            t = x.shape[0]
            aq, bq, ak, bk, av, bv, ao, bo, ag, bg, au, bu, ad, bd = adapters
            s_qkv, s_o, s_g, s_u, s_d = scalings
            layer = plan.layer()
            heads, kv, d = plan.heads, plan.kv_heads, plan.head_dim

            # q, k and v share an input: one A product for the three, their B block-diagonal (mostly zeros: built
            # again in backward rather than saved), each cast to the compute dtype once.
            n1, rstd1 = _rms(x, layer.input_layernorm.weight, plan.eps1)
            a_qkv, b_qkv = torch.cat((aq, ak, av)).to(dt), torch.block_diag(bq, bk, bv).to(dt)
            qkv, inner_qkv = _lora(n1, F.linear(n1, plan.w_qkv, plan.b_qkv), a_qkv, b_qkv, s_qkv)
            del n1
            qk = _rotate(qkv[:, :(heads + kv) * d].view(t, heads + kv, d).float(), cos, sin_signed)
            q, k = qk[:, :heads], qk[:, heads:]
            # its own storage (in fp32 .float() is the same tensor: a view would keep all of qkv for backward)
            v = qkv[:, (heads + kv) * d:].view(t, kv, d).float().contiguous()
            del qkv
            q_, k_, v_ = _heads(q), _heads(k), _heads(v)
            outs, lses, start = [], [], 0
            for n in lengths:
                end = start + n
                out, lse = _attention(q_[:, :, start:end], k_[:, :, start:end], v_[:, :, start:end], 0.0, True,
                                      scale=plan.scale)
                outs.append(out[0].transpose(0, 1))
                lses.append(lse)
                start = end
            att = torch.cat(outs)  # [T, heads, D] fp32
            att_in = att.view(t, heads * d).to(dt)
            ao_, bo_ = ao.to(dt), bo.to(dt)
            o, inner_o = _lora(att_in, F.linear(att_in, *_weight_bias(layer.self_attn.o_proj)), ao_, bo_, s_o)
            del att_in
            h1 = o.add_(x)
            n2, rstd2 = _rms(h1, layer.post_attention_layernorm.weight, plan.eps2)
            mlp = layer.mlp
            ag_, bg_, au_, bu_, ad_, bd_ = (w.to(dt) for w in (ag, bg, au, bu, ad, bd))
            gate, inner_g = _lora(n2, F.linear(n2, *_weight_bias(mlp.gate_proj)), ag_, bg_, s_g)
            up, inner_u = _lora(n2, F.linear(n2, *_weight_bias(mlp.up_proj)), au_, bu_, s_u)
            del n2
            hidden = F.silu(gate).mul_(up)
            down, inner_d = _lora(hidden, F.linear(hidden, *_weight_bias(mlp.down_proj)), ad_, bd_, s_d)
            del hidden
            out = down.add_(h1)
            ctx.plan, ctx.lengths, ctx.scalings = plan, lengths, scalings
            ctx.adapter_dtype = aq.dtype
            ctx.save_for_backward(x, rstd1, inner_qkv, q, k, v, att, *lses, inner_o, h1, rstd2, gate, up, inner_g,
                                  inner_u, inner_d, cos, sin_signed, a_qkv, bq, bk, bv, ao_, bo_, ag_, bg_, au_, bu_,
                                  ad_, bd_)
            return out.view(shape)

        @staticmethod
        def backward(ctx, grad):
            plan, lengths = ctx.plan, ctx.lengths
            s_qkv, s_o, s_g, s_u, s_d = ctx.scalings
            saved = ctx.saved_tensors
            x, rstd1, inner_qkv, q, k, v, att = saved[:7]
            lses = saved[7:7 + len(lengths)]
            (inner_o, h1, rstd2, gate, up, inner_g, inner_u, inner_d, cos, sin_signed, a_qkv, bq, bk, bv, ao_, bo_,
             ag_, bg_, au_, bu_, ad_, bd_) = saved[7 + len(lengths):]
            layer = plan.layer()
            ln1, ln2 = layer.input_layernorm.weight, layer.post_attention_layernorm.weight
            heads, kv, d = plan.heads, plan.kv_heads, plan.head_dim
            shape = grad.shape
            grad = grad.reshape(-1, shape[-1])
            t = grad.shape[0]
            dt = grad.dtype
            lora_grads = lean.lora_grads  # the products the module-wise Functions take

            # MLP
            act = F.silu(gate)
            ga_d, gb_d, gi_d = lora_grads(grad, inner_d, bd_, s_d, act * up, True, True)
            g_hidden = plan.input_grad(grad, 3).addmm_(gi_d, ad_)
            g_up = g_hidden * act
            del act
            g_gate = torch.ops.aten.silu_backward(g_hidden.mul_(up), gate)
            del g_hidden
            n2 = _rms_again(h1, rstd2, ln2)
            ga_g, gb_g, gi_g = lora_grads(g_gate, inner_g, bg_, s_g, n2, True, True)
            ga_u, gb_u, gi_u = lora_grads(g_up, inner_u, bu_, s_u, n2, True, True)
            del n2
            g_n2 = plan.gate_up_input_grad(g_gate, g_up).addmm_(gi_g, ag_).addmm_(gi_u, au_)
            del g_gate, g_up
            g_h1 = _rms_backward(g_n2, h1, rstd2, ln2).add_(grad)
            del g_n2

            # attention's output projection
            att_in = att.view(t, heads * d).to(dt)
            ga_o, gb_o, gi_o = lora_grads(g_h1, inner_o, bo_, s_o, att_in, True, True)
            del att_in
            g_att = plan.input_grad(g_h1, 1).addmm_(gi_o, ao_).float().view(t, heads, d)

            # attention, sample by sample
            g_att_, q_, k_, v_, att_ = _heads(g_att), _heads(q), _heads(k), _heads(v), _heads(att)
            g_q, g_k, g_v, start = [], [], [], 0
            for n, lse in zip(lengths, lses):
                end = start + n
                dq, dk, dv = _attention_backward(g_att_[:, :, start:end], q_[:, :, start:end], k_[:, :, start:end],
                                                 v_[:, :, start:end], att_[:, :, start:end], lse, 0.0, True,
                                                 scale=plan.scale)
                g_q.append(dq[0].transpose(0, 1))
                g_k.append(dk[0].transpose(0, 1))
                g_v.append(dv[0].transpose(0, 1))
                start = end
            del g_att, g_att_
            g_qk = _unrotate(torch.cat((torch.cat(g_q), torch.cat(g_k)), dim=1), cos, sin_signed)
            g_qkv = torch.cat((g_qk.view(t, -1), torch.cat(g_v).view(t, -1)), dim=1).to(dt)
            del g_qk, g_q, g_k, g_v

            # q/k/v projections and the first norm
            n1 = _rms_again(x, rstd1, ln1)
            ga_qkv, gb_qkv, gi_qkv = lora_grads(g_qkv, inner_qkv, torch.block_diag(bq, bk, bv).to(dt), s_qkv, n1,
                                                True, True)
            del n1
            g_n1 = plan.input_grad(g_qkv, 0).addmm_(gi_qkv, a_qkv)
            g_x = _rms_backward(g_n1, x, rstd1, ln1).add_(g_h1)

            # The joint gradients cast to the adapters' dtype once, then cut into the adapters' (the B gradients
            # are the blocks on the diagonal).
            a_dtype = ctx.adapter_dtype
            ga_qkv, gb_qkv = ga_qkv.to(a_dtype), gb_qkv.to(a_dtype)
            r = a_qkv.shape[0] // 3
            qkv_rows = (heads * d, kv * d, kv * d)
            b_qkv_grads, start = [], 0
            for i, rows in enumerate(qkv_rows):
                b_qkv_grads.append(gb_qkv[start:start + rows, i * r:(i + 1) * r])
                start += rows
            grads = (ga_qkv[:r], b_qkv_grads[0], ga_qkv[r:2 * r], b_qkv_grads[1], ga_qkv[2 * r:], b_qkv_grads[2],
                     ga_o, gb_o, ga_g, gb_g, ga_u, gb_u, ga_d, gb_d)
            # (the others are cast to the adapters' dtype by autograd, as it casts what a Function returns for an
            # input of another dtype)
            return (g_x.view(shape), None, None, None, None, None, *grads)

    return FusedLoraLayer


def _weight_bias(projection):
    base = projection.base_layer
    return base.weight, base.bias


# -- the patched forward ----------------------------------------------------------------------------------
# Every layer of a forward pass gets the same rotary tensors: their fp32 forms are made once.
_last_rotary: list = [None, None]  # [weak reference to cos, (cos [T, 1, D], sin with rotate_half's sign)]


def _rotary(position_embeddings):
    cos, sin = position_embeddings
    ref, prepared = _last_rotary
    if ref is not None and ref() is cos:
        return prepared
    half = cos.shape[-1] // 2
    cos32 = cos[0].float().unsqueeze(1)
    sin32 = sin[0].float()
    sin_signed = torch.cat((-sin32[:, :half], sin32[:, half:]), dim=-1).unsqueeze(1)
    _last_rotary[:] = [weakref.ref(cos), (cos32, sin_signed)]
    return cos32, sin_signed


def _adapters(layer, dtype):
    """(the 14 LoRA A/B weights in projection order, the five scalings: q/k/v shared, o, gate, up, down), or None
    unless the seven projections are plain LoRA right now (lean_activations' check, mixed precision allowed)."""
    parts = []
    for owner, name in _PROJECTIONS:
        part = lean.plain_lora(getattr(getattr(layer, owner), name), dtype, True)
        if part is None:
            return None
        parts.append(part)
    if len({p[4] for p in parts[:3]}) != 1:  # one joint product for q/k/v takes one scaling
        return None
    adapters = [w for p in parts for w in (p[2], p[3])]
    if len({a.dtype for a in adapters}) != 1:
        return None
    return adapters, (parts[0][4], parts[3][4], parts[4][4], parts[5][4], parts[6][4])


def _layer_forward(self, hidden_states, attention_mask=None, position_ids=None, past_key_values=None,
                   use_cache=False, position_embeddings=None, **kwargs):
    plan = getattr(self, _PLAN)
    fused = None
    if (self.training and torch.is_grad_enabled() and past_key_values is None and position_embeddings is not None
            and hidden_states.dim() == 3 and hidden_states.shape[0] == 1 and hidden_states.device.type == "cpu"
            and not torch.compiler.is_compiling() and all(kwargs.get(k) is None for k in SPECIAL_ARGUMENTS)
            and lean.autocast_keeps(hidden_states) and plan.current()):
        length = hidden_states.shape[1]
        lengths = cached_lengths(position_ids, length)
        if lengths is None and attention_mask is None:
            lengths = [length]
        found = _adapters(self, hidden_states.dtype) if lengths is not None else None
        if found is not None:
            fused = lengths, found
    if fused is None:
        return getattr(self, _ORIGINAL)(hidden_states, attention_mask=attention_mask, position_ids=position_ids,
                                        past_key_values=past_key_values, use_cache=use_cache,
                                        position_embeddings=position_embeddings, **kwargs)
    lengths, (adapters, scalings) = fused
    cos, sin_signed = _rotary(position_embeddings)

    def layer(hidden):
        return _function().apply(hidden, cos, sin_signed, plan, tuple(lengths), scalings, *adapters)

    # transformers checkpoints inside the layer class's own forward, which this one replaces: done here the same way
    # (the Function's saved tensors are dropped and the Function recomputed in backward).
    checkpointing = getattr(self, "_gradient_checkpointing_func", None)
    if getattr(self, "gradient_checkpointing", False) and checkpointing is not None:
        return checkpointing(layer, hidden_states)
    return layer(hidden_states)


def _layer_fits(layer) -> bool:
    """The layer's structure is the one the Function computes (its numbers are checked by :func:`_agrees`)."""
    attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
    if type(layer).__name__ not in _LAYERS or attn is None or mlp is None:
        return False
    norms = (getattr(layer, "input_layernorm", None), getattr(layer, "post_attention_layernorm", None))
    if any(type(n).__name__ not in _NORMS or n.weight.requires_grad for n in norms):
        return False
    if not lean.is_silu(getattr(mlp, "act_fn", None)):
        return False
    if getattr(attn, "sliding_window", None) is not None or float(getattr(attn, "attention_dropout", 0.0)) != 0.0:
        return False
    if hasattr(attn, "q_norm"):  # Qwen3's per-head norms: not computed here
        return False
    # The packed rows' per-sample attention this computes is segment_attention's (plain sdpa would take a mask).
    if getattr(attn.config, "_attn_implementation", None) != SEGMENTS:
        return False
    weight = attn.q_proj.base_layer.weight if hasattr(attn.q_proj, "base_layer") else None
    if weight is None or weight.device.type != "cpu":
        return False
    return _adapters(layer, weight.dtype) is not None


def _agrees(layer, dtype) -> bool:
    """The fused forward and backward against the layer's own on a random packed row of two samples."""
    inner = layer.self_attn
    generator = torch.Generator().manual_seed(0)
    hidden = inner.config.hidden_size
    lengths = (5, 4)
    x = torch.randn(1, sum(lengths), hidden, generator=generator).to(dtype)
    positions = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)
    inv = 1.0 / (10000 ** (torch.arange(0, inner.head_dim, 2).float() / inner.head_dim))
    freqs = positions[0, :, None].float() * inv
    emb = torch.cat((freqs, freqs), dim=-1)[None]
    rotary = (emb.cos().to(dtype), emb.sin().to(dtype))
    grad = torch.randn(x.shape, generator=generator).to(dtype)
    half = dtype != torch.float32
    results = []
    for fused in (False, True):
        x_ = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=dtype, enabled=half):
            if fused:
                out = _layer_forward(layer, x_, position_ids=positions, position_embeddings=rotary)
            else:
                out = getattr(layer, _ORIGINAL)(x_, position_ids=positions, position_embeddings=rotary)
        out = out[0] if isinstance(out, tuple) else out
        (g,) = torch.autograd.grad(out, x_, grad)
        results.append((out.detach().float(), g.float()))
    (out0, g0), (out1, g1) = results
    rtol = 3e-2 if half else 1e-4

    def close(a, b):
        return bool(torch.allclose(a, b, rtol=rtol, atol=rtol * float(b.abs().max()) + 1e-12))

    return close(out1, out0) and close(g1, g0)


def apply_fused_layers(model, log=print, *, device: str) -> int:
    """Run ``model``'s (peft-wrapped, LoRA) decoder layers through :class:`FusedLoraLayer` in training where they
    fit; the number patched (0 when switched off, not on the CPU, or none fits)."""
    if not fused_layers_enabled() or device != "cpu":
        return 0
    layers = [m for m in model.modules() if type(m).__name__ in _LAYERS and not hasattr(m, _ORIGINAL)]
    fitting = [layer for layer in layers if _layer_fits(layer)]
    if not fitting:
        return 0
    for layer in fitting:
        setattr(layer, _PLAN, _Plan(layer))
        setattr(layer, _ORIGINAL, layer.forward)
        layer.forward = types.MethodType(_layer_forward, layer)
    dtype = fitting[0].self_attn.q_proj.base_layer.weight.dtype
    packed = _pack([getattr(layer, _PLAN) for layer in fitting], dtype)
    was_training = fitting[0].training
    fitting[0].train()
    agrees = _agrees(fitting[0], dtype)
    fitting[0].train(was_training)
    if not agrees:
        remove_fused_layers(model)
        log("fused decoder layers: the check against the layer's own forward failed; the layers run as they are")
        return 0
    log(f"fused decoder layers: {len(fitting)} of {len(layers)} layers train as one Function each"
        + (f", their frozen weights also packed for the backward products (+{packed / 2 ** 20:.0f} MiB)"
           if packed else "") + f" ({ENV_SWITCH}=0 turns this off)")
    return len(fitting)


def _pack(plans: list, dtype) -> int:
    """Pack the layers' weights (:meth:`_Plan.pack`) in bf16 where oneDNN can and the copies take at most half the
    memory available now (as chat's packed weights: engine/serve/packed_linears.py); the bytes the copies take, 0
    where nothing was packed."""
    import psutil  # noqa: PLC0415

    from engine.serve.packed_linears import PACKED_DTYPE, packing_available  # noqa: PLC0415

    need = sum(plan.packed_bytes() for plan in plans)
    if dtype != PACKED_DTYPE or not packing_available() or need > 0.5 * psutil.virtual_memory().available:
        return 0
    for plan in plans:
        plan.pack()
    return need


def remove_fused_layers(model) -> None:
    """Undo :func:`apply_fused_layers` (the q/k/v weights stay views of their joint matrix: same values)."""
    for module in model.modules():
        if hasattr(module, _ORIGINAL):
            del module.forward
            delattr(module, _ORIGINAL)
            delattr(module, _PLAN)
