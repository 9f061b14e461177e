"""Packed (padding-free) batches attend inside each sample without scoring the whole row.

transformers runs a packed row through SDPA with a block-diagonal mask over the full row: every token is
scored against the other samples' tokens too, and those scores are thrown away. With the demo run's rows
(4 samples of about 75 tokens) that is four times the attention the samples need, about 9% of a training
step on CPU: more than the padding that packing saves. This attention function cuts the row where the
positions restart (the rule transformers' mask follows) and runs causal SDPA on each sample: the same
attention, without the cross-sample work. Everything else (padded batches, generation with a KV cache, a
row holding one sample, sliding windows, attention sinks) goes to transformers' SDPA unchanged.

Imports of torch and transformers stay inside functions: the web process imports engine modules and must
start fast.
"""

from __future__ import annotations

import contextlib
import weakref

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

NAME = "tuneboard_segments"
# Keyword arguments some models pass that change attention inside a sample: left to transformers' SDPA.
SPECIAL_ARGUMENTS = ("sliding_window", "s_aux", "softcap", "position_bias", "cache")


def sample_lengths(position_ids, length: int) -> list[int] | None:
    """The length of each sample of a packed row of ``length`` tokens, from its positions (a new sample
    wherever the position does not go up by one, as transformers' block-diagonal mask has it); None unless
    the batch is one row holding several samples."""
    if position_ids is None or position_ids.dim() != 2 or tuple(position_ids.shape) != (1, length):
        return None
    starts = [0, *((torch.diff(position_ids[0]) != 1).nonzero().flatten() + 1).tolist()]
    if len(starts) < 2:
        return None
    return [end - start for start, end in zip(starts, [*starts[1:], length])]


# Under torch_compile (engine/train/compile_layers.py) this runs as it is, between the layer's compiled parts: each
# row's sample lengths would otherwise be constants of a new graph, compiled anew for every batch.
@torch.compiler.disable
def segment_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                      is_causal=None, **kwargs):
    """An attention function for transformers' ``AttentionInterface`` (same arguments and output as its
    ``sdpa``)."""
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    lengths = None
    if causal and query.shape[2] == key.shape[2] and all(kwargs.get(k) is None for k in SPECIAL_ARGUMENTS):
        lengths = cached_lengths(kwargs.get("position_ids"), query.shape[2])
    if lengths is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    gqa = {"enable_gqa": True} if getattr(module, "num_key_value_groups", 1) > 1 else {}
    half = query.device.type == "cpu" and query.dtype in (torch.bfloat16, torch.float16)
    # On CPU the fp32 attention kernel is faster than the bf16 one (README, Benchmarks), and it keeps no kernel
    # per shape (oneDNN's bf16 one does: samples of every length would grow the cache).
    parts = (query.float(), key.float(), value.float()) if half else (query, key, value)
    with torch.autocast(query.device.type, enabled=False) if half else contextlib.nullcontext():
        # split, not slicing: its backward joins the samples' gradients instead of adding up zero-filled rows.
        out = torch.cat([torch.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling,
                                                                          is_causal=True, **gqa)
                         for q, k, v in zip(*(t.split(lengths, dim=2) for t in parts))], dim=2)
    return out.to(query.dtype).transpose(1, 2).contiguous(), None


# Every layer of a forward pass sees the same positions tensor: its samples are worked out once (on a GPU that
# is one host synchronisation per batch instead of one per layer).
_last_lengths: list = [None, None, None]  # [weak reference to the positions, (version, length), lengths]


def cached_lengths(position_ids, length: int) -> list[int] | None:
    """:func:`sample_lengths`, remembered for the positions tensor it was last asked about."""
    # Inference tensors (generation) keep no version counter to tell an in-place change: not remembered.
    key = None if position_ids is None or position_ids.is_inference() else (position_ids._version, length)
    ref, known, lengths = _last_lengths
    if key is not None and ref is not None and ref() is position_ids and known == key:
        return lengths
    lengths = sample_lengths(position_ids, length)
    if key is not None:
        _last_lengths[:] = [weakref.ref(position_ids), key, lengths]
    return lengths


def use_segment_attention(model, log=print) -> bool:
    """Switch ``model`` (a transformers model running SDPA) to :func:`segment_attention`; False where it
    runs another attention (eager, flash attention: the latter handles packed rows itself)."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa" or not hasattr(model, "set_attn_implementation"):
        return False
    AttentionInterface.register(NAME, segment_attention)
    # The mask for the fallback cases (padded rows, generation) is SDPA's.
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
    if model.config._attn_implementation != NAME:
        return False
    log("packed rows: attention runs sample by sample (no scores across samples)")
    return True
