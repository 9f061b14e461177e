"""Token ids for each training stage, built with the same chat template chat uses.

Every stage tokenises through :class:`engine.core.templates.ChatFormatter`, so a
preference pair, a KTO sample and an SFT sample see exactly the prompt the
model is shown at chat time. The trl trainers get these ids ready-made.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass

from engine.core.config import PREFERENCE_STAGES, RunConfig
from engine.core.data import load_samples
from engine.core.paths import confined_data_dir
from engine.core.templates import IGNORE_INDEX, ChatFormatter


def _fit(prompt: list[int], answers: list[list[int]], cutoff: int) -> tuple[list[int], list[list[int]]]:
    """Cut prompt + answer to ``cutoff``: answers keep at least half; the prompt loses its beginning, since
    its end (the question and the generation prompt) is what the answer follows."""
    longest = max(len(a) for a in answers)
    if len(prompt) + longest <= cutoff:
        return prompt, answers
    answer_room = max(cutoff - len(prompt), cutoff // 2)
    answers = [a[:answer_room] for a in answers]
    prompt_room = cutoff - max(len(a) for a in answers)
    return (prompt[-prompt_room:] if prompt_room > 0 else []), answers


def training_formatter(cfg: RunConfig, tokenizer) -> ChatFormatter:
    """The formatter every encoding of ``cfg``'s data goes through (training, its checks and previews, the
    evaluation loss), so all of them follow ``data.enable_thinking`` alike."""
    return ChatFormatter(tokenizer, cfg.model.template, enable_thinking=cfg.data.enable_thinking)


def _prompt_and_answer(formatter: ChatFormatter, messages: list[dict]) -> tuple[list[int], list[int]]:
    """Ids of everything before the last answer, and of the last answer (with its end-of-turn marker). Earlier
    answers appear as at chat time, without reasoning (LLaMA-Factory's one-turn encoding)."""
    pieces = formatter.segments(messages, history_thoughts=False)
    prompt = [i for text, _ in pieces[:-1] for i in formatter.tokens(text)]
    return prompt, formatter.tokens(pieces[-1][0])


def _with_answer(messages: list[dict], answer: str) -> list[dict]:
    return messages[:-1] + [{"role": "assistant", "content": answer}]


# What a cutoff does to one sample: nothing, cut it to the cutoff (pre-training: split it into rows), or drop it.
KEPT, CUT, DROPPED = "kept", "cut", "dropped"
UNCUT = sys.maxsize  # a cutoff that cuts nothing


@dataclass(frozen=True)
class SampleSize:
    """All a cutoff needs to know of one encoded sample, so its fate under any cutoff is known without
    encoding again: its tokens uncut (preference pairs: prompt + longer answer) and, for SFT, the position
    of the first token it trains on (``tokens`` when it trains on none)."""

    tokens: int
    first_trained: int = 0

    def fate(self, stage: str, cutoff: int) -> str:
        if stage == "pt":  # split into rows of the cutoff; a text of one token (EOS alone) gives no row
            return DROPPED if self.tokens <= 1 else CUT if self.tokens > cutoff else KEPT
        if self.first_trained >= min(cutoff, self.tokens):
            return DROPPED  # the answer lies wholly beyond the cutoff: nothing to learn from
        return CUT if self.tokens > cutoff else KEPT


def _text_ids(tokenizer, text: str) -> list[int]:
    """Pre-training ids of one text: the text and EOS (and BOS where the tokenizer adds one)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    if tokenizer.bos_token_id is not None and getattr(tokenizer, "add_bos_token", False):
        ids.insert(0, tokenizer.bos_token_id)
    return ids


def encode_uncut(cfg: RunConfig, formatter: ChatFormatter, sample) -> dict:
    """The row ``cfg.train.stage`` trains on, before the cutoff is applied (see :func:`fit_row`)."""
    stage = cfg.train.stage
    if stage == "pt":
        ids = _text_ids(formatter.tokenizer, sample.text)
        return {"input_ids": ids, "labels": list(ids)}
    messages = sample.chat_messages()
    if stage == "sft":
        return formatter.encode_supervised(messages, UNCUT, train_on_prompt=cfg.data.train_on_prompt,
                                           mask_history=cfg.data.mask_history)
    if stage in PREFERENCE_STAGES:
        prompt, chosen = _prompt_and_answer(formatter, messages)
        _, rejected = _prompt_and_answer(formatter, _with_answer(messages, sample.rejected))
        return {"prompt_ids": prompt, "chosen_ids": chosen, "rejected_ids": rejected}
    if stage == "kto":
        prompt, answer = _prompt_and_answer(formatter, messages)
        return {"prompt_ids": prompt, "completion_ids": answer, "label": bool(sample.kto_tag)}
    if stage == "ppo":  # the model writes its own answers to the prompts; the dataset's answers are not used
        return {"prompt_ids": _prompt_and_answer(formatter, messages)[0]}
    if stage == "grpo":  # completions are sampled from the prompt; the dataset's answer is the accuracy reference
        prompt, _ = _prompt_and_answer(formatter, messages)
        return {"prompt_ids": prompt, "answer": str(messages[-1]["content"])}
    raise ValueError(f"unknown stage {stage!r}")


def sample_size(row: dict) -> SampleSize:
    """The size of an uncut row (from :func:`encode_uncut`)."""
    if "labels" not in row:
        return SampleSize(row_length(row))
    labels = row["labels"]
    return SampleSize(len(labels), next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(labels)))


def fit_row(stage: str, row: dict, cutoff: int) -> list[dict]:
    """The training rows an uncut row gives under ``cutoff``: cut to it (pre-training: split into rows of it)."""
    if stage == "pt":
        ids = row["input_ids"]
        return [{"input_ids": ids[i:i + cutoff], "labels": ids[i:i + cutoff]} for i in range(0, len(ids), cutoff)
                if len(ids[i:i + cutoff]) > 1]
    if stage == "sft":
        return [{key: ids[:cutoff] for key, ids in row.items()}]
    if stage in ("ppo", "grpo"):  # the prompt's end (the question and the generation prompt) is what answers follow
        return [dict(row, prompt_ids=row["prompt_ids"][-cutoff:])]
    if stage == "kto":
        prompt, (answer,) = _fit(row["prompt_ids"], [row["completion_ids"]], cutoff)
        return [{"prompt_ids": prompt, "completion_ids": answer, "label": row["label"]}]
    prompt, (chosen, rejected) = _fit(row["prompt_ids"], [row["chosen_ids"], row["rejected_ids"]], cutoff)
    return [{"prompt_ids": prompt, "chosen_ids": chosen, "rejected_ids": rejected}]


def encode_samples(cfg: RunConfig, tokenizer, samples: list, log=print) -> list[dict]:
    """Rows for ``cfg.train.stage``. Longer samples are cut to the cutoff and those whose answer lies wholly
    beyond it are skipped; ``log`` says how many of each, so a too-small cutoff_len is not silent.
    Pre-training texts are split into rows of the cutoff instead: nothing is cut away."""
    stage, cutoff = cfg.train.stage, cfg.data.cutoff_len
    formatter = training_formatter(cfg, tokenizer)
    rows, skipped, cut = [], 0, 0
    for sample in samples:
        row = encode_uncut(cfg, formatter, sample)
        fate = sample_size(row).fate(stage, cutoff)
        if fate != DROPPED:
            rows.extend(fit_row(stage, row, cutoff))
        if stage != "pt":
            skipped += fate == DROPPED
            cut += fate == CUT
    if cut:
        log(f"cut {cut} of {len(samples)} samples longer than cutoff_len={cutoff} tokens to that length")
    if skipped:
        log(f"skipped {skipped} samples whose answer lies beyond cutoff_len={cutoff}")
    return rows


def training_samples(cfg: RunConfig) -> list:
    """The samples a run of ``cfg`` trains on: its datasets read for its stage, placeholders filled."""
    fill = {"name": cfg.data.identity_name, "author": cfg.data.identity_author}
    return load_samples(confined_data_dir(cfg.data.dataset_dir), cfg.data.datasets,
                        cfg.data.max_samples, fill, stage=cfg.train.stage)


def encode_dataset(cfg: RunConfig, tokenizer, log=print) -> tuple[list[dict], list[dict]]:
    """Load the chosen datasets for the stage, encode them, and split off validation rows."""
    rows = encode_samples(cfg, tokenizer, training_samples(cfg), log)
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
    return len(row["prompt_ids"]) + max(answers, default=0)  # ppo and grpo rows: a prompt alone
