"""Batched generation pieces shared by evaluation (predicted answers) and probe questions during training."""

from __future__ import annotations

import torch
from transformers import StoppingCriteria

from engine.core.cpu_threads import ThreadGovernor


def left_padded(prompts: list[list[int]], pad_id: int):
    """(input_ids, attention_mask) tensors of token-id lists, padded on the left so every answer starts at the
    same column (the width of the batch)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
        mask[row, width - len(prompt):] = 1
    return ids, mask


class GovernedSteps(StoppingCriteria):
    """Stops nothing: at every decoded token it lets ``governor`` set the decoding thread's thread count (one
    answer can take long enough for another process to start or end in the meantime)."""

    def __init__(self, governor: ThreadGovernor) -> None:
        self.governor = governor

    def __call__(self, input_ids, scores, **kwargs):  # noqa: ARG002 - generate passes them
        self.governor.adjust()
        return False


def governed(criteria: list, governor: ThreadGovernor | None) -> list:
    """``criteria`` with a :class:`GovernedSteps` added where there is a governor."""
    return [*criteria, GovernedSteps(governor)] if governor is not None else criteria


def decode_answer(tokenizer, new_ids: list[int], stop_ids: list[int]) -> str:
    """The text of generated ids up to the first stop token. An answer cut by the token limit may end inside a
    character's bytes: that partial character (decoded as U+FFFD) is dropped."""
    cut = next((k for k, tok in enumerate(new_ids) if tok in stop_ids), len(new_ids))
    text = tokenizer.decode(new_ids[:cut], skip_special_tokens=True).strip()
    return text.rstrip("\ufffd") if cut == len(new_ids) else text


def forked_rng(model):
    """A context in which random numbers may be drawn without changing what the code after it draws: the CPU's
    generator and that of the model's accelerator are restored on exit."""
    devices = [p.device for p in model.parameters() if p.device.type != "cpu"][:1]
    return torch.random.fork_rng(devices=devices, device_type=devices[0].type if devices else "cuda")
