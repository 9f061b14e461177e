"""LoRA training that keeps fewer activations for the backward pass, without gradient checkpointing.

What autograd saves during a forward pass is most of a LoRA run's memory: the frozen base weights need no
gradient, yet every elementwise op between the projections keeps its own inputs. Measured on the demo model
(SmolLM2-135M, 30 layers, fp32, LoRA on every linear layer, the answer-only loss) on its longest batch
(4 x 124 tokens), autograd kept 1.37 MiB per token, 60% of it four 1536-wide MLP tensors per layer
(gate, silu(gate), up, silu(gate) * up). Here it keeps 0.69 MiB per token, with the same loss:

- Llama-style MLP (``down(silu(gate(x)) * up(x))``, each projection a peft LoRA Linear): one autograd
  Function saves gate and up (plus the rank-wide LoRA intermediates); silu(gate) and the product are
  recomputed in backward.
- LoRA Linears reading an RMSNorm's output (q/k/v after ``input_layernorm``, the MLP after
  ``post_attention_layernorm``) keep the norm's input, which the norm saves anyway, and rebuild the norm's
  output in backward (once, shared by the projections that read it).
- SDPA attends grouped-query k/v itself on CPU instead of saving copies repeated to every query head.
- :func:`head_cross_entropy` (used by the answer-only loss) keeps the gradient of the hidden rows instead of
  the rows x vocabulary log-softmax.

Gradient checkpointing saves more but recomputes every matmul of the forward (a third slower here); these
recompute only elementwise ops (about 2% slower). The patches replace ``forward`` on the matching module
instances after peft wrapped the model, and check at every call that they are exactly valid: plain LoRA
(no DoRA or other variant, no LoRA bias), one active adapter, dropout 0, a plain unquantized frozen
``nn.Linear`` base, no hooks on the projections, training with gradients on, and one dtype throughout, or,
in a bf16 run, bf16 base weights and fp32 adapters under autocast to bf16 (the adapters are cast to bf16 for
the products, as autocast casts them, and their gradients return in fp32).

The Functions are faster too (bf16 LoRA training on a 2-core Intel Xeon: 1.15x tokens per CPU-second over
peft's path): the LoRA product is added inside the base matmul (addmm) instead of in two more passes over
the layer-wide output, the scaling multiplies rank-wide products only, and attention's output projection,
which no norm feeds, takes the same fused Function. torch.compile of the decoder layers was measured beside
it and not kept: 1.15x tokens per CPU-second for 40 s of compilation per run (graph breaks at every packed
row's per-sample attention). Anything else runs peft's own forward untouched (evaluation,
adapters switched off for a DPO reference, merged weights). ``TUNEBOARD_LEAN_ACTIVATIONS=0`` turns it off.

Imports of torch stay inside functions: the web process imports engine modules and must start fast.
"""

from __future__ import annotations

import os
import types
import weakref
from functools import lru_cache

import torch
import torch.nn.functional as F
from peft.tuners.lora.layer import Linear

from engine.core.devices import cpu_tuned
from engine.core.switches import env_switch

ENV_SWITCH = "TUNEBOARD_LEAN_ACTIVATIONS"
_ORIGINAL = "_lean_original_forward"  # instance attribute set on patched modules (marks them, allows undoing)
_NORM_HOOK = "_lean_norm_hook"
# transformers' switch for grouped-query attention inside SDPA (k/v not repeated to every query head first).
_SDPA_GQA = "TRANSFORMERS_SDPA_FORCE_GQA"


def lean_activations_enabled() -> bool:
    return env_switch(ENV_SWITCH)


# -- checks -----------------------------------------------------------------------------------------------
def _lora_linear_class():
    return Linear


