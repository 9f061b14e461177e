"""Scored probes in the config (validation naming the field), a dataset's rows as probes, and checkpoints marked
best by their probe round's score (and by validation loss without early stopping), from a run's events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.core.checkpoints import list_checkpoints
from engine.core.config import MAX_PROBES, ConfigError, RunConfig
from engine.core.data import DataError
from engine.core.probe_scoring import Expectation, Probe, best_round, probe_metrics, round_scores
from engine.core.probe_set import dataset_probes, run_probes
from engine.core.rundir import RunDir

DATA = Path(__file__).resolve().parents[2] / "assets" / "data"


def _config(**train) -> RunConfig:
    cfg = RunConfig()
    cfg.data.datasets = ["identity"]
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


def _refused(cfg: RunConfig) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        cfg.validate()
    return caught.value


# -- config ---------------------------------------------------------------------------------

def test_typed_probes_with_expectations_validate():
    cfg = _config(probe_questions="Who are you? => Nimbus\n2+2? => exact: 4")
    cfg.validate()
    assert cfg.train.probes() == [Probe("Who are you?", Expectation("contains", "Nimbus")),
                                  Probe("2+2?", Expectation("exact", "4"))]


def test_a_bad_probe_line_names_the_field_and_the_line():
    error = _refused(_config(probe_questions="fine\nYear? => regex: (19"))
    assert (error.field_name, error.key, error.params["line"]) == ("train.probe_questions", "probe_regex", 2)
    assert str(error).startswith("train.probe_questions: line 2: not a valid regular expression: ")
    error = _refused(_config(probe_questions="Q => Answer: 4"))
    assert (error.field_name, error.key) == ("train.probe_questions", "probe_kind")


def test_typed_and_dataset_probes_count_together():
    eight = "\n".join(f"Q{i}?" for i in range(MAX_PROBES))
    _config(probe_questions=eight).validate()
    assert _refused(_config(probe_questions=eight + "\nOne more?")).key == "too_many_probes"
    error = _refused(_config(probe_questions="A?\nB?", probe_dataset="identity", probe_dataset_rows=MAX_PROBES - 1))
    assert (error.field_name, error.key) == ("train.probe_dataset_rows", "too_many_probes_dataset")
    assert error.params == {"typed": 2, "rows": MAX_PROBES - 1, "limit": MAX_PROBES}
    _config(probe_questions="A?\nB?", probe_dataset="identity", probe_dataset_rows=MAX_PROBES - 2).validate()
    assert _refused(_config(probe_dataset_rows=MAX_PROBES + 1)).field_name == "train.probe_dataset_rows"


def test_early_stopping_on_the_probe_score_and_its_rules():
    scored = {"probe_questions": "Who are you? => Nimbus", "early_stopping_metric": "probe_score"}
    _config(**scored, early_stopping_patience=2).validate()  # no validation split needed
    _config(probe_questions="Who?", probe_dataset="identity", early_stopping_metric="probe_score",
            early_stopping_patience=1).validate()  # a dataset's probes are scored
    for cfg, key in [
        (_config(**scored), "probe_stop_needs_patience"),
        (_config(probe_questions="Who are you?", early_stopping_metric="probe_score", early_stopping_patience=1),
         "probe_stop_needs_scores"),
        (_config(**scored, early_stopping_patience=1, stage="rm"), "probe_stop_rm"),
    ]:
        error = _refused(cfg)
        assert (error.field_name, error.key) == ("train.early_stopping_metric", key)
    cfg = _config(**scored, early_stopping_patience=1)
    cfg.distributed.nproc_per_node = 2
    assert _refused(cfg).key == "probe_stop_one_process"
    # on the validation loss, patience still needs a validation split
    assert _refused(_config(early_stopping_patience=1)).field_name == "train.early_stopping_patience"
    assert _refused(_config(early_stopping_metric="f1")).field_name == "train.early_stopping_metric"
    assert _refused(_config(probe_reference_metric="rouge-1")).field_name == "train.probe_reference_metric"


def test_the_new_fields_round_trip_through_yaml():
    cfg = _config(probe_questions="Q => regex: ^A$", probe_dataset="dpo_demo", probe_dataset_rows=3,
                  probe_reference_metric="bleu-4", early_stopping_metric="probe_score", early_stopping_patience=2)
    back = RunConfig.from_yaml(cfg.to_yaml())
    assert back.train == cfg.train


# -- dataset probes ---------------------------------------------------------------------------

def test_dataset_rows_become_probes_with_their_answer_as_reference():
    cfg = _config(probe_questions="Typed? => x", probe_dataset="identity", probe_dataset_rows=2)
    cfg.data.identity_name, cfg.data.identity_author = "Nimbus", "Acme Lab"
    typed, first, second = run_probes(cfg, DATA)
    assert typed == Probe("Typed?", Expectation("contains", "x"))
    assert first.question == "Who are you?" and first.messages == ({"role": "user", "content": "Who are you?"},)
    assert first.expect == Expectation("rouge-l", "I am Nimbus, an AI assistant developed by Acme Lab. How can I "
                                                  "help you today?")
    assert second.question == "你好" and "Nimbus" in second.expect.value


def test_the_prompt_is_every_turn_before_the_answer():
    [probe] = dataset_probes(DATA, "sharegpt_demo", 1, "bleu-4")
    assert [m["role"] for m in probe.messages] == ["user", "assistant", "user"]
    assert probe.question == "What is a famous ancient building there?"
    assert probe.expect.kind == "bleu-4" and probe.expect.value.startswith("The Colosseum")


def test_a_ranking_row_is_scored_against_its_chosen_answer_and_undesirable_kto_rows_are_skipped():
    [probe] = dataset_probes(DATA, "dpo_demo", 1, "rouge-l", {"name": "N", "author": "A"})
    assert probe.expect.value == "I am N, an AI assistant made by A. How can I help?"
    kto = dataset_probes(DATA, "kto_demo", 4, "rouge-l")
    assert len(kto) == 2 and not any("SmolLM" in p.expect.value for p in kto)


def test_a_dataset_that_gives_no_probes_is_refused_naming_it(tmp_path):
    with pytest.raises(DataError) as caught:
        run_probes(_config(probe_dataset="nope"), DATA)
    assert caught.value.key == "not_registered" and "'nope'" in str(caught.value)
    (tmp_path / "text.jsonl").write_text(json.dumps({"text": "plain words"}) + "\n")
    (tmp_path / "dataset_info.json").write_text(json.dumps(
        {"plain": {"file_name": "text.jsonl", "columns": {"prompt": "text"}}}))
    with pytest.raises(DataError) as caught:
        dataset_probes(tmp_path, "plain", 2, "rouge-l")
    assert caught.value.key == "no_answers" and "'plain'" in str(caught.value)


# -- scores of rounds, best checkpoint by probes ----------------------------------------------

def _round(step: int, score: float | None) -> dict:
    event = {"step": step, "probes": [{"q": "Q", "a": "A"}], "probe_s": 0.1}
    if score is not None:
        event["probe_score"] = score
    return event


def test_round_scores_skip_loss_events_unscored_and_broken_rounds():
    events = [{"step": 0, "loss": 2.0}, _round(0, 10.0), _round(2, None), _round(4, 30.0),
              {"step": 6, "probes": [], "probe_score": "high"}, {"step": 8, "probe_score": 99.0}]
    assert round_scores(events) == {0: 10.0, 4: 30.0}
    assert best_round({0: 10.0, 4: 30.0, 6: 30.0}) == (4, 30.0)  # a tie: the earliest
    assert best_round({}) is None
    assert probe_metrics(events) == {"final_probe_score": 30.0, "best_probe_score": 30.0, "best_probe_step": 4}
    assert probe_metrics([_round(0, None)]) == {}


def _run_with_checkpoints(path: Path, steps: list[int], events: list[dict], eval_losses: dict | None = None) -> Path:
    run = RunDir(path)
    path.mkdir()
    for event in events:
        run.append_event(event)
    history = [{"step": s, "eval_loss": loss} for s, loss in (eval_losses or {}).items()]
    for step in steps:
        ckpt = path / f"checkpoint-{step}"
        ckpt.mkdir()
        for name in ("adapter_model.safetensors", "optimizer.pt", "scheduler.pt"):
            (ckpt / name).write_bytes(b"")
        (ckpt / "trainer_state.json").write_text(json.dumps(
            {"log_history": [h for h in history if h["step"] <= step]}))
    return path


def _marks(path: Path) -> list[tuple]:
    return [(c.step, c.probe_score, c.best_probe, c.best) for c in list_checkpoints(path)]


def test_the_best_checkpoint_by_probes_is_the_highest_scored_round_at_a_checkpoint(tmp_path):
    # Step 0 (no checkpoint) scores highest: only checkpoints compete. Steps 4 and 8 tie: the earlier wins.
    path = _run_with_checkpoints(tmp_path / "tie", [2, 4, 6, 8], [_round(0, 90.0), _round(2, 10.0), _round(4, 50.0),
                                                                  _round(6, 20.0), _round(8, 50.0)])
    assert _marks(path) == [(2, 10.0, False, False), (4, 50.0, True, False), (6, 20.0, False, False),
                            (8, 50.0, False, False)]


def test_checkpoints_without_a_round_or_from_older_runs_have_no_probe_score(tmp_path):
    missing = _run_with_checkpoints(tmp_path / "missing", [2, 4, 6], [_round(2, 40.0), _round(6, 60.0)])
    assert _marks(missing) == [(2, 40.0, False, False), (4, None, False, False), (6, 60.0, True, False)]
    old = _run_with_checkpoints(tmp_path / "old", [2, 4], [_round(2, None), _round(4, None)])
    assert _marks(old) == [(2, None, False, False), (4, None, False, False)]
    one = _run_with_checkpoints(tmp_path / "one", [2], [_round(0, 0.0), _round(2, 40.0)])
    assert _marks(one) == [(2, 40.0, False, False)]  # nothing to choose between


def test_without_early_stopping_the_lowest_validation_loss_is_best_by_loss(tmp_path):
    path = _run_with_checkpoints(tmp_path / "eval", [2, 4, 6], [], {2: 1.5, 4: 1.25, 6: 1.25})
    assert [c.step for c in list_checkpoints(path) if c.best] == [4]  # a tie: the earlier
    single = _run_with_checkpoints(tmp_path / "single", [2, 4], [], {4: 1.0})
    assert not any(c.best for c in list_checkpoints(single))  # one evaluated checkpoint: nothing to choose
