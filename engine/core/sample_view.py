"""One sample exactly as training feeds it: the decoded tokens, split into the masked prompt, the trained
answer and what the cutoff cuts away.

The rows come from the training encoder (:func:`engine.core.encode.encode_uncut` and :func:`engine.core.encode.fit_row`)
and are decoded with special tokens kept, so the text is what the model sees, template markers included.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.config import RunConfig
from engine.core.encode import encode_uncut, fit_row, sample_size, training_formatter
from engine.core.templates import IGNORE_INDEX

MASKED, TRAINED, CUT_AWAY = "masked", "trained", "cut"


@dataclass(frozen=True)
class Span:
    text: str
    kind: str  # MASKED (seen, not trained on), TRAINED (in the loss) or CUT_AWAY (beyond the cutoff, never seen)
    tokens: int


@dataclass(frozen=True)
class SampleView:
    """One sequence the model sees. ``part``: sample (SFT), chosen / rejected (preference pairs),
    desirable / undesirable (KTO), prompt (GRPO), piece (pre-training, ``number`` counting the rows a text is split
    into)."""

    part: str
    number: int
    spans: list[Span]

    def tokens(self, kind: str) -> int:
        return sum(span.tokens for span in self.spans if span.kind == kind)


def _decode(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _spans(tokenizer, pieces: list[tuple[list[int], str]]) -> list[Span]:
    """Spans of (ids, kind) pieces, empty ones left out and neighbours of one kind joined.

    The sequence is decoded whole and cut where each span's tokens end: a cutoff may fall inside a character
    of several bytes, which decoding each span alone would garble on both sides; that character goes whole
    to the later span."""
    joined: list[tuple[list[int], str]] = []
    for ids, kind in pieces:
        if not ids:
            continue
        if joined and joined[-1][1] == kind:
            joined[-1] = (joined[-1][0] + ids, kind)
        else:
            joined.append((list(ids), kind))
    every = [token for ids, _ in joined for token in ids]
    full = _decode(tokenizer, every)
    spans, start, done = [], 0, 0
    for ids, kind in joined:
        done += len(ids)
        prefix = _decode(tokenizer, every[:done]).rstrip("\ufffd")  # an unfinished character is not shown yet
        while not full.startswith(prefix):
            prefix = prefix[:-1]
        end = len(full) if done == len(every) else max(start, len(prefix))
        spans.append(Span(full[start:end], kind, len(ids)))
        start = end
    return spans


def _labelled(input_ids: list[int], labels: list[int]) -> list[tuple[list[int], str]]:
    return [([token], MASKED if label == IGNORE_INDEX else TRAINED) for token, label in zip(input_ids, labels)]


def sample_views(cfg: RunConfig, tokenizer, sample) -> tuple[str, list[SampleView]]:
    """(fate of the sample under ``cfg.data.cutoff_len``: kept / cut / dropped, the sequences it gives)."""
    stage, cutoff = cfg.train.stage, cfg.data.cutoff_len
    row = encode_uncut(cfg, training_formatter(cfg, tokenizer), sample)
    fate = sample_size(row).fate(stage, cutoff)
    fitted = fit_row(stage, row, cutoff)
    if stage == "sft":
        seen = fitted[0]
        rest = row["input_ids"][len(seen["input_ids"]):]
        return fate, [SampleView("sample", 1, _spans(tokenizer, _labelled(seen["input_ids"], seen["labels"])
                                                      + [(rest, CUT_AWAY)]))]
    if stage == "pt":
        views = [SampleView("piece", n, _spans(tokenizer, [(r["input_ids"], TRAINED)]))
                 for n, r in enumerate(fitted, 1)]
        left = row["input_ids"][sum(len(r["input_ids"]) for r in fitted):]  # a last piece of one token
        if left:
            views.append(SampleView("piece", len(views) + 1, _spans(tokenizer, [(left, CUT_AWAY)])))
        return fate, views
    fit = fitted[0]
    head = row["prompt_ids"][:len(row["prompt_ids"]) - len(fit["prompt_ids"])]
    if stage in ("ppo", "grpo"):  # the model sees the prompt; what it trains on are its own sampled answers
        return fate, [SampleView("prompt", 1, _spans(tokenizer, [(head, CUT_AWAY), (fit["prompt_ids"], MASKED)]))]
    # The cutoff takes the prompt's beginning and the answers' ends (engine.core.encode._fit).
    answers = ([("chosen", "chosen_ids"), ("rejected", "rejected_ids")] if "chosen_ids" in row
               else [("desirable" if row["label"] else "undesirable", "completion_ids")])
    return fate, [SampleView(part, 1, _spans(tokenizer, [(head, CUT_AWAY), (fit["prompt_ids"], MASKED),
                                                          (fit[key], TRAINED), (row[key][len(fit[key]):], CUT_AWAY)]))
                  for part, key in answers]