def plain_lora(layer, dtype, mixed: bool = False):
    """(base weight, base bias, A, B, scaling) of a peft LoRA Linear that computes exactly
    ``base(x) + B(A(x)) * scaling`` right now, else None. ``mixed``: under autocast to ``dtype``, where the
    adapters may be fp32 (they are cast to ``dtype`` for the products, as autocast casts them)."""
    if (type(layer) is not _lora_linear_class() or layer.disable_adapters or layer.merged
            or layer.fan_in_fan_out or layer._forward_hooks or layer._forward_pre_hooks):
        return None
    active = layer.active_adapters
    if len(active) != 1:
        return None
    name = active[0]
    if name not in layer.lora_A or name in layer.lora_variant:
        return None
    if not isinstance(layer.lora_dropout[name], torch.nn.Identity):
        return None
    base, lora_a, lora_b = layer.base_layer, layer.lora_A[name], layer.lora_B[name]
    if type(base) is not torch.nn.Linear or type(lora_a) is not torch.nn.Linear or type(lora_b) is not torch.nn.Linear:
        return None
    if lora_a.bias is not None or lora_b.bias is not None or base.weight.requires_grad:
        return None
    # ZeRO-3 leaves each rank an empty placeholder per weight (gathered by hooks only while its module runs).
    if any(hasattr(w, "ds_numel") or w.dim() != 2 for w in (base.weight, lora_a.weight, lora_b.weight)):
        return None
    if base.bias is not None and (base.bias.requires_grad or base.bias.dtype != dtype):
        return None
    if any(m._forward_hooks or m._forward_pre_hooks for m in (base, lora_a, lora_b)):
        return None
    adapter_dtypes = {dtype, torch.float32} if mixed else {dtype}
    if (base.weight.dtype != dtype or lora_a.weight.dtype not in adapter_dtypes
            or lora_b.weight.dtype != lora_a.weight.dtype):
        return None
    return base.weight, base.bias, lora_a.weight, lora_b.weight, float(layer.scaling[name])


def autocast_keeps(t) -> bool:
    """No autocast on t's device, or autocast to t's own dtype: the ops on t run in its dtype either way."""
    device = t.device.type
    return not torch.is_autocast_enabled(device) or torch.get_autocast_dtype(device) == t.dtype


def _grad_mode(module, x) -> str | None:
    """"plain" when training with gradients without autocast, "mixed" under autocast to x's own dtype (bf16
    weights, fp32 adapters: the products run in that dtype, as autocast runs them), else None: the modes the
    Functions reproduce."""
    if not (module.training and torch.is_grad_enabled() and x.is_floating_point()):
        return None
    if not torch.is_autocast_enabled(x.device.type):
        return "plain"
    return "mixed" if autocast_keeps(x) and x.dtype != torch.float32 else None


def is_silu(act) -> bool:
    return type(act).__name__ == "SiLUActivation" or type(act) is torch.nn.SiLU


def _is_rms_norm(module) -> bool:
    return "RMSNorm" in type(module).__name__ and not list(module.children())


# -- the autograd Functions -------------------------------------------------------------------------------
class _NormRecompute:
    """An RMSNorm's output, rebuilt in backward from the norm's input (which the norm saves for its own
    backward anyway) instead of being saved by the projections that read it. Computed once however many
    projections read it."""

    def __init__(self, norm, norm_input):
        self.norm = norm
        self.norm_input = norm_input
        self.users = 0
        self._value = None

    def take(self):
        if self._value is None:
            with torch.no_grad():
                self._value = type(self.norm).forward(self.norm, self.norm_input)
        value = self._value
        self.users -= 1
        if self.users <= 0:
            self._value = None
        return value


def lora_grads(grad, inner, lora_b, scaling, x, needs_a, needs_b):
    """Gradients of ``(x A^T) B^T * scaling`` for A and B (2-D grad, inner = x A^T), and grad wrt inner.
    The scaling multiplies the rank-wide products, not the layer-wide gradient (one pass over it less); B's
    gradient is computed as (inner^T grad)^T, whose large operand is read in its own layout, and inner^T made
    contiguous first (bf16 oneDNN: 37.6 -> 23.2 us for [8, 144] x [144, 1536] on a 2-core Xeon with AMX)."""
    grad_b = inner.t().contiguous().mm(grad).t().mul_(scaling) if needs_b else None
    grad_inner = grad.mm(lora_b).mul_(scaling)
    grad_a = grad_inner.t().mm(x) if needs_a else None
    return grad_a, grad_b, grad_inner


