"""Text similarity of generated answers to reference answers: ROUGE-1/2/L (F1) and BLEU-4, in percent.

Both Chinese and English are scored on words. Chinese has no spaces between
words, so splitting on whitespace would turn a whole Chinese sentence into one
"word" and score any two different sentences 0; jieba segments it into words
first. Latin text comes out of jieba as whole words (letters and digits kept
together), which are lower-cased. Whitespace and punctuation are not words and
are dropped, so "Hello, world!" and "hello world" score 100.

ROUGE comes from ``rouge-score`` with this tokenizer (no stemming), BLEU-4 from
``nltk``'s ``sentence_bleu`` with smoothing method 3 (the choice LlamaBoard
makes), computed per sentence and averaged over the samples. Neither needs a
data download: jieba ships its dictionary, and these nltk parts need no corpora.
"""

from __future__ import annotations

import logging
import threading
import unicodedata
from functools import lru_cache

import jieba
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from rouge_score import rouge_scorer

METRIC_KEYS = ("rouge-1", "rouge-2", "rouge-l", "bleu-4")

_jieba_lock = threading.Lock()


@lru_cache(maxsize=1)
def _jieba():
    jieba.setLogLevel(logging.WARNING)  # it announces building its prefix dictionary on the first cut
    with _jieba_lock:
        jieba.initialize()
    return jieba


def _is_word(token: str) -> bool:
    """False for whitespace and punctuation/symbol-only tokens."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in token)


def tokenize(text: str) -> list[str]:
    """Words of ``text``: jieba segmentation for Chinese, whole lower-cased words for Latin scripts."""
    if not text or not text.strip():
        return []
    text = unicodedata.normalize("NFKC", text)  # full-width letters/digits -> ASCII
    return [tok.lower() for tok in _jieba().lcut(text) if _is_word(tok)]


class _WordTokenizer:
    """The tokenizer interface rouge-score expects."""

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)


@lru_cache(maxsize=1)
def _rouge_scorer():
    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False, tokenizer=_WordTokenizer())


def score_pair(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F1 and BLEU-4 of one prediction against one reference, each in 0..100."""
    pred, ref = tokenize(prediction), tokenize(reference)
    if not pred or not ref:
        value = 100.0 if pred == ref else 0.0  # both empty: identical; one empty: nothing in common
        return dict.fromkeys(METRIC_KEYS, value)
    rouge = _rouge_scorer().score(reference, prediction)  # (target, prediction), tokenized as above
    bleu = sentence_bleu([ref], pred, weights=(0.25, 0.25, 0.25, 0.25),
                         smoothing_function=SmoothingFunction().method3)
    return {
        "rouge-1": 100.0 * rouge["rouge1"].fmeasure,
        "rouge-2": 100.0 * rouge["rouge2"].fmeasure,
        "rouge-l": 100.0 * rouge["rougeL"].fmeasure,
        "bleu-4": 100.0 * float(bleu),
    }


def corpus_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Each metric averaged over the sentence pairs, rounded to 4 decimals (percent)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("no predictions to score")
    totals = dict.fromkeys(METRIC_KEYS, 0.0)
    for pred, ref in zip(predictions, references):
        for key, value in score_pair(pred, ref).items():
            totals[key] += value
    return {key: round(total / len(predictions), 4) for key, total in totals.items()}
