"""Shift short attention (LongLoRA's S²-Attn) for training, through transformers' attention interface.

The sequence is cut into groups of a quarter of its length and each token attends causally within its group.
Half of the heads use groups shifted by half a group, so information flows between neighbouring groups. The
paper rolls those heads' tokens around the sequence, which lets the first tokens see the last ones (a leak
under a causal mask); here the shifted heads' groups start at half a group instead ([g/2, g, ..., rest]): the
same groups without the wrap-around. Training only: in evaluation and generation the model attends in full,
as LongLoRA does.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

NAME = "tuneboard_shift_short"
GROUP_SHARE = 4  # a group is 1/4 of the sequence (the paper's setting)


def group_lengths(length: int, shifted: bool) -> list[int]:
    """The groups a sequence of ``length`` tokens is cut into: a quarter each, or (``shifted``) a half group
    first; the last group takes what is left."""
    group = max(1, -(-length // GROUP_SHARE))
    first = min(length, max(1, group // 2) if shifted else group)
    rest = length - first
    return [first] + [group] * (rest // group) + ([rest % group] if rest % group else [])


def _grouped(query, key, value, lengths: list[int], dropout: float, scaling):
    """Causal SDPA inside each group (dimension 2 of the tensors cut by ``lengths``)."""
    return torch.cat([torch.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling,
                                                                        is_causal=True)
                      for q, k, v in zip(*(t.split(lengths, dim=2) for t in (query, key, value)))], dim=2)


def shift_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                    is_causal=None, **kwargs):
    """An attention function for ``AttentionInterface`` (the arguments and output of transformers' ``sdpa``).

    Batches are padded on the right (the collators do): a real token never sees the padding after it under a
    causal mask, so the padding mask is not needed inside the groups."""
    length = query.shape[2]
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    if not (module.training and causal and key.shape[2] == length and length >= GROUP_SHARE):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    groups = query.shape[1] // key.shape[1]
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)  # every query head gets its own k/v to split
    half = query.shape[1] // 2
    plain = _grouped(query[:, :half], key[:, :half], value[:, :half], group_lengths(length, False), dropout, scaling)
    shifted = _grouped(query[:, half:], key[:, half:], value[:, half:], group_lengths(length, True), dropout,
                       scaling)
    return torch.cat([plain, shifted], dim=1).transpose(1, 2).contiguous(), None


def use_shift_attention(model, log=print) -> None:
    """Switch ``model`` (looking through a peft wrapper) to :func:`shift_attention`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    AttentionInterface.register(NAME, shift_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # evaluation and generation attend in full
    base.set_attn_implementation(NAME)
    if base.config._attn_implementation != NAME:
        raise ValueError(f"train.shift_attn: this model does not take another attention function "
                         f"({type(base).__name__})")
    log("shift short attention (S²-Attn): groups of a quarter of the sequence, half of the heads shifted by half "
        "a group")