@lru_cache(maxsize=1)
def _functions():
    """The Function classes, built on first use (torch is imported only then)."""
    def lora_linear(x, weight, bias, lora_a, lora_b, scaling):
        """``base(x) + B(A(x)) * s`` with the LoRA product added inside the matmul (addmm), not as two more
        passes over the layer-wide output."""
        inner = F.linear(x, lora_a)
        out = F.linear(x, weight, bias)
        out.view(-1, out.shape[-1]).addmm_(inner.view(-1, inner.shape[-1]), lora_b.t(), alpha=scaling)
        return out, inner

    def compute(x, *adapters):
        """The adapters in x's dtype (the fp32 adapters of a bf16 run, cast as autocast casts them)."""
        return [t.to(x.dtype) for t in adapters]


    def restore_input(ctx, saved):
        return ctx.recompute.take() if ctx.recompute is not None else saved

    class LoraLinear(torch.autograd.Function):
        """peft's LoRA Linear (``base(x) + B(A(x)) * s``); an input that an RMSNorm produced is rebuilt from the
        norm's input in backward instead of being saved."""

        @staticmethod
        def forward(ctx, x, lora_a, lora_b, weight, bias, scaling, recompute):
            ctx.dtypes = lora_a.dtype, lora_b.dtype
            lora_a, lora_b = compute(x, lora_a, lora_b)
            out, inner = lora_linear(x, weight, bias, lora_a, lora_b, scaling)
            if recompute is not None:
                recompute.users += 1
                x_saved = x.new_empty(0)
            else:
                x_saved = x
            ctx.recompute, ctx.scaling = recompute, scaling
            ctx.save_for_backward(x_saved, inner, lora_a, lora_b, weight)
            return out

        @staticmethod
        def backward(ctx, grad):
            x, inner, lora_a, lora_b, weight = ctx.saved_tensors
            x = restore_input(ctx, x)
            shape = grad.shape
            grad, inner = grad.reshape(-1, shape[-1]), inner.reshape(-1, inner.shape[-1])
            x2 = x.reshape(-1, x.shape[-1])
            grad_a, grad_b, grad_inner = lora_grads(grad, inner, lora_b, ctx.scaling, x2,
                                                     ctx.needs_input_grad[1], ctx.needs_input_grad[2])
            grad_x = None
            if ctx.needs_input_grad[0]:
                grad_x = grad.mm(weight).addmm_(grad_inner, lora_a).view(*shape[:-1], weight.shape[1])
            return (grad_x, grad_a if grad_a is None else grad_a.to(ctx.dtypes[0]),
                    grad_b if grad_b is None else grad_b.to(ctx.dtypes[1]), None, None, None, None)

    class LoraMLP(torch.autograd.Function):
        """``down(silu(gate(x)) * up(x))`` with LoRA on the three projections, saving x (or its norm's
        input), gate and up only."""

        @staticmethod
        def forward(ctx, x, a_gate, b_gate, a_up, b_up, a_down, b_down, frozen, scalings, recompute):
            ctx.dtypes = [t.dtype for t in (a_gate, b_gate, a_up, b_up, a_down, b_down)]
            a_gate, b_gate, a_up, b_up, a_down, b_down = compute(x, a_gate, b_gate, a_up, b_up, a_down, b_down)
            (w_gate, bias_gate), (w_up, bias_up), (w_down, bias_down) = frozen
            s_gate, s_up, s_down = scalings
            gate, inner_gate = lora_linear(x, w_gate, bias_gate, a_gate, b_gate, s_gate)
            up, inner_up = lora_linear(x, w_up, bias_up, a_up, b_up, s_up)
            out, inner_down = lora_linear(F.silu(gate).mul_(up), w_down, bias_down, a_down, b_down, s_down)
            if recompute is not None:
                recompute.users += 1
                x_saved = x.new_empty(0)
            else:
                x_saved = x
            ctx.recompute, ctx.scalings = recompute, scalings
            ctx.save_for_backward(x_saved, gate, up, inner_gate, inner_up, inner_down, a_gate, b_gate, a_up, b_up,
                                  a_down, b_down, w_gate, w_up, w_down)
            return out

        @staticmethod
        def backward(ctx, grad):
            (x, gate, up, inner_gate, inner_up, inner_down, a_gate, b_gate, a_up, b_up, a_down, b_down,
             w_gate, w_up, w_down) = ctx.saved_tensors
            x = restore_input(ctx, x)
            s_gate, s_up, s_down = ctx.scalings
            need = ctx.needs_input_grad
            shape = grad.shape

            def flat(t):
                return t.reshape(-1, t.shape[-1])

            grad, gate, up, x2 = flat(grad), flat(gate), flat(up), flat(x)
            act = F.silu(gate)
            hidden = act * up
            grad_a_down, grad_b_down, grad_inner = lora_grads(grad, flat(inner_down), b_down, s_down,
                                                               hidden, need[5], need[6])
            del hidden
            grad_hidden = grad.mm(w_down).addmm_(grad_inner, a_down)
            grad_up = grad_hidden * act
            del act
            grad_gate = torch.ops.aten.silu_backward(grad_hidden.mul_(up), gate)
            del grad_hidden
            grad_a_gate, grad_b_gate, grad_inner_gate = lora_grads(grad_gate, flat(inner_gate), b_gate,
                                                                    s_gate, x2, need[1], need[2])
            grad_a_up, grad_b_up, grad_inner_up = lora_grads(grad_up, flat(inner_up), b_up, s_up, x2,
                                                              need[3], need[4])
            grad_x = None
            if need[0]:
                grad_x = grad_gate.mm(w_gate).addmm_(grad_up, w_up)
                grad_x.addmm_(grad_inner_gate, a_gate).addmm_(grad_inner_up, a_up)
                grad_x = grad_x.view(*shape[:-1], w_gate.shape[1])
            grads = (grad_a_gate, grad_b_gate, grad_a_up, grad_b_up, grad_a_down, grad_b_down)
            return (grad_x, *(None if g is None else g.to(d) for g, d in zip(grads, ctx.dtypes)), None, None, None)

    class HeadCrossEntropy(torch.autograd.Function):
        """Cross-entropy of ``linear(hidden, weight, bias)``, the gradient of hidden computed in forward."""

        @staticmethod
        def forward(ctx, hidden, weight, bias, targets, mean):
            valid = targets.ne(-100)  # F.cross_entropy's default ignore_index
            total = hidden.new_zeros((), dtype=torch.float32)
            grad_hidden = torch.empty_like(hidden)
            rows = max(1, _CE_CHUNK_ELEMENTS // weight.shape[0])
            for start in range(0, hidden.shape[0], rows):
                end = start + rows
                log_probs = torch.log_softmax(F.linear(hidden[start:end], weight, bias).float(), dim=-1)
                target, keep = targets[start:end], valid[start:end]
                picked = log_probs.gather(1, target.clamp(min=0).unsqueeze(1)).squeeze(1)
                total -= picked.masked_fill(~keep, 0.0).sum()
                grad = log_probs.exp_()  # d(sum of -log p[target]) / d logits = softmax - one-hot
                grad.scatter_add_(1, target.clamp(min=0).unsqueeze(1), -keep.unsqueeze(1).to(grad.dtype))
                grad.mul_(keep.unsqueeze(1))
                torch.mm(grad.to(weight.dtype), weight, out=grad_hidden[start:end])
                del log_probs, grad
            if mean:
                count = valid.sum()
                total = total / count
                grad_hidden.div_(count)
            ctx.save_for_backward(grad_hidden)
            return total

        @staticmethod
        def backward(ctx, grad):
            (grad_hidden,) = ctx.saved_tensors
            return grad_hidden * grad.to(grad_hidden.dtype), None, None, None, None

    return types.SimpleNamespace(LoraLinear=LoraLinear, LoraMLP=LoraMLP,
                                 HeadCrossEntropy=HeadCrossEntropy)


# -- the output layer and the loss -------------------------------------------------------------------------
# Rows of logits computed at once: 4M floats (16 MB fp32) per chunk, so a batch's logits never exist whole.
_CE_CHUNK_ELEMENTS = 1 << 22


def head_cross_entropy(head, hidden, targets, reduction: str = "mean"):
    """``F.cross_entropy(head(hidden).float(), targets, reduction=reduction)`` for 2-D ``hidden``.

    The loss is the last op of the graph, so the gradient of its sum with respect to the logits is known in
    the forward pass already (softmax - one-hot). Where it is exact (frozen plain ``nn.Linear`` head, no
    autocast or autocast to the head's own dtype, gradients on), this computes the loss and the gradient of
    ``hidden`` chunk by chunk in the forward pass and keeps only that gradient (rows x hidden) for backward,
    instead of the log-softmax of
    rows x vocabulary (for the demo model 85 times larger) plus the two vocabulary-wide gradients backward
    creates from it. Same matmuls, only moved; otherwise the standard computation.
    """
    weight = getattr(head, "weight", None)
    if (lean_activations_enabled() and type(head) is torch.nn.Linear and torch.is_grad_enabled()
            and hidden.requires_grad and hidden.dim() == 2 and reduction in ("mean", "sum")
            and not weight.requires_grad and (head.bias is None or not head.bias.requires_grad)
            and not (head._forward_hooks or head._forward_pre_hooks) and hidden.dtype == weight.dtype
            and autocast_keeps(hidden)):
        return _functions().HeadCrossEntropy.apply(hidden, weight, head.bias, targets, reduction == "mean")
    return F.cross_entropy(head(hidden).float(), targets, reduction=reduction)


# -- patched forwards -------------------------------------------------------------------------------------
def _norm_source(module, x):
    """The recompute object for x when x is the output the feeding RMSNorm just produced, else None."""
    holder = getattr(module, "_lean_norm_out", None)
    record = holder.get("last") if holder is not None else None
    if record is None:
        return None
    out_ref, recompute = record
    return recompute if out_ref() is x else None


def _mlp_forward(self, x):
    parts = None
    mode = _grad_mode(self, x)
    if mode is not None:
        parts = [plain_lora(p, x.dtype, mode == "mixed") for p in (self.gate_proj, self.up_proj, self.down_proj)]
    if parts is None or any(p is None for p in parts):
        return getattr(self, _ORIGINAL)(x)
    (wg, bg, ag, bgl, sg), (wu, bu, au, bul, su), (wd, bd, ad, bdl, sd) = parts
    return _functions().LoraMLP.apply(x, ag, bgl, au, bul, ad, bdl, ((wg, bg), (wu, bu), (wd, bd)), (sg, su, sd),
                                      _norm_source(self, x))


def _linear_forward(self, x, *args, **kwargs):
    mode = None if args or kwargs else _grad_mode(self, x)
    parts = plain_lora(self, x.dtype, mode == "mixed") if mode is not None else None
    if parts is None:
        return getattr(self, _ORIGINAL)(x, *args, **kwargs)
    weight, bias, lora_a, lora_b, scaling = parts
    return _functions().LoraLinear.apply(x, lora_a, lora_b, weight, bias, scaling, _norm_source(self, x))


def _record_norm_output(holders, norm, inputs, output):
    """Forward hook on an RMSNorm: tell its readers which tensor it produced and how to rebuild it. Weak
    references only: nothing is kept alive beyond what autograd keeps."""
    # Other hooks on the norm (DeepSpeed ZeRO-3 gathers its weight in one) would not run in the recompute.
    if not (norm.training and inputs and getattr(output, "requires_grad", False)
            and not norm._forward_pre_hooks and len(norm._forward_hooks) == 1):
        for holder in holders:
            holder.pop("last", None)
        return
    recompute = _NormRecompute(norm, inputs[0])
    for holder in holders:
        holder["last"] = (weakref.ref(output), recompute)


def _patch(module, forward) -> None:
    setattr(module, _ORIGINAL, module.forward)
    module.forward = types.MethodType(forward, module)


# -- applying ---------------------------------------------------------------------------------------------
def _llama_mlps(model):
    for module in model.modules():
        if all(hasattr(module, a) for a in ("gate_proj", "up_proj", "down_proj", "act_fn")) and is_silu(module.act_fn):
            yield module


def _mlp_matches(mlp) -> bool:
    """The module computes ``down(silu(gate(x)) * up(x))``: checked on a random input against its own forward."""
    lora_class = _lora_linear_class()
    projections = (mlp.gate_proj, mlp.up_proj, mlp.down_proj)
    if not all(type(p) is lora_class for p in projections):
        return False
    dtype = mlp.gate_proj.base_layer.weight.dtype
    parts = [plain_lora(p, dtype, True) for p in projections]
    if any(p is None for p in parts):
        return False
    weight = mlp.gate_proj.base_layer.weight
    generator = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(1, 3, weight.shape[1], generator=generator, dtype=torch.float32).to(weight.device, dtype)
    (wg, bg, ag, bgl, sg), (wu, bu, au, bul, su), (wd, bd, ad, bdl, sd) = parts
    # bf16 weights with fp32 adapters are trained under autocast: compared there, at bf16's precision.
    half = dtype != torch.float32
    with torch.no_grad(), torch.autocast(weight.device.type, dtype=dtype, enabled=half):
        expected = type(mlp).forward(mlp, x)
        got = _functions().LoraMLP.apply(x, ag, bgl, au, bul, ad, bdl, ((wg, bg), (wu, bu), (wd, bd)),
                                         (sg, su, sd), None)
    rtol = 3e-2 if half else 1e-4
    return bool(torch.allclose(got, expected, rtol=rtol, atol=rtol / 10 * float(expected.abs().max()) + 1e-12))


def _norm_readers(model):
    """(RMSNorm, the modules reading its output) in the Llama decoder layout: input_layernorm -> q/k/v
    projections, post_attention_layernorm -> MLP."""
    for layer in model.modules():
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        pre, post = getattr(layer, "input_layernorm", None), getattr(layer, "post_attention_layernorm", None)
        if attn is not None and pre is not None and _is_rms_norm(pre):
            yield pre, [getattr(attn, n, None) for n in ("q_proj", "k_proj", "v_proj")]
        if mlp is not None and post is not None and _is_rms_norm(post):
            yield post, [mlp]


def _use_sdpa_gqa(model, device: str) -> bool:
    """Have SDPA attend grouped-query heads itself on CPU, instead of transformers first repeating k and v
    to every query head (copies that SDPA then saves for backward: 2 x 384 floats per token and layer on the
    demo model). transformers does so by default only without an attention mask, because CUDA kernels would
    fall back to the slow math path; PyTorch's CPU flash kernel takes the mask and GQA together (same output,
    and faster than the repeat here). Process-wide, so decided by the device the job trains on: the model is
    still on the CPU when it is patched, before the Trainer moves it to a GPU."""
    if not cpu_tuned(device):
        return False

    config = getattr(model, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa" or _SDPA_GQA in os.environ:
        return False
    if tuple(int(p) for p in torch.__version__.split(".")[:2]) < (2, 5):  # enable_gqa is new in 2.5
        return False
    params = list(model.parameters())
    if not params or any(p.device.type != "cpu" for p in params):
        return False
    if not any(getattr(m, "num_key_value_groups", 1) > 1 for m in model.modules()):
        return False
    os.environ[_SDPA_GQA] = "1"
    model._lean_sdpa_gqa = True  # so that remove_lean_activations undoes it
    return True


def apply_lean_activations(model, log=print, *, device: str) -> int:
    """Patch the LoRA modules of ``model`` (peft-wrapped), to be trained on ``device`` (a device type), that can
    save less; returns how many modules were patched (0 when switched off or nothing matches)."""
    if not lean_activations_enabled():
        return 0
    lora_class = _lora_linear_class()
    mlps = [m for m in _llama_mlps(model) if not hasattr(m, _ORIGINAL) and _mlp_matches(m)]
    for mlp in mlps:
        _patch(mlp, _mlp_forward)
    patched_mlps = {id(m) for m in mlps}
    linears = 0
    for norm, readers in _norm_readers(model):
        # Readers that are not LoRA Linears (a frozen projection) save nothing of the norm's output.
        readers = [r for r in readers if id(r) in patched_mlps
                   or (type(r) is lora_class and plain_lora(r, r.base_layer.weight.dtype, True) is not None)]
        if not readers or hasattr(norm, _NORM_HOOK):
            continue
        for reader in readers:
            if not hasattr(reader, _ORIGINAL):
                _patch(reader, _linear_forward)
                linears += 1
            reader._lean_norm_out = {}
        holders = tuple(r._lean_norm_out for r in readers)
        handle = norm.register_forward_hook(lambda m, i, o, h=holders: _record_norm_output(h, m, i, o))
        setattr(norm, _NORM_HOOK, handle)
    # The other LoRA Linears (attention's output projection) save what peft's would, with the LoRA product
    # added inside the matmul and, in a bf16 run, no autocast casts of their own.
    inside_mlps = {id(p) for m in mlps for p in (m.gate_proj, m.up_proj, m.down_proj)}
    others = 0
    for module in model.modules():
        if (type(module) is lora_class and id(module) not in inside_mlps and not hasattr(module, _ORIGINAL)
                and plain_lora(module, module.base_layer.weight.dtype, True) is not None):
            _patch(module, _linear_forward)
            others += 1
    count = len(mlps) + linears + others
    if count:
        gqa = _use_sdpa_gqa(model, device)
        log(f"lean activations on: {len(mlps)} MLPs and {linears} norm-fed LoRA projections save less for "
            f"backward, {others} other LoRA projections fused{', attention keeps grouped k/v' if gqa else ''} "
            "(TUNEBOARD_LEAN_ACTIVATIONS=0 turns this off)")
    return count


def remove_lean_activations(model) -> None:
    """Undo :func:`apply_lean_activations`."""
    if getattr(model, "_lean_sdpa_gqa", False):
        os.environ.pop(_SDPA_GQA, None)
        del model._lean_sdpa_gqa
    for module in model.modules():
        if hasattr(module, _ORIGINAL):
            del module.forward
            delattr(module, _ORIGINAL)
        if hasattr(module, "_lean_norm_out"):
            del module._lean_norm_out
        handle = getattr(module, _NORM_HOOK, None)
        if handle is not None:
            handle.remove()
            delattr(module, _NORM_HOOK)
