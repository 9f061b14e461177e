"""Packed (padding-free) batches attend inside each sample without scoring the whole row.

transformers runs a packed row through SDPA with a block-diagonal mask over the full row: every token is
scored against the other samples' tokens too, and those scores are thrown away. With the demo run's rows
(4 samples of about 75 tokens) that is four times the attention the samples need, about 9% of a training
step on CPU: more than the padding that packing saves. This attention function cuts the row where the
positions restart (the rule transformers' mask follows), lays the samples side by side in a batch padded
to a shared width and runs causal SDPA once over it: the same attention, without the cross-sample work. Everything else (padded batches, generation with a KV cache, a
row holding one sample, sliding windows, attention sinks) goes to transformers' SDPA unchanged.

Imports of torch and transformers stay inside functions: the web process imports engine modules and must
start fast.
"""

from __future__ import annotations

import contextlib
import weakref

NAME = "tuneboard_segments"
# Keyword arguments some models pass that change attention inside a sample: left to transformers' SDPA.
_SPECIAL = ("sliding_window", "s_aux", "softcap", "position_bias", "cache")


def sample_lengths(position_ids, length: int) -> list[int] | None:
    """The length of each sample of a packed row of ``length`` tokens, from its positions (a new sample
    wherever the position does not go up by one, as transformers' block-diagonal mask has it); None unless
    the batch is one row holding several samples."""
    import torch  # noqa: PLC0415

    if position_ids is None or position_ids.dim() != 2 or tuple(position_ids.shape) != (1, length):
        return None
    starts = [0, *((torch.diff(position_ids[0]) != 1).nonzero().flatten() + 1).tolist()]
    if len(starts) < 2:
        return None
    return [end - start for start, end in zip(starts, [*starts[1:], length])]


def segment_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                      is_causal=None, **kwargs):
    """An attention function for transformers' ``AttentionInterface`` (same arguments and output as its
    ``sdpa``)."""
    import torch  # noqa: PLC0415
    from transformers.integrations.sdpa_attention import sdpa_attention_forward  # noqa: PLC0415

    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    layout = None
    if causal and query.shape[2] == key.shape[2] and all(kwargs.get(k) is None for k in _SPECIAL):
        layout = _layout(kwargs.get("position_ids"), query.shape[2])
    if layout is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    gqa = {"enable_gqa": True} if getattr(module, "num_key_value_groups", 1) > 1 else {}
    gather, scatter, width, count = layout
    # Each sample padded to one shared width (a multiple of _BUCKET), all attended in one call: rows past a
    # sample's end come after its real tokens, so causal attention never shows them to a real query, and their
    # outputs are dropped. Few distinct widths keep the CPU's per-shape kernel caches small.
    padded = [t[0].index_select(1, gather).unflatten(1, (count, width)).transpose(0, 1)
              for t in (query, key, value)]
    half = query.device.type == "cpu" and query.dtype in (torch.bfloat16, torch.float16)
    if half:  # the CPU's fp32 attention kernel ran forward + backward 1.5-2.3x faster than its bf16 one here
        padded = [t.float() for t in padded]
    with torch.autocast(query.device.type, enabled=False) if half else contextlib.nullcontext():
        out = torch.nn.functional.scaled_dot_product_attention(*padded, dropout_p=dropout, scale=scaling,
                                                               is_causal=True, **gqa)
    out = out.to(query.dtype)
    out = out.transpose(0, 1).flatten(1, 2).index_select(1, scatter)  # (heads, row, head_dim)
    return out.transpose(0, 1).unsqueeze(0).contiguous(), None


# Sample widths are padded up to a multiple of this (oneDNN on CPU builds and caches kernels per shape).
_BUCKET = 32


# Every layer of a forward pass sees the same positions tensor: its layout is worked out once (on a GPU that
# is one host synchronisation per batch instead of one per layer).
_last_layout: list = [None, None]  # [weak reference to the positions, their layout]


def _layout(position_ids, length: int):
    """For a packed row: index of the row token feeding each padded slot (a sample's last token repeated past
    its end), index of each row token's slot, the padded width and the number of samples; else None."""
    import torch  # noqa: PLC0415

    # Inference tensors (generation) keep no version counter to tell an in-place change: not cached.
    key = None if position_ids is None or position_ids.is_inference() else (position_ids._version, length)
    ref, cached = _last_layout
    if key is not None and ref is not None and ref() is position_ids and cached[0] == key:
        return cached[1]
    lengths = sample_lengths(position_ids, length)
    layout = None
    if lengths is not None:
        width = -(-max(lengths) // _BUCKET) * _BUCKET
        gather, scatter, start = [], [], 0
        for i, n in enumerate(lengths):
            gather.extend(range(start, start + n))
            gather.extend([start + n - 1] * (width - n))
            scatter.extend(range(i * width, i * width + n))
            start += n
        device = position_ids.device
        layout = (torch.tensor(gather, device=device), torch.tensor(scatter, device=device), width, len(lengths))
    if key is not None:
        _last_layout[:] = [weakref.ref(position_ids), (key, layout)]
    return layout


def use_segment_attention(model, log=print) -> bool:
    """Switch ``model`` (a transformers model running SDPA) to :func:`segment_attention`; False where it
    runs another attention (eager, flash attention: the latter handles packed rows itself)."""
    from transformers import AttentionInterface  # noqa: PLC0415
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask  # noqa: PLC0415

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
