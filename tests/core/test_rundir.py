"""Run directory files (status, events, checkpoints), atomic writes, and paths.confined."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.core.fileio import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl
from engine.core.paths import PathError, confined, safe_name
from engine.core.rundir import FAILED, FINISHED, RUNNING, RunDir, list_runs, pid_alive


@pytest.fixture()
def run(tmp_path) -> RunDir:
    p = tmp_path / "run1"
    p.mkdir()
    return RunDir(p)


# -- status -----------------------------------------------------------------------

def test_read_status_missing_or_corrupt(run):
    assert run.read_status() == {}
    run.status_path.write_text('{"state": "runn', encoding="utf-8")
    assert run.read_status() == {}


def test_write_and_read_status(run):
    s1 = run.write_status(RUNNING, pid=1234, created_at=10.0)
    assert s1["state"] == RUNNING and s1["pid"] == 1234
    assert s1["started_at"] == s1["updated_at"]
    assert "finished_at" not in s1
    assert run.read_status() == s1
    assert json.loads(run.status_path.read_text(encoding="utf-8")) == s1

    s2 = run.write_status(FINISHED, phase="done")
    assert s2["state"] == FINISHED
    assert s2["pid"] == 1234 and s2["created_at"] == 10.0  # earlier fields are kept
    assert s2["started_at"] == s1["started_at"]  # not reset
    assert s2["finished_at"] == s2["updated_at"] >= s1["updated_at"]
    assert run.read_status() == s2


def test_status_writes_leave_no_temp_files(run):
    for i in range(20):
        run.write_status(RUNNING, step=i, text="ünïcode ✓")
    assert sorted(p.name for p in run.path.iterdir()) == ["status.json"]
    assert run.read_status()["step"] == 19
    assert run.read_status()["text"] == "ünïcode ✓"


def test_atomic_write_failure_keeps_old_file_and_no_temp(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "bad \ud800 surrogate")  # fails while writing the temp file
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_write_json_creates_folders(tmp_path):
    target = tmp_path / "a" / "b" / "x.json"
    atomic_write_json(target, {"k": "中文", "n": [1, 2]})
    assert json.loads(target.read_text(encoding="utf-8")) == {"k": "中文", "n": [1, 2]}
    assert "中文" in target.read_text(encoding="utf-8")  # not \u-escaped
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


# -- events -------------------------------------------------------------------------

def test_events_round_trip(run):
    assert run.read_events() == []  # no file yet
    run.append_event({"step": 1, "loss": 2.5})
    run.append_event({"step": 2, "loss": 2.0, "note": "ok ✓"})
    assert run.read_events() == [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0, "note": "ok ✓"}]


def test_read_jsonl_ignores_trailing_partial_line(tmp_path):
    path = tmp_path / "events.jsonl"
    append_jsonl(path, {"step": 1})
    append_jsonl(path, {"step": 2})
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"step": 3, "lo')  # a writer mid-append
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('ss": 1.0}\n')  # the append completes
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}, {"step": 3, "loss": 1.0}]


def test_read_jsonl_complete_line_without_json_is_skipped(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"a": 1}\n\nnot json\n{"b": 2}\n{"c": 3}', encoding="utf-8")
    assert read_jsonl(path) == [{"a": 1}, {"b": 2}]


# -- live status ------------------------------------------------------------------------

def test_live_status_reports_dead_pid_as_failed(run):
    proc = subprocess.Popen([sys.executable, "-c", "print('bye')"])
    proc.wait(timeout=60)
    assert not pid_alive(proc.pid)
    run.log_path.write_text("loading\nstep 1\rstep 2\nTraceback: boom\n", encoding="utf-8")
    run.write_status(RUNNING, pid=proc.pid)

    status = run.live_status()
    assert status["state"] == FAILED
    assert status["pid"] == proc.pid
    assert "exited unexpectedly" in status["error"]
    assert status["error"].endswith("last output:\nloading\nstep 2\nTraceback: boom")
    assert "finished_at" in status
    assert run.read_status() == status  # the verdict is written back


def test_live_status_keeps_live_pid_running(run):
    assert pid_alive(os.getpid())
    written = run.write_status(RUNNING, pid=os.getpid())
    assert run.live_status() == written
    assert run.read_status()["state"] == RUNNING


def test_live_status_leaves_finished_runs_alone(run):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=60)
    written = run.write_status(FINISHED, pid=proc.pid)
    assert run.live_status() == written


def test_log_tail(run):
    assert run.log_tail() == ""
    run.log_path.write_text("".join(f"line {i}\n" for i in range(100)), encoding="utf-8")
    assert run.log_tail(3) == "line 97\nline 98\nline 99"


def test_log_tail_keeps_last_progress_state(run):
    # tqdm redraws a line with "\r"; only its final state is shown, and each redraw is not a line.
    run.log_path.write_bytes(b"start\r\n 10%|#\r 50%|#####\r100%|##########\ndone\r\nlast line\r")
    assert run.log_tail(10) == "start\n100%|##########\ndone\nlast line"
    assert run.log_tail(2) == "done\nlast line"
    run.log_path.write_bytes(b"")
    assert run.log_tail() == ""


# -- checkpoints and listing ------------------------------------------------------------

def test_checkpoints_sorted_numerically(run):
    for n in (100, 2, 10, 50):
        (run.path / f"checkpoint-{n}").mkdir()
    for name in ("checkpoint-abc", "checkpoint-", "checkpoint-5.bak", "checkpoint-7-old", "ckpt-1", "Checkpoint-3"):
        (run.path / name).mkdir()
    (run.path / "checkpoint-5").write_text("a file, not a folder", encoding="utf-8")
    assert [p.name for p in run.checkpoints()] == ["checkpoint-2", "checkpoint-10", "checkpoint-50", "checkpoint-100"]
    assert all(p.parent == run.path for p in run.checkpoints())


def test_checkpoints_empty(run):
    assert run.checkpoints() == []


def test_has_final_weights(run):
    assert not run.has_final_weights()
    (run.path / "checkpoint-1").mkdir()
    (run.path / "checkpoint-1" / "adapter_model.safetensors").write_bytes(b"x")
    assert not run.has_final_weights()  # a checkpoint is not the final result
    (run.path / "adapter_model.safetensors").write_bytes(b"x")
    assert run.has_final_weights()


def test_list_runs_newest_first(tmp_path):
    for name, created in (("old", 1.0), ("new", 3.0), ("mid", 2.0)):
        (tmp_path / name).mkdir()  # write_status never makes a run folder (a deleted run stays deleted)
        RunDir(tmp_path / name).write_status(FINISHED, created_at=created)
    (tmp_path / "not-a-run").mkdir()
    assert [r.name for r in list_runs(tmp_path)] == ["new", "mid", "old"]
    assert list_runs(tmp_path / "missing") == []


# -- paths.confined -------------------------------------------------------------------

def test_confined_accepts_normal_names(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    assert confined(root, "data.json") == root.resolve() / "data.json"
    assert confined(root, "sub/data.json") == root.resolve() / "sub" / "data.json"
    assert confined(root, "sub/../data.json") == root.resolve() / "data.json"
    assert confined(root, "..data.json") == root.resolve() / "..data.json"  # dots inside a name are fine


@pytest.mark.parametrize(
    "name",
    ["../x.json", "sub/../../x.json", "..", "/etc/passwd", "~/x.json", "~", "a\x00b.json", "", "   "],
    ids=["dotdot", "nested-dotdot", "parent", "absolute", "home", "tilde", "nul", "empty", "blank"],
)
def test_confined_refuses(tmp_path, name):
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(PathError):
        confined(root, name, what="file_name")


def test_confined_refuses_non_text(tmp_path):
    with pytest.raises(PathError):
        confined(tmp_path, None)  # type: ignore[arg-type]


def test_confined_error_names_what(tmp_path):
    with pytest.raises(PathError, match=r"^file_name of 'ds' '\.\./x' points outside"):
        confined(tmp_path, "../x", what="file_name of 'ds'")
    with pytest.raises(PathError, match="NUL"):
        confined(tmp_path, "a\x00", what="x")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_confined_refuses_symlink_escape(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("s", encoding="utf-8")
    (root / "link.txt").symlink_to(secret)
    (root / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    (root / "inner.txt").write_text("ok", encoding="utf-8")
    (root / "good_link.txt").symlink_to(root / "inner.txt")
    with pytest.raises(PathError, match="outside"):
        confined(root, "link.txt")
    with pytest.raises(PathError, match="outside"):
        confined(root, "dirlink/secret.txt")
    assert confined(root, "good_link.txt") == (root / "inner.txt").resolve()


@pytest.mark.parametrize("name", [".", "./", "a/..", "./."])
def test_confined_refuses_the_root_itself(tmp_path, name):
    # "." as an output dir would be the method folder holding every run; as an export dir, all exports
    with pytest.raises(PathError, match="itself"):
        confined(tmp_path, name)


@pytest.mark.parametrize(("text", "expected"), [("Qwen/Qwen2.5-0.5B", "Qwen-Qwen2.5-0.5B"), ("../..", "unnamed"),
                                                ("  my run  ", "my-run"), ("a/../b", "a-..-b")])
def test_safe_name(text, expected):
    assert safe_name(text) == expected
    assert "/" not in safe_name(text) and safe_name(text) not in (".", "..")


def test_confined_result_is_path(tmp_path):
    assert isinstance(confined(tmp_path, "x"), Path)
