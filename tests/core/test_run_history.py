"""The runs list, the settings diff and deleting a run (engine/core/run_history.py), on run directories written by the
training code's own writers: run.yaml by RunConfig.save, status.json by RunDir.write_status and events.jsonl by
the Trainer callback engine/train/run.py installs (driven with transformers' own TrainerState). A real training run's
summary is checked in tests/train/test_training_integration.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.core.config import RunConfig
from engine.core.paths import PathError
from engine.core.probe_scoring import parse_probe_lines
from engine.core.run_history import (
    ProbeAnswer,
    RunBusyError,
    all_runs,
    delete_run,
    probe_comparison,
    run_label,
    settings_diff,
    summarize,
)
from engine.core.rundir import FINISHED, QUEUED, RUNNING, RunDir
from engine.jobs.job import StopRequested
from engine.train.probes import probe_round
from engine.train.run import make_callback


def _config(**train) -> RunConfig:
    cfg = RunConfig()
    cfg.data.datasets, cfg.data.cutoff_len = ["identity"], 256
    cfg.train.learning_rate, cfg.train.num_train_epochs = 5e-4, 2.0
    cfg.train.per_device_train_batch_size, cfg.train.gradient_accumulation_steps = 4, 2
    for key, value in train.items():
        setattr(cfg.train, key, value)
    cfg.validate()
    return cfg


def record_run(saves: Path, name: str, cfg: RunConfig, losses: list[float], *, model: str = "SmolLM2-135M-Instruct",
               method: str = "lora", created_at: float = 1.0, eval_losses: dict[int, float] | None = None,
               end: str | None = FINISHED) -> RunDir:
    """A training run recorded the way launch() and engine/train/run.py record one: run.yaml, queued, running, one
    callback log per step (100 tokens a step), then ``end`` (None: still running)."""
    from transformers import TrainerControl, TrainerState

    run = RunDir(saves / model / method / name)
    run.path.mkdir(parents=True)
    cfg.train.output_dir = str(run.path)
    cfg.save(run.config_path, "train")
    run.write_status(QUEUED, created_at=created_at, pid=None, command="train", launcher="python")
    run.write_status(RUNNING, phase="training")
    reporter = make_callback(run, StopRequested(run), log=lambda *_: None)
    state, control = TrainerState(max_steps=len(losses)), TrainerControl()
    reporter.on_train_begin(None, state, control)
    for step, loss in enumerate(losses, 1):
        state.global_step, state.epoch, state.num_input_tokens_seen = step, step / len(losses), 100 * step
        reporter.on_log(None, state, control, logs={"loss": loss, "learning_rate": 1e-4, "grad_norm": 1.0})
        if eval_losses and step in eval_losses:
            reporter.on_log(None, state, control, logs={"eval_loss": eval_losses[step]})
    if end is not None:
        run.write_status(end, phase="done", step=len(losses), total_steps=len(losses))
    return run


@pytest.fixture()
def saves(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "saves"
    root.mkdir()
    monkeypatch.setenv("TUNEBOARD_SAVES", str(root))
    return root


def test_summary_of_a_finished_run(saves):
    run = record_run(saves, "first", _config(), [2.5, 1.25, 1.5], eval_losses={2: 1.75, 3: 1.6})
    s = summarize(run)
    assert (s.model, s.method, s.command, s.stage, s.state) == ("SmolLM2-135M-Instruct", "lora", "train", "sft",
                                                                FINISHED)
    assert s.label == run_label(run) == "SmolLM2-135M-Instruct / lora / first"
    assert s.datasets == ("identity",) and s.cutoff_len == 256
    assert (s.learning_rate, s.epochs, s.lora_rank, s.batch_size, s.grad_accum) == (5e-4, 2.0, 8, 4, 2)
    assert (s.final_loss, s.best_loss, s.best_eval_loss) == (1.5, 1.25, 1.6)
    events = run.read_events()
    assert s.tokens_per_s == events[-1]["tokens_per_s"] > 0  # 300 tokens over the seconds the last log recorded
    status = run.read_status()
    assert s.duration_s == pytest.approx(status["finished_at"] - status["started_at"])
    assert s.config_error is None and s.error is None


def test_summary_without_settings_or_losses(saves):
    freeze = record_run(saves, "frozen", _config(finetuning_type="freeze"), [], method="freeze", end=None)
    s = summarize(freeze)
    assert s.state == RUNNING and s.lora_rank is None  # no rank for a freeze run
    assert s.final_loss is s.best_loss is s.tokens_per_s is None
    assert s.duration_s is not None and s.duration_s >= 0  # running: so far
    freeze.config_path.write_text("train:\n  learning_rate: -1\n", encoding="utf-8")
    broken = summarize(freeze)
    assert "train.learning_rate" in broken.config_error and str(freeze.config_path) in broken.config_error
    freeze.config_path.unlink()
    assert "is missing" in summarize(freeze).config_error


def test_an_evaluation_run_is_listed_as_such(saves):
    cfg = _config()
    run = RunDir(saves / "SmolLM2-135M-Instruct" / "lora" / "eval_1")
    run.path.mkdir(parents=True)
    cfg.eval.output_dir = str(run.path)
    cfg.save(run.config_path, "eval")
    run.write_status(QUEUED, created_at=5.0, command="eval")
    run.write_status(FINISHED, phase="done", metrics={"fine-tuned": {"eval_loss": 1.0}})
    s = summarize(run)
    assert (s.command, s.stage, s.datasets, s.learning_rate, s.final_loss) == ("eval", "eval", ("identity",), None,
                                                                               None)


def test_all_runs_of_every_model_newest_first(saves):
    old = record_run(saves, "old", _config(), [1.0], created_at=10.0)
    new = record_run(saves, "new", _config(), [1.0], model="Qwen2.5-0.5B", method="full", created_at=30.0)
    mid = record_run(saves, "mid", _config(), [1.0], method="freeze", created_at=20.0)
    (saves / "SmolLM2-135M-Instruct" / "lora" / "not-a-run").mkdir()  # no status.json
    (saves / "stray.txt").write_text("x")
    assert all_runs() == [new, mid, old]
    assert all_runs(saves / "missing") == []


def test_settings_diff_lists_only_differing_fields(saves):
    a = record_run(saves, "a", _config(), [1.0])
    b_cfg = _config(learning_rate=1e-4)
    b_cfg.lora.rank = 16
    b = record_run(saves, "b", b_cfg, [1.0])
    diff = settings_diff([a, b])
    assert diff.runs == [a, b] and not diff.errors
    assert diff.rows == [("train.learning_rate", [5e-4, 1e-4]), ("lora.rank", [8, 16])]  # not train.output_dir
    assert settings_diff([a, record_run(saves, "a2", _config(), [1.0])]).rows == []
    b.config_path.write_text("train: [", encoding="utf-8")
    broken = settings_diff([a, b])
    assert broken.runs == [a] and broken.errors[0][0] == b and "not valid YAML" in str(broken.errors[0][1])
    b.config_path.unlink()
    assert settings_diff([a, b]).errors == [(b, None)]


def test_settings_diff_of_a_training_and_an_evaluation_run(saves):
    train = record_run(saves, "t", _config(), [1.0])
    ev = RunDir(saves / "SmolLM2-135M-Instruct" / "lora" / "e")
    ev.path.mkdir()
    cfg = _config()
    cfg.data.max_samples = 6
    cfg.save(ev.config_path, "eval")
    ev.write_status(FINISHED, command="eval")
    rows = dict(settings_diff([train, ev]).rows)
    assert rows["data.max_samples"] == [0, 6]
    assert rows["train.learning_rate"] == [5e-4, None]  # evaluation reads no train section
    assert rows["eval.batch_size"] == [None, 4]


def test_delete_a_finished_run(saves):
    run = record_run(saves, "done", _config(), [1.0])
    (run.path / "checkpoint-1").mkdir()
    (run.path / "checkpoint-1" / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    assert delete_run(str(run.path)) == run
    assert not run.path.exists() and all_runs() == []
    assert (saves / "SmolLM2-135M-Instruct" / "lora").is_dir()  # the method folder stays


def test_delete_refuses_a_running_or_queued_run(saves):
    running = record_run(saves, "busy", _config(), [1.0], end=None)
    running.write_status(RUNNING, pid=os.getpid())  # a live process
    with pytest.raises(RunBusyError, match="busy is running"):
        delete_run(str(running.path))
    assert running.status_path.is_file()
    queued = record_run(saves, "waiting", _config(), [], end=QUEUED)
    queued.write_status(QUEUED, pid=os.getpid())
    with pytest.raises(RunBusyError, match="waiting is queued"):
        delete_run(str(queued.path))
    assert queued.config_path.is_file()


def test_a_run_whose_process_died_can_be_deleted(saves):
    run = record_run(saves, "crashed", _config(), [1.0], end=None)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run.write_status(RUNNING, pid=dead.pid)
    delete_run(str(run.path))  # live_status reports it failed
    assert not run.path.exists()


def test_delete_refuses_paths_outside_the_run_folders(saves, tmp_path):
    run = record_run(saves, "kept", _config(), [1.0])
    outside = record_run(tmp_path / "elsewhere", "other", _config(), [1.0])
    link = saves / "SmolLM2-135M-Instruct" / "lora" / "link"
    link.symlink_to(outside.path, target_is_directory=True)
    method_dir = saves / "SmolLM2-135M-Instruct" / "lora"
    for path, why in [(str(outside.path), "not a run directory"), (str(link), "symbolic link"),
                      (f"{method_dir}/../lora/kept", "symbolic link or '..'"), ("kept", "absolute path"),
                      (str(method_dir), "not a run directory"), (str(saves), "not a run directory"),
                      ("", "not a valid path"), (str(method_dir / "nothing"), "does not exist"),
                      (f"{run.path}\x00", "not a valid path")]:
        with pytest.raises(PathError, match=why):
            delete_run(path)
    assert run.status_path.is_file() and outside.status_path.is_file() and link.is_symlink()
    # A symlinked model folder inside saves/ is refused too: its runs live somewhere else.
    (saves / "linked-model").symlink_to(outside.path.parent.parent, target_is_directory=True)
    with pytest.raises(PathError, match="symbolic link"):
        delete_run(str(saves / "linked-model" / "lora" / "other"))
    assert outside.status_path.is_file()
    assert all_runs() == [run]  # the linked folders are not listed either


def test_overlay_and_diff_for_the_tab(saves):
    """The Runs tab's comparison: one curve per run in one plotly figure, validation dashed, the differing
    settings by their translated labels."""
    from webui.runs_tab import comparison

    a = record_run(saves, "a", _config(), [2.0, 1.0])
    b = record_run(saves, "b", _config(learning_rate=1e-4), [2.0, 1.5, 1.2], eval_losses={3: 1.4})
    plot, diff, note, probes = comparison("en", [str(a.path), str(b.path)])
    assert probes == ""  # no probe rounds: no table of answers
    names = [trace.name for trace in plot.data]
    assert names == [run_label(a), run_label(b), f"{run_label(b)} · eval loss"]
    assert list(plot.data[1].y) == [2.0, 1.5, 1.2] and plot.data[2].line.dash == "dash"
    assert plot.data[1].line.color == plot.data[2].line.color != plot.data[0].line.color
    assert diff["headers"] == ["Parameter", "a", "b"]
    assert diff["value"] == [["Learning rate (train.learning_rate)", "0.0005", "0.0001"]]
    assert note == ""
    _, diff_zh, _, _ = comparison("zh", [str(a.path), str(b.path)])
    assert diff_zh["headers"][0] == "参数" and diff_zh["value"][0][0].startswith("学习率")
    plot, _, note, _ = comparison("en", [str(a.path)])
    assert len(plot.data) == 1 and "at least two runs" in note
    b.config_path.write_text("train:\n  learning_rate: -1\n", encoding="utf-8")  # a run.yaml edited by hand
    _, _, note, _ = comparison("zh", [str(a.path), str(b.path)])
    assert note == f"无法从 {b.config_path} 读取 b 的参数：学习率：必须大于 0，实际为 -1.0", note
    b.config_path.unlink()
    _, _, note, _ = comparison("ru", [str(a.path), str(b.path)])
    assert note == f"Не удаётся прочитать параметры b: {b.config_path} отсутствует", note


PARIS = {"kind": "contains", "value": "Paris"}
PROBES = {probe.question: probe for probe in parse_probe_lines(
    "Capital of France? => Paris\nCapital of Peru? => contains: Lima\nSay hi")}


def answer_probes(run: RunDir, step: int, answers: dict[str, str]) -> None:
    """A probe round as the training process appends it (engine/train/probes.py), scored by the probes'
    expectations: the two capitals are scored, "Say hi" is not."""
    run.append_event(probe_round(step, [PROBES[q] for q in answers], list(answers.values())))


def test_final_and_best_probe_scores(saves):
    run = record_run(saves, "probed", _config(), [2.0, 1.5, 1.0, 0.9])
    for step, capital in enumerate(["Lyon", "Paris", "It is paris!", "Rome"]):
        answer_probes(run, step * 2, {"Capital of France?": capital, "Capital of Peru?": "Lima", "Say hi": "hi"})
    s = summarize(run)
    assert (s.final_probe_score, s.best_probe_score) == (50.0, 100.0)
    assert s.final_loss == 0.9  # probe rounds carry no loss
    old = record_run(saves, "old", _config(), [1.0])
    old.append_event({"step": 0, "probes": [{"q": "Say hi", "a": "hello"}], "probe_s": 0.5})  # before expectations
    assert summarize(old).final_probe_score is summarize(old).best_probe_score is None


def test_probe_answers_side_by_side(saves):
    """One row per question (every run's, first seen first), one answer per run from its last probe round; a run
    without the question, or without any round, has None."""
    a = record_run(saves, "a", _config(), [1.0])
    answer_probes(a, 0, {"Capital of France?": "Lyon", "Say hi": "hello"})
    answer_probes(a, 6, {"Capital of France?": "Paris", "Say hi": "hi"})
    b = record_run(saves, "b", _config(), [1.0])
    answer_probes(b, 4, {"Capital of Peru?": "Lima", "Capital of France?": "Nice"})
    c = record_run(saves, "c", _config(), [1.0])  # trained without probes
    comparison = probe_comparison([a, b, c])
    assert comparison.runs == [a, b, c] and comparison.steps == [6, 4, None]
    assert comparison.scores == [100.0, 50.0, None]
    assert [row.question for row in comparison.rows] == ["Capital of France?", "Say hi", "Capital of Peru?"]
    france, hi, peru = comparison.rows
    assert france.expect == PARIS and hi.expect is None and peru.expect == {"kind": "contains", "value": "Lima"}
    assert france.answers == [ProbeAnswer("Paris", 100.0), ProbeAnswer("Nice", 0.0), None]
    assert hi.answers == [ProbeAnswer("hi"), None, None]
    assert peru.answers == [None, ProbeAnswer("Lima", 100.0), None]
    assert probe_comparison([c]).rows == [] and probe_comparison([]).rows == []


def test_side_by_side_answers_in_the_tab(saves):
    """The Runs tab's comparison renders them next to the settings diff, each run's final score in its head."""
    from webui.runs_tab import comparison, runs_table

    a = record_run(saves, "a", _config(), [1.0])
    answer_probes(a, 2, {"Capital of France?": "<b>Paris</b>"})
    b = record_run(saves, "b", _config(learning_rate=1e-4), [1.0])
    answer_probes(b, 2, {"Capital of France?": "Nice"})
    _, diff, _, probes = comparison("en", [str(a.path), str(b.path)])
    assert diff["headers"] == ["Parameter", "a", "b"]
    assert "a<div class=\"tb-expect\">step 2 · final score 100</div>" in probes
    assert "b<div class=\"tb-expect\">step 2 · final score 0</div>" in probes
    assert "&lt;b&gt;Paris&lt;/b&gt;" in probes and "<b>Paris" not in probes
    assert "最终得分 100" in comparison("zh", [str(a.path), str(b.path)])[3]
    assert "Capital of France?" in comparison("en", [str(b.path)])[3]  # one run: its answers alone
    table = runs_table("en", [summarize(a), summarize(b)])
    col = table["headers"].index("Final probe score")
    assert table["headers"][col + 1] == "Best probe score"
    assert [row[col:col + 2] for row in table["value"]] == [["100.0", "100.0"], ["0.0", "0.0"]]


def test_hand_edited_probe_scores_count_as_unscored(saves):
    run = record_run(saves, "edited", _config(), [1.0])
    run.append_event({"step": 1, "probes": [{"q": "Say hi", "a": "yo", "expect": "hi", "score": "high"}],
                      "probe_score": "x"})
    assert summarize(run).final_probe_score is None
    comparison = probe_comparison([run])
    assert comparison.scores == [None] and comparison.steps == [1]
    assert comparison.rows[0].expect is None and comparison.rows[0].answers == [ProbeAnswer("yo")]
