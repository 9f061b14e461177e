"""Verifiable rewards for GRPO: small pure functions of a completion's text (and token count).

trl's GRPOTrainer calls each reward with the batch's completions and the dataset's other columns (``answer``:
the reference); the names of the functions are the names trl logs (``rewards/accuracy/mean`` ...). Torch-free,
so the web UI can describe them and tests can score plain strings.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

REWARDS = ("accuracy", "format", "length")

# The last number of a text: signs, thousands separators and decimals ("-1,234.5").
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+")
# A final answer announced in the text: "Answer: 7", "answer is 7", "答案：7", "\boxed{7}".
_ANNOUNCED = re.compile(r"(?:answer(?:\s+is)?\s*[:：]?|答案\s*(?:是|为)?\s*[:：]?|\\boxed\{)\s*([^\n}]*)",
                        re.IGNORECASE)


def _as_number(text: str) -> float | None:
    text = text.strip().rstrip(".。").replace(",", "")
    try:
        return float(text)
    except ValueError:
        return None


def _normalised(text: str) -> str:
    """Case, width, spacing and trailing punctuation do not make two answers differ."""
    text = unicodedata.normalize("NFKC", text).casefold().strip()
    return " ".join(text.split()).strip(".。!！?？")


def _announced(text: str) -> str | None:
    """The answer a text announces: after its last "Answer:" ("答案：", ``\\boxed{}``), or None."""
    found = [a.strip() for a in _ANNOUNCED.findall(text)]
    return found[-1] if found and found[-1] else None


def final_answer(completion: str) -> str:
    """What a completion answers: what it announces (see ``_announced``), else its last number, else its text."""
    announced = _announced(completion)
    if announced is not None:
        return announced
    numbers = _NUMBER.findall(completion)
    return numbers[-1] if numbers else completion.strip()


def answers_match(completion: str, reference: str) -> bool:
    """Whether the completion's final answer is the reference's (what the reference announces, else all of it): as
    numbers when the reference is one (``7.0`` is ``7``; the last number of the completion's answer counts, so
    "Answer: 3 + 4 = 7" matches 7), else as normalised text."""
    answer = final_answer(completion)
    expected = _announced(reference) or reference.strip()
    ref_number = _as_number(expected)
    if ref_number is not None:
        numbers = _NUMBER.findall(answer)
        got = _as_number(numbers[-1]) if numbers else None
        return got is not None and abs(got - ref_number) <= 1e-6 * max(1.0, abs(ref_number))
    return _normalised(answer) == _normalised(expected)


def accuracy_score(completion: str, reference: str) -> float:
    return 1.0 if answers_match(completion, reference) else 0.0


def format_score(completion: str, pattern: str) -> float:
    """1 when the whole completion (surrounding spaces aside) matches the regular expression, else 0."""
    return 1.0 if re.fullmatch(pattern, completion.strip(), flags=re.DOTALL) else 0.0


def length_score(tokens: int, target: int) -> float:
    """1 at the target length, falling linearly to 0 at no tokens or at twice the target."""
    return max(0.0, 1.0 - abs(tokens - target) / target)


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable regular expression (the compiler's words), or None."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return str(exc)
    return None


def _text(completion) -> str:
    """trl gives a conversational completion as messages, a standard one as text."""
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


def reward_functions(names: list[str], pattern: str, target: int) -> list[Callable]:
    """The reward functions trl calls, in ``REWARDS`` order, each named as trl logs it."""

    def accuracy(completions, answer, **_):
        return [accuracy_score(_text(c), a) for c, a in zip(completions, answer)]

    def format(completions, **_):  # noqa: A001 - the name trl logs
        return [format_score(_text(c), pattern) for c in completions]

    def length(completions, completion_ids=None, **_):
        counts = [len(ids) for ids in completion_ids] if completion_ids is not None \
            else [len(_text(c).split()) for c in completions]
        return [length_score(n, target) for n in counts]

    made = {"accuracy": accuracy, "format": format, "length": length}
    return [made[name] for name in REWARDS if name in names]
