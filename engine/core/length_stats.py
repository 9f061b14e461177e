"""Token lengths of the datasets a run would train on, and what its cutoff would do to them.

The lengths come from the training encoder itself (:func:`engine.core.encode.encode_uncut`), and each sample's
fate under a cutoff from the same :meth:`SampleSize.fate` that ``encode_samples`` obeys, so the counts shown
before a run are the ones its log reports. Lengths do not depend on the cutoff: they are kept per version of
the data files and per tokenizer, template and stage, so trying another cutoff costs nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from engine.core.config import RunConfig
from engine.core.data import dataset_files, resolve_dataset
from engine.core.data.registry import REGISTRY_FILE
from engine.core.encode import CUT, DROPPED, SampleSize, encode_uncut, sample_size, training_formatter, training_samples
from engine.core.memo import SharedMemo
from engine.core.paths import confined_data_dir
from engine.facade import training_tokenizer


@dataclass(frozen=True)
class CutoffCounts:
    """What ``cutoff`` does to the samples: how many are cut (pre-training: split into rows) or dropped."""

    samples: int
    cut: int
    dropped: int
    longest: int
    mean: float


def cutoff_counts(sizes: list[SampleSize], stage: str, cutoff: int) -> CutoffCounts:
    fates = [size.fate(stage, cutoff) for size in sizes]
    tokens = [size.tokens for size in sizes]
    return CutoffCounts(len(sizes), fates.count(CUT), fates.count(DROPPED), max(tokens, default=0),
                        sum(tokens) / len(tokens) if tokens else 0.0)


def _bin_width(longest: int, bins: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that shows ``longest`` in at most ``bins`` bins."""
    raw = max(1.0, longest / bins)
    scale = 10 ** math.floor(math.log10(raw))
    return int(next(step * scale for step in (1, 2, 5, 10) if step * scale >= raw))


def length_histogram(lengths: list[int], bins: int = 40) -> tuple[list[int], list[int]]:
    """(edges, counts): ``counts[i]`` samples have ``edges[i] <= length < edges[i + 1]``; round bin widths,
    from the bin of the shortest sample to that of the longest."""
    if not lengths:
        return [], []
    width = _bin_width(max(lengths), bins)
    first, last = min(lengths) // width, max(lengths) // width
    counts = [0] * (last - first + 1)
    for length in lengths:
        counts[length // width - first] += 1
    return [(first + i) * width for i in range(len(counts) + 1)], counts


def _data_version(cfg: RunConfig) -> tuple:
    """Name, size and modification time of the registry and of every file the chosen datasets read."""
    folder = confined_data_dir(cfg.data.dataset_dir)
    paths = [Path(folder) / REGISTRY_FILE]
    for name in cfg.data.datasets:
        paths += dataset_files(resolve_dataset(folder, name))
    return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths if p.exists())


_sizes: SharedMemo[list[SampleSize]] = SharedMemo(kept=8)


def dataset_sizes(cfg: RunConfig) -> list[SampleSize]:
    """The size of every sample a run of ``cfg`` would train on (any cutoff), encoded as training encodes it."""
    d = cfg.data
    key = (_data_version(cfg), tuple(d.datasets), d.dataset_dir, d.max_samples, d.identity_name, d.identity_author,
           d.train_on_prompt, d.mask_history, d.enable_thinking, cfg.train.stage, cfg.model.model_name_or_path,
           cfg.model.trust_remote_code, cfg.model.template, cfg.model.hub)
    def encode_all() -> list[SampleSize]:
        tokenizer = training_tokenizer(cfg.model.model_name_or_path, cfg.model.trust_remote_code, cfg.model.hub)
        formatter = training_formatter(cfg, tokenizer)
        return [sample_size(encode_uncut(cfg, formatter, s)) for s in training_samples(cfg)]

    return _sizes.get(key, encode_all)  # one encoding per version: a second click waits for the first
