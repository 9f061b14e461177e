"""The probes of a run: the typed lines of ``train.probe_questions``, then the first rows of ``train.probe_dataset``.

A dataset row becomes a probe whose prompt is every message before the row's answer (system prompt and earlier
turns included), shown by its last user turn, and whose expectation is that answer (a preference row's chosen
one; a KTO row labelled undesirable is skipped) scored with ``train.probe_reference_metric``. The rows are read
as training reads them (engine.core.data), identity placeholders filled, so a bad row gives the same DataError.
"""

from __future__ import annotations

from pathlib import Path

from engine.core.config import RunConfig
from engine.core.data import DataError, load_samples, resolve_dataset
from engine.core.data.registry import REGISTRY_FILE
from engine.core.paths import confined_data_dir
from engine.core.probe_scoring import Expectation, Probe


def dataset_probes(dataset_dir: str | Path, name: str, rows: int, metric: str,
                   fill: dict | None = None) -> list[Probe]:
    """Probes from the first ``rows`` rows of dataset ``name``; a DataError naming the dataset when it is not
    registered, cannot be read or holds no answers."""
    spec = resolve_dataset(dataset_dir, name)
    if spec.pretraining:
        raise DataError("no_answers", name=name, file=str(Path(dataset_dir) / REGISTRY_FILE), field=name)
    labelled = not spec.ranking and "kto_tag" in spec.columns  # read its labels, to skip undesirable answers
    probes = []
    for sample in load_samples(dataset_dir, [name], rows, fill, stage="kto" if labelled else "sft"):
        if sample.kto_tag is False:
            continue
        *prompt, answer = sample.chat_messages()
        probes.append(Probe(prompt[-1]["content"], Expectation(metric, answer["content"]), tuple(prompt)))
    if not probes:
        raise DataError("no_samples", file=spec.path.name)
    return probes


def run_probes(cfg: RunConfig, dataset_dir: Path | None = None) -> list[Probe]:
    """Every probe of a run of ``cfg``; ``dataset_dir``: the data folder already confined (else the machine's
    rule is applied to ``data.dataset_dir``)."""
    probes = cfg.train.probes()
    t = cfg.train
    if t.probe_dataset.strip():
        folder = dataset_dir or confined_data_dir(cfg.data.dataset_dir)
        fill = {"name": cfg.data.identity_name, "author": cfg.data.identity_author}
        probes += dataset_probes(folder, t.probe_dataset.strip(), t.probe_dataset_rows, t.probe_reference_metric,
                                 fill)
    return probes
