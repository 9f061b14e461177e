"""The checkpoint arena's engine: blind votes between two models' answers, kept as one JSON line per vote, the
standings they give (Bradley–Terry ratings on the Elo scale with a 95% interval), the next pair
to show, and the decided votes written out as a preference dataset that the DPO, ORPO or KTO stage trains on.

Torch-free: the web UI (webui/chat_tab.py) streams the answers and calls this module to record and rank them.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import math
import os
import random
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

from engine.core.data.errors import DataError
from engine.core.data.register import check_dataset_name
from engine.core.data.upload import register_upload
from engine.core.paths import confined

ARENA_FOLDER = ".arena"  # under a workspace's saves folder; run listings skip dot folders
BASE_MODEL = "<base>"  # the key of the base model; other models are checkpoint folder paths
OUTCOMES = ("a", "b", "tie", "both_bad")
_SUFFIX = ".jsonl"

# The Elo scale: 400 points = ten times the odds; the average model rates 1000.
ELO_SCALE = 400.0
ELO_MEAN = 1000.0
BOOTSTRAP_SAMPLES = 200
_Z95 = 1.959964  # the normal quantile of a two-sided 95% interval
_BOOTSTRAP_SEED = 22  # fixed: the same votes always give the same interval
_MAX_ITERATIONS = 1000  # a few dozen are needed
_TOLERANCE = 1e-8  # on log-strength: a millionth of an Elo point

# ArenaError messages: key -> English template (webui/locales.py has a translation per key, prefix "arena_err_").
ARENA_MESSAGES: dict[str, str] = {
    "bad_name": "arena name {name!r} is not allowed: use 1 to 64 letters, digits, '_', '-' or '.', starting with a "
                "letter or digit",
    "bad_outcome": "unknown vote {outcome!r} (use {outcomes})",
    "same_model": "a vote needs two different models, got {model!r} twice",
    "empty_prompt": "a vote needs the prompt both models answered",
    "too_few_models": "pick at least two different models for the arena (got {count})",
    "no_decided_votes": "arena {name!r} has no decided votes to write as a dataset",
}


class ArenaError(ValueError):
    """Bad arena input. ``key`` (of ARENA_MESSAGES) and ``params`` let the web UI say it in the user's language;
    the text is the English message."""

    def __init__(self, key: str, **params: Any):
        self.key, self.params = key, params
        super().__init__(ARENA_MESSAGES[key].format(**params))

    def __reduce__(self):
        return partial(type(self), self.key, **self.params), ()


# Fields a stored vote may lack (written by hand, or by an older version); the others must be there.
_OPTIONAL = {"system": "", "name_a": "", "name_b": "", "time": 0.0, "id": ""}


@dataclass
class Vote:
    """One judged pair: ``prompt`` (and its ``system`` prompt) answered by ``model_a`` and ``model_b`` (model keys:
    BASE_MODEL or a checkpoint folder), shown as ``name_a`` / ``name_b`` once voted; ``outcome`` is one of
    OUTCOMES. ``time`` (epoch seconds) and ``id`` are set by Arena.add_vote."""

    prompt: str
    system: str
    model_a: str
    model_b: str
    name_a: str
    name_b: str
    answer_a: str
    answer_b: str
    outcome: str
    time: float = 0.0
    id: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Vote:
        """A vote from a stored line; ValueError when it is not one (a missing or mistyped field, an unknown
        outcome): such a line is skipped, not guessed at."""
        if not isinstance(data, dict):
            raise ValueError("not an object")
        values = {}
        for f in fields(cls):
            value = data.get(f.name, _OPTIONAL.get(f.name))
            wanted = (int, float) if f.name == "time" else str
            if not isinstance(value, wanted) or isinstance(value, bool):
                raise ValueError(f"field {f.name!r}")
            values[f.name] = value
        vote = cls(**values)
        if vote.outcome not in OUTCOMES or vote.model_a == vote.model_b:
            raise ValueError("outcome")
        return vote

    def scores(self) -> tuple[float, float]:
        """Model A's and B's share of the win: a tie and a both-bad vote are half a win each way."""
        return {"a": (1.0, 0.0), "b": (0.0, 1.0)}.get(self.outcome, (0.5, 0.5))


@dataclass
class Standing:
    """A model's record in an arena. ``win_rate``: (wins + half of ties and both-bad) / votes, None without votes.
    ``rating``: Bradley–Terry strength on the Elo scale (ELO_MEAN = the voted models' average); ``ci_low`` /
    ``ci_high``: its 95% bootstrap interval. A model without votes rates ELO_MEAN with an empty interval."""

    model: str
    name: str
    votes: int
    wins: int
    losses: int
    ties: int
    both_bad: int
    win_rate: float | None
    rating: float
    ci_low: float
    ci_high: float


def check_arena_name(name: str) -> str:
    """``name`` stripped, or an ArenaError: the same rule as dataset names (it is also the file's name)."""
    try:
        return check_dataset_name(name)
    except DataError:
        raise ArenaError("bad_name", name=(name or "").strip()) from None


def arena_names(folder: Path) -> list[str]:
    """The arenas kept in ``folder`` (the .arena folder), by name; files that are no arena's are left out."""
    names = []
    with contextlib.suppress(OSError):
        for path in Path(folder).iterdir():
            if path.suffix == _SUFFIX and path.is_file():
                with contextlib.suppress(ArenaError):
                    names.append(check_arena_name(path.stem))
    return sorted(names, key=str.casefold)


@contextlib.contextmanager
def _locked(path: Path, mode: str, lock: int) -> Iterator[Any]:
    with open(path, mode) as fh:
        fcntl.flock(fh.fileno(), lock)
        try:
            yield fh
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# A vote as the rating sees it: (model i, model j, i's score: 1, 0 or 0.5), and how many votes are alike.
Games = dict[tuple[int, int, float], int]


def _rescaled(strengths: list[float]) -> list[float]:
    """``strengths`` times the factor that fits the anchor games best. The votes fix only the models' ratios, and
    the prior's few virtual games pull the common scale so weakly that MM steps alone take thousands of rounds to
    settle it; this step settles it at once. The best factor c solves sum tanh((log c + log s_i) / 2) = 0 (the
    derivative of the virtual ties' likelihood), which falls between -max and -min of log s_i: bisected."""
    logs = [math.log(v) for v in strengths]
    low, high = -max(logs), -min(logs)
    for _ in range(60):
        middle = (low + high) / 2
        if sum(math.tanh((middle + v) / 2) for v in logs) > 0:
            high = middle
        else:
            low = middle
    factor = math.exp((low + high) / 2)
    return [v * factor for v in strengths]


def _bradley_terry(n: int, games: Games, start: list[float] | None = None) -> list[float]:
    """Strengths of ``n`` models from ``games``, by the MM algorithm (Hunter 2004) with ties as half a win each
    way, each step followed by the best common scale, from ``start`` (a close fit converges in a few steps).
    Every model also holds one virtual tie against a fixed anchor of strength 1: a weak prior that keeps an
    undefeated (or winless) model finite."""
    wins = [0.5] * n  # the virtual tie's half win
    pair_games: dict[tuple[int, int], int] = {}
    for (i, j, score), count in games.items():
        wins[i] += score * count
        wins[j] += (1.0 - score) * count
        key = (i, j) if i < j else (j, i)
        pair_games[key] = pair_games.get(key, 0) + count
    pairs = list(pair_games.items())
    strength = list(start) if start else [1.0] * n
    for _ in range(_MAX_ITERATIONS):
        denominator = [1.0 / (s + 1.0) for s in strength]  # the anchor's game
        for (i, j), count in pairs:
            share = count / (strength[i] + strength[j])
            denominator[i] += share
            denominator[j] += share
        new = _rescaled([w / d for w, d in zip(wins, denominator, strict=True)])
        change = max(abs(math.log(a / b)) for a, b in zip(new, strength, strict=True))
        strength = new
        if change < _TOLERANCE:
            break
    return strength


def _elo(strengths: list[float]) -> list[float]:
    """Strengths on the Elo scale, centred on ELO_MEAN."""
    points = [ELO_SCALE * math.log10(v) for v in strengths]
    shift = ELO_MEAN - sum(points) / len(points)
    return [p + shift for p in points]


def _standard_errors(games: Games, strengths: list[float]) -> list[float]:
    """Each rating's standard error, in Elo points, from the Fisher information of the Bradley–Terry likelihood
    (prior included) at ``strengths``: the inverse of its Hessian in log-strength. Every model's virtual game
    against the anchor keeps the matrix invertible."""
    n = len(strengths)
    info = [[0.0] * n for _ in range(n)]
    for i, s in enumerate(strengths):
        p = s / (s + 1.0)
        info[i][i] += p * (1.0 - p)  # the anchor game
    for (i, j, _score), count in games.items():
        p = strengths[i] / (strengths[i] + strengths[j])
        w = count * p * (1.0 - p)
        info[i][i] += w
        info[j][j] += w
        info[i][j] -= w
        info[j][i] -= w
    cov = _inverse(info)
    # Ratings are centred on ELO_MEAN: the variance of each log-strength minus their mean, whose common level the
    # anchor pins only weakly and the centring takes away.
    row_means = [sum(row) / n for row in cov]
    total_mean = sum(row_means) / n
    unit = ELO_SCALE / math.log(10)  # Elo points per unit of log-strength
    return [unit * math.sqrt(max(cov[i][i] - 2 * row_means[i] + total_mean, 0.0)) for i in range(n)]


def _inverse(matrix: list[list[float]]) -> list[list[float]]:
    """Gauss–Jordan inverse of a small symmetric positive definite matrix (one row per contestant)."""
    n = len(matrix)
    rows = [list(row) + [1.0 if i == k else 0.0 for k in range(n)] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(rows[r][col]))
        rows[col], rows[pivot] = rows[pivot], rows[col]
        head = rows[col][col]
        rows[col] = [v / head for v in rows[col]]
        for r in range(n):
            if r != col and rows[r][col]:
                factor = rows[r][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col], strict=True)]
    return [row[n:] for row in rows]


