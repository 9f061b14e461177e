"""Scored probes in real demo runs: the scores events.jsonl holds are the metric functions' on the same strings,
checkpoints are marked best by probes from them, and early stopping on the probe score stops a run."""

from __future__ import annotations

import pytest

from engine.core.checkpoints import list_checkpoints
from engine.core.probe_scoring import EXPECTATION_KINDS, Expectation, probe_metrics
from engine.evaluate.metrics import score_pair
from tests.helpers.runs import run_cold_job, tiny_train_config
from webui.top_bar import checkpoint_details

pytestmark = pytest.mark.slow

TYPED = ("Who are you? => Nimbus\n"
         "What is 2+2? => exact: 4\n"
         "Say hello. => regex: (?i)\\b(hi|hello)\\b\n"
         "Who made you? => rouge-l: I was made by Acme Lab.\n"
         "你是谁？ => bleu-4: 我是 Nimbus，由 Acme Lab 开发的助手。")


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory, demo_model_dir):
    """Typed probes of every kind and the identity dataset's first row; a validation split, so that both
    checkpoints (steps 4 and 5) have a validation loss."""
    cfg = tiny_train_config(probe_questions=TYPED, probe_dataset="identity", probe_dataset_rows=1,
                            probe_max_new_tokens=8)
    cfg.data.val_size = 0.2
    cfg.validate()
    run, status = run_cold_job(cfg, tmp_path_factory.mktemp("scored") / "run", timeout=600)
    assert status["state"] == "finished", run.log_tail(40)
    return run


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, demo_model_dir):
    """A probe no answer of the demo model meets: the score never beats step 0's."""
    cfg = tiny_train_config(probe_questions="Who are you? => regex: ^ZZZ$", early_stopping_metric="probe_score",
                            early_stopping_patience=1, save_steps=2, probe_max_new_tokens=6)
    run, status = run_cold_job(cfg, tmp_path_factory.mktemp("stopped") / "run", timeout=600)
    assert status["state"] == "finished", run.log_tail(40)
    return run


def test_probe_scores_are_the_metric_functions_on_the_same_strings(scored_run):
    rounds = [e for e in scored_run.read_events() if "probes" in e]
    assert [e["step"] for e in rounds] == [0, 4, 5]
    for event in rounds:
        entries = event["probes"]
        assert [p["expect"]["kind"] for p in entries] == [*EXPECTATION_KINDS, "rouge-l"]
        for entry in entries:
            expect = Expectation.from_dict(entry["expect"])
            assert entry["score"] == round(expect.score(entry["a"]), 4)
            if expect.kind in ("rouge-l", "bleu-4"):
                assert entry["score"] == round(score_pair(entry["a"], expect.value)[expect.kind], 4)
            else:
                assert entry["score"] in (0.0, 100.0)
        assert event["probe_score"] == round(sum(p["score"] for p in entries) / len(entries), 4)
        dataset_probe = entries[-1]  # the identity row, placeholders filled as training fills them
        assert dataset_probe["q"] == "Who are you?" and dataset_probe["expect"]["value"].startswith("I am Nimbus, ")
    # the exact and regex answers are checked on the text the model gave
    assert entries[1]["score"] == (100.0 if entries[1]["a"].strip() == "4" else 0.0)


def test_status_and_checkpoints_carry_the_probe_scores(scored_run):
    status = scored_run.read_status()
    events = scored_run.read_events()
    assert status["stopped_early"] is False
    metrics = probe_metrics(events)
    assert {k: status["metrics"][k] for k in metrics} == metrics and metrics["best_probe_step"] in (0, 4, 5)
    scores = {e["step"]: e["probe_score"] for e in events if "probes" in e}
    ckpts = list_checkpoints(scored_run.path)
    assert [c.step for c in ckpts] == [4, 5] and [c.probe_score for c in ckpts] == [scores[4], scores[5]]
    best = max(ckpts, key=lambda c: (c.probe_score, -c.step))
    assert [c.step for c in ckpts if c.best_probe] == [best.step]
    lowest = min(ckpts, key=lambda c: (c.eval_loss, c.step))
    assert [c.step for c in ckpts if c.best] == [lowest.step]
    label = checkpoint_details("en", best)
    assert f"probes {best.probe_score:.1f}" in label and "best by probes" in label


def test_early_stopping_on_the_probe_score_stops_the_run(stopped_run):
    status = stopped_run.read_status()
    assert status["stopped_early"] is True and status["step"] == 2 < status["total_steps"] == 6
    rounds = [(e["step"], e["probe_score"]) for e in stopped_run.read_events() if "probes" in e]
    assert rounds == [(0, 0.0), (2, 0.0)]  # the baseline, then one round without improvement
    assert {k: status["metrics"][k] for k in ("final_probe_score", "best_probe_score", "best_probe_step")} == {
        "final_probe_score": 0.0, "best_probe_score": 0.0, "best_probe_step": 0}
    assert status["best_checkpoint"] is None  # no best by loss: transformers' early stopping was not used
    assert [c.step for c in list_checkpoints(stopped_run.path) if c.complete] == [2]
    log = stopped_run.log_path.read_text()
    assert "Early stopping: the probe score has not improved for 1 probe rounds (best 0 at step 0)." in log
