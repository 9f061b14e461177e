"""Batches for the Trainer: padded to the longest sample, or packed (padding-free) into one row."""

from __future__ import annotations

import torch
from transformers import DataCollatorWithFlattening

from engine.core.templates import IGNORE_INDEX

# Key of a packed batch: how many padding tokens end its row (see PackingCollator); the trainer takes it out.
TAIL_PADDING = "tail_padding"


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class PaddingCollator:
    """Pads a batch to its longest sample, rounded up to ``multiple`` tokens; labels padded with IGNORE_INDEX."""

    def __init__(self, pad_token_id: int, multiple: int = 1):
        self.pad_token_id, self.multiple = pad_token_id, multiple

    def __call__(self, rows: list[dict]) -> dict:
        width = _round_up(max(len(r["input_ids"]) for r in rows), self.multiple)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


class PackingCollator:
    """Padding-free batches: the samples of a batch side by side in one row, positions restarting at each
    sample and no attention mask, so the model keeps attention inside each sample (transformers builds a
    block-diagonal mask from the positions) and the first label of each sample is not predicted from the last.

    With ``multiple`` > 1 the row is rounded up with padding that continues the last sample (positions going
    on, no labels): causal attention never shows it to a real token, so the loss is unchanged. Its count goes
    in the batch under TAIL_PADDING.

    ``neat`` off (LlamaBoard's plain packing): the positions run on through the whole row, so it is one causal
    sequence and each sample attends to the samples before it too."""

    def __init__(self, pad_token_id: int, multiple: int = 1, neat: bool = True):
        self.pad_token_id, self.multiple, self.neat = pad_token_id, multiple, neat
        self._flatten = DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE_INDEX)

    def __call__(self, rows: list[dict]) -> dict:
        batch = self._flatten(rows)
        length = batch["input_ids"].shape[1]
        extra = _round_up(length, self.multiple) - length
        if extra:
            last = batch["position_ids"][0, -1]
            tail = {"input_ids": torch.full((1, extra), self.pad_token_id),
                    "labels": torch.full((1, extra), IGNORE_INDEX),
                    "position_ids": torch.arange(1, extra + 1).unsqueeze(0) + last}
            batch = {k: torch.cat([v, tail[k].to(v.dtype)], dim=1) if k in tail else v for k, v in batch.items()}
            batch[TAIL_PADDING] = extra
        if not self.neat:
            batch["position_ids"] = torch.arange(batch["input_ids"].shape[1]).unsqueeze(0)
        return batch
