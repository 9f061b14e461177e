"""Scored probes: a probe question may carry what a good answer looks like, and each answer gets a score.

One probe per non-blank line of ``train.probe_questions``: ``question`` or ``question => expectation``, split at
the first ``=>``. An expectation is an optional kind prefix, then the expected text:

- ``contains: X`` (also no prefix): X occurs in the answer, ignoring case (NFKC-normalised, so full-width
  letters match ASCII);
- ``exact: X``: the answer is X, ignoring case and surrounding whitespace;
- ``regex: X``: ``re.search(X, answer)`` finds a match (Python syntax; ``(?i)`` for any case);
- ``rouge-l: X`` / ``bleu-4: X``: X is a reference answer, scored with the Evaluate tab's metrics
  (engine.evaluate.metrics: words, Chinese segmented by jieba).

A score is 0..100: 100 or 0 for the first three, the metric in percent for the last two. A word and a colon
starting an expectation are read as a prefix: ``Answer: 4`` is refused as an unknown kind, and
``contains: Answer: 4`` expects that text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

EXPECTATION_KINDS = ("contains", "exact", "regex", "rouge-l", "bleu-4")
REFERENCE_KINDS = ("rouge-l", "bleu-4")  # scored with a text metric against a reference answer
SEPARATOR = "=>"

# Problems of one probe line: key -> English template (engine.core.config merges these into CONFIG_MESSAGES, and
# the web UI translates them by key like any config error).
PROBE_LINE_MESSAGES = {
    "probe_regex": "line {line}: not a valid regular expression: {error}",
    "probe_kind": "line {line}: unknown expectation {kind!r} (known: {known}); to expect text that starts with "
                  "it, write contains: before it",
    "probe_no_expectation": "line {line}: nothing after =>; write what the answer should contain, or remove =>",
    "probe_no_question": "line {line}: no question before =>",
}

# A kind prefix: a word then a colon. Unknown words count as a prefix only when a space follows the colon, so that
# "10:30" or "http://..." stay plain expected text; the known kinds may be written without the space.
_PREFIX = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)\s*:(\s+|$)?")


class ProbeLineError(ValueError):
    """A probe line cannot be read: ``key`` (of PROBE_LINE_MESSAGES), the 1-based ``line`` and ``params``."""

    def __init__(self, key: str, line: int, **params):
        self.key, self.line, self.params = key, line, params
        super().__init__(PROBE_LINE_MESSAGES[key].format(line=line, **params))


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


@dataclass(frozen=True)
class Expectation:
    """What a good answer looks like: ``kind`` (one of EXPECTATION_KINDS) and the expected text."""

    kind: str
    value: str

    def score(self, answer: str) -> float:
        """The answer's score, 0..100."""
        if self.kind == "contains":
            return 100.0 if _folded(self.value) in _folded(answer) else 0.0
        if self.kind == "exact":
            return 100.0 if _folded(self.value).strip() == _folded(answer).strip() else 0.0
        if self.kind == "regex":
            return 100.0 if re.search(self.value, answer) else 0.0
        if self.kind in REFERENCE_KINDS:
            # jieba and nltk take about a second to import: only a run with reference answers pays for them.
            from engine.evaluate.metrics import score_pair  # noqa: PLC0415 - see above

            return score_pair(answer, self.value)[self.kind]
        raise ValueError(f"unknown expectation kind {self.kind!r}")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "value": self.value}

    @classmethod
    def from_dict(cls, data) -> Expectation | None:
        """The expectation an event recorded, or None when it is missing or not one this version knows."""
        if not isinstance(data, dict) or data.get("kind") not in EXPECTATION_KINDS:
            return None
        return cls(str(data["kind"]), str(data.get("value", "")))


@dataclass(frozen=True)
class Probe:
    """A question the model answers at every probe round, with what a good answer looks like (or None).

    ``messages``: a dataset probe's prompt conversation (role/content dicts, system included); empty for a typed
    probe, whose question is the one user turn."""

    question: str
    expect: Expectation | None = None
    messages: tuple = ()


def parse_expectation(text: str, line: int) -> Expectation:
    """The expectation written after ``=>`` on probe line ``line`` (1-based, for the error)."""
    kind, value = "contains", text
    match = _PREFIX.match(text)
    if match:
        word = match.group(1).lower()
        if word in EXPECTATION_KINDS:
            kind, value = word, text[match.end():]
        elif match.group(2) is not None:
            raise ProbeLineError("probe_kind", line, kind=match.group(1), known=", ".join(EXPECTATION_KINDS))
    value = value.strip()
    if not value:
        raise ProbeLineError("probe_no_expectation", line)
    if kind == "regex":
        try:
            re.compile(value)
        except re.error as exc:
            raise ProbeLineError("probe_regex", line, error=str(exc)) from None
    return Expectation(kind, value)


def parse_probe_lines(text: str) -> list[Probe]:
    """The probes of ``train.probe_questions``; raises ProbeLineError (a ValueError) naming the bad line."""
    probes = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        question, sep, expected = line.partition(SEPARATOR)
        question = question.strip()
        if not sep:
            probes.append(Probe(question))
            continue
        if not question:
            raise ProbeLineError("probe_no_question", number)
        probes.append(Probe(question, parse_expectation(expected.strip(), number)))
    return probes


def mean_score(scores: list[float | None]) -> float | None:
    """The mean of the scores that exist; None when none does."""
    present = [s for s in scores if s is not None]
    return sum(present) / len(present) if present else None


def round_scores(events: list[dict]) -> dict[int, float]:
    """Step -> probe score of each scored probe round among a run's events (older runs' rounds have none)."""
    scores = {}
    for event in events:
        if not (isinstance(event, dict) and "probes" in event):
            continue
        score, step = event.get("probe_score"), event.get("step")
        if _is_number(score) and _is_number(step) and step == int(step):
            scores[int(step)] = float(score)
    return scores


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN is no score


def best_round(scores: dict[int, float]) -> tuple[int, float] | None:
    """(step, score) of the highest probe score, the earliest step of a tie; None without scores."""
    if not scores:
        return None
    step = min(scores, key=lambda s: (-scores[s], s))
    return step, scores[step]


def probe_metrics(events: list[dict]) -> dict:
    """A finished run's probe figures for status.json: the last scored round's score and the best one, with its
    step; empty when no round was scored."""
    scores = round_scores(events)
    best = best_round(scores)
    if best is None:
        return {}
    return {"final_probe_score": scores[max(scores)], "best_probe_score": best[1], "best_probe_step": best[0]}
