"""Token ids for each training stage, built with the same chat template chat uses.

Every stage tokenises through :class:`engine.templates.ChatFormatter`, so a
preference pair, a KTO sample and an SFT sample see exactly the prompt the
model is shown at chat time. The trl trainers get these ids ready-made.
"""

from __future__ import annotations

import random

from engine.config import PREFERENCE_STAGES, RunConfig
from engine.templates import IGNORE_INDEX, ChatFormatter


def _fit(prompt: list[int], answers: list[list[int]], cutoff: int) -> tuple[list[int], list[list[int]], bool]:
    """Cut prompt + answer to ``cutoff``: answers keep at least half; the prompt loses its beginning, since
    its end (the question and the generation prompt) is what the answer follows. The flag: whether it cut."""
    longest = max(len(a) for a in answers)
    if len(prompt) + longest <= cutoff:
        return prompt, answers, False
    answer_room = max(cutoff - len(prompt), cutoff // 2)
    answers = [a[:answer_room] for a in answers]
    prompt_room = cutoff - max(len(a) for a in answers)
    return (prompt[-prompt_room:] if prompt_room > 0 else []), answers, True


def _prompt_and_answer(formatter: ChatFormatter, messages: list[dict]) -> tuple[list[int], list[int]]:
    """Ids of everything before the last answer, and of the last answer (with its end-of-turn marker)."""
    pieces = formatter.segments(messages)
    encode = formatter.tokenizer.encode
    prompt = [i for text, _ in pieces[:-1] for i in encode(text, add_special_tokens=False)]
    return prompt, encode(pieces[-1][0], add_special_tokens=False)


def _with_answer(messages: list[dict], answer: str) -> list[dict]:
    return messages[:-1] + [{"role": "assistant", "content": answer}]


def encode_text(tokenizer, text: str, cutoff: int) -> list[dict]:
    """Pre-training: the text and EOS, cut into rows of ``cutoff`` tokens (nothing is thrown away)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    if tokenizer.bos_token_id is not None and getattr(tokenizer, "add_bos_token", False):
        ids.insert(0, tokenizer.bos_token_id)
    return [{"input_ids": ids[i:i + cutoff], "labels": ids[i:i + cutoff]} for i in range(0, len(ids), cutoff)
            if len(ids[i:i + cutoff]) > 1]


def encode_samples(cfg: RunConfig, tokenizer, samples: list, log=print) -> list[dict]:
    """Rows for ``cfg.train.stage``. Longer samples are cut to the cutoff and those whose answer lies wholly
    beyond it are skipped; ``log`` says how many of each, so a too-small cutoff_len is not silent."""
    stage, cutoff = cfg.train.stage, cfg.data.cutoff_len
    formatter = ChatFormatter(tokenizer, cfg.model.template)
    rows, skipped, cut = [], 0, 0
    for sample in samples:
        if stage == "pt":
            rows.extend(encode_text(tokenizer, sample.text, cutoff))  # split into rows, nothing is cut away
            continue
        messages = sample.chat_messages()
        if stage == "sft":
            # One token of room beyond the cutoff tells a sample that was cut from one that fits exactly.
            row = formatter.encode_supervised(messages, cutoff + 1, train_on_prompt=cfg.data.train_on_prompt,
                                              mask_history=cfg.data.mask_history)
            was_cut = len(row["input_ids"]) > cutoff
            row = {key: ids[:cutoff] for key, ids in row.items()}
            if all(label == IGNORE_INDEX for label in row["labels"]):
                skipped += 1  # the answer was cut off entirely: nothing to learn from
                continue
            cut += was_cut
            rows.append(row)
        elif stage in PREFERENCE_STAGES:
            prompt, chosen = _prompt_and_answer(formatter, messages)
            _, rejected = _prompt_and_answer(formatter, _with_answer(messages, sample.rejected))
            prompt, (chosen, rejected), was_cut = _fit(prompt, [chosen, rejected], cutoff)
            cut += was_cut
            rows.append({"prompt_ids": prompt, "chosen_ids": chosen, "rejected_ids": rejected})
        elif stage == "kto":
            prompt, answer = _prompt_and_answer(formatter, messages)
            prompt, (answer,), was_cut = _fit(prompt, [answer], cutoff)
            cut += was_cut
            rows.append({"prompt_ids": prompt, "completion_ids": answer, "label": bool(sample.kto_tag)})
        else:
            raise ValueError(f"unknown stage {stage!r}")
    if cut:
        log(f"cut {cut} of {len(samples)} samples longer than cutoff_len={cutoff} tokens to that length")
    if skipped:
        log(f"skipped {skipped} samples whose answer lies beyond cutoff_len={cutoff}")
    return rows


def encode_dataset(cfg: RunConfig, tokenizer, log=print) -> tuple[list[dict], list[dict]]:
    """Load the chosen datasets for the stage, encode them, and split off validation rows."""
    from engine.data import load_samples  # noqa: PLC0415
    from engine.paths import resolve_user_dir  # noqa: PLC0415

    fill = {"name": cfg.data.identity_name, "author": cfg.data.identity_author}
    samples = load_samples(resolve_user_dir(cfg.data.dataset_dir, "data folder"), cfg.data.datasets,
                           cfg.data.max_samples, fill, stage=cfg.train.stage)
    rows = encode_samples(cfg, tokenizer, samples, log)
    if not rows:
        raise ValueError("no sample has an answer within the cutoff length; raise data.cutoff_len")
    random.Random(cfg.train.seed).shuffle(rows)
    n_val = int(round(len(rows) * cfg.data.val_size))
    if cfg.data.val_size > 0:
        n_val = max(1, n_val)
    return rows[n_val:], rows[:n_val]


def row_length(row: dict) -> int:
    """Tokens a row feeds (for length-grouped batches and token counts)."""
    if "input_ids" in row:
        return len(row["input_ids"])
    answers = [len(row[k]) for k in ("chosen_ids", "rejected_ids", "completion_ids") if k in row]
    return len(row["prompt_ids"]) + max(answers)


class PaddingCollator:
    """Pads a batch to its longest sample; labels padded with IGNORE_INDEX."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[dict]) -> dict:
        import torch  # noqa: PLC0415

        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def packing_collator():
    """Padding-free batches: the samples of a batch side by side in one row, positions restarting at each
    sample and no attention mask, so the model keeps attention inside each sample (transformers builds a
    block-diagonal mask from the positions) and the first label of each sample is not predicted from the last."""
    from transformers import DataCollatorWithFlattening  # noqa: PLC0415

    return DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE_INDEX)