def _percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linearly interpolated."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


class Arena:
    """One arena: its votes in ``<folder>/<name>.jsonl`` (``folder``: a workspace's saves/.arena), made on the first
    vote. Each vote is one line appended under an exclusive lock and fsynced, so votes from two tabs or two app
    processes are all kept; a line that is not a vote (cut short by a crash, edited by hand) is skipped and
    counted in ``skipped_lines``, never breaks the standings."""

    def __init__(self, folder: Path, name: str):
        self.name = check_arena_name(name)
        self.folder = Path(folder)
        self.path = confined(self.folder, self.name + _SUFFIX, what="arena file name")
        self.skipped_lines = 0

    def add_vote(self, vote: Vote) -> Vote:
        """Check ``vote``, give it an id and time if it has none, and append it; the stored vote is returned."""
        for f in fields(vote):  # a caller's bug, not the user's input: it would be written as a line never read
            if f.name not in ("time", "id") and not isinstance(getattr(vote, f.name), str):
                raise TypeError(f"Vote.{f.name} must be a str, got {type(getattr(vote, f.name)).__name__}")
        if vote.outcome not in OUTCOMES:
            raise ArenaError("bad_outcome", outcome=vote.outcome, outcomes=", ".join(OUTCOMES))
        if vote.model_a == vote.model_b:
            raise ArenaError("same_model", model=vote.model_a)
        if not vote.prompt.strip():
            raise ArenaError("empty_prompt")
        vote.id = vote.id or uuid.uuid4().hex[:12]
        vote.time = vote.time or time.time()
        # A lone surrogate (a browser's broken emoji) becomes "?": the line must stay UTF-8 to be read back.
        line = (json.dumps(vote.to_dict(), ensure_ascii=False) + "\n").encode("utf-8", "replace")
        self.folder.mkdir(parents=True, exist_ok=True)
        with _locked(self.path, "ab", fcntl.LOCK_EX) as fh:
            if os.fstat(fh.fileno()).st_size > 0 and not self._ends_with_newline():
                line = b"\n" + line  # a line cut short by a crash stays a line of its own: this vote is not lost
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        return vote

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def votes(self) -> list[Vote]:
        """The stored votes, oldest first; ``skipped_lines`` counts the lines that are not a vote."""
        votes: list[Vote] = []
        skipped = 0
        try:
            with _locked(self.path, "rb", fcntl.LOCK_SH) as fh:
                raw = fh.read()
        except FileNotFoundError:
            raw = b""
        for line in raw.split(b"\n"):
            if not line.strip():
                continue
            try:
                votes.append(Vote.from_dict(json.loads(line.decode("utf-8"))))
            except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                skipped += 1
        self.skipped_lines = skipped
        return votes

    def standings(self, models: Iterable[str] | None = None, names: Mapping[str, str] | None = None) -> list[Standing]:
        """Every voted model's standing, best rating first, plus each of ``models`` without votes (rating ELO_MEAN,
        votes 0) after them. ``names`` (model -> shown name) overrides the names stored with the votes."""
        votes = self.votes()
        shown: dict[str, str] = {}
        tally: dict[str, list[int]] = {}  # model -> [wins, losses, ties, both_bad]
        for vote in votes:
            shown[vote.model_a] = vote.name_a or vote.model_a
            shown[vote.model_b] = vote.name_b or vote.model_b
            a, b = tally.setdefault(vote.model_a, [0, 0, 0, 0]), tally.setdefault(vote.model_b, [0, 0, 0, 0])
            column = {"a": (0, 1), "b": (1, 0), "tie": (2, 2), "both_bad": (3, 3)}[vote.outcome]
            a[column[0]] += 1
            b[column[1]] += 1
        voted = list(tally)
        index = {model: i for i, model in enumerate(voted)}
        games: Games = Counter((index[v.model_a], index[v.model_b], v.scores()[0]) for v in votes)
        strengths = _bradley_terry(len(voted), games) if voted else []
        ratings = _elo(strengths) if voted else []
        low, high = self._intervals(games, strengths, ratings)
        names = names or {}
        result = []
        for model, rating, lo, hi in zip(voted, ratings, low, high, strict=True):
            wins, losses, ties, both_bad = tally[model]
            count = wins + losses + ties + both_bad
            result.append(Standing(model, names.get(model, shown[model]), count, wins, losses, ties, both_bad,
                                   (wins + (ties + both_bad) / 2) / count, rating, lo, hi))
        result.sort(key=lambda s: (-s.rating, -s.votes, s.name))
        for model in dict.fromkeys(models or ()):
            if model not in tally:
                result.append(Standing(model, names.get(model, model), 0, 0, 0, 0, 0, None, ELO_MEAN, ELO_MEAN,
                                       ELO_MEAN))
        return result

    @staticmethod
    def _intervals(games: Games, strengths: list[float], ratings: list[float]) -> tuple[list[float], list[float]]:
        """95% intervals of ``ratings`` by refitting on BOOTSTRAP_SAMPLES resamples of the votes (seeded: the same
        votes give the same interval), each side widened to the curvature interval (_standard_errors) where wider."""
        if not games:
            return [], []
        rng = random.Random(_BOOTSTRAP_SEED)
        kinds = list(games)
        cumulative = list(itertools.accumulate(games[kind] for kind in kinds))
        total = cumulative[-1]
        samples: list[list[float]] = [[] for _ in strengths]
        for _ in range(BOOTSTRAP_SAMPLES):
            drawn = Counter(rng.choices(range(len(kinds)), cum_weights=cumulative, k=total))
            resample = {kinds[k]: count for k, count in drawn.items()}
            for i, rating in enumerate(_elo(_bradley_terry(len(strengths), resample, strengths))):
                samples[i].append(rating)
        # A handful of votes resamples into the same few votes (one vote: always itself), which would read as
        # certainty; the likelihood's curvature says how little they tell. Each side takes the wider of the two.
        errors = _standard_errors(games, strengths)
        low = [min(_percentile(s, 0.025), r - _Z95 * e) for s, r, e in zip(samples, ratings, errors, strict=True)]
        high = [max(_percentile(s, 0.975), r + _Z95 * e) for s, r, e in zip(samples, ratings, errors, strict=True)]
        return low, high

    def base_name(self) -> str | None:
        """The name the base model was voted under (the newest vote's), or None when no vote involved it."""
        for vote in reversed(self.votes()):
            for model, name in ((vote.model_a, vote.name_a), (vote.model_b, vote.name_b)):
                if model == BASE_MODEL:
                    return name
        return None

    def next_pair(self, models: list[str], rng: random.Random) -> tuple[str, str]:
        """The pair of distinct ``models`` compared least often so far (ties broken by ``rng``), in an order drawn
        by ``rng``: which one is shown as A is the blind shuffle."""
        contestants = list(dict.fromkeys(models))
        if len(contestants) < 2:
            raise ArenaError("too_few_models", count=len(contestants))
        counts: dict[frozenset, int] = {}
        for vote in self.votes():
            key = frozenset((vote.model_a, vote.model_b))
            counts[key] = counts.get(key, 0) + 1
        pairs = [(a, b) for i, a in enumerate(contestants) for b in contestants[i + 1:]]
        fewest = min(counts.get(frozenset(p), 0) for p in pairs)
        pair = list(rng.choice([p for p in pairs if counts.get(frozenset(p), 0) == fewest]))
        rng.shuffle(pair)
        return pair[0], pair[1]

    def preference_rows(self, kto: bool) -> list[dict]:
        """The votes as dataset rows, in vote order. Without ``kto``: each won vote as an alpaca ranking row
        {"instruction", "input": "", "chosen", "rejected"} (ties and both-bad say nothing about which is better:
        left out). With ``kto``: each answer as {"instruction", "input": "", "output", "label"}: a win marks the
        winner True and the loser False, a tie both True, both-bad both False. A vote with a system prompt keeps
        it as "system". An empty answer has nothing to learn from and the upload check refuses it: left out."""
        rows = []
        for vote in self.votes():
            base = {"instruction": vote.prompt, "input": ""}
            if vote.system:
                base["system"] = vote.system
            if kto:
                labels = {"a": (True, False), "b": (False, True), "tie": (True, True), "both_bad": (False, False)}
                for answer, label in zip((vote.answer_a, vote.answer_b), labels[vote.outcome], strict=True):
                    if answer.strip():
                        rows.append({**base, "output": answer, "label": label})
            elif vote.outcome in ("a", "b"):
                chosen, rejected = (vote.answer_a, vote.answer_b) if vote.outcome == "a" else \
                    (vote.answer_b, vote.answer_a)
                if chosen.strip() and rejected.strip():
                    rows.append({**base, "chosen": chosen, "rejected": rejected})
        return rows

    def export_dataset(self, dataset_dir: Path, name: str, kto: bool, overwrite: bool = False) -> tuple[Path, int]:
        """Write preference_rows(kto) as dataset ``name`` in ``dataset_dir`` through the upload check and
        registration (a ranking dataset, or alpaca with a KTO label column); returns (the dataset's file, rows).
        An existing name is refused unless ``overwrite`` (DataError already_registered); ArenaError
        no_decided_votes when there is nothing to write."""
        rows = self.preference_rows(kto)
        if not rows:
            raise ArenaError("no_decided_votes", name=self.name)
        with tempfile.TemporaryDirectory(prefix="tuneboard-arena-") as tmp:
            source = Path(tmp) / f"{self.name}{_SUFFIX}"
            source.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
            target = register_upload(dataset_dir, name, source, kind="alpaca" if kto else "preference",
                                     overwrite=overwrite)
        return target, len(rows)
