"""Jobs run with tcmalloc where the system has it: cold-started and warm-forked alike, shown in the preview,
chained with a preload of the user's own, and off with TUNEBOARD_TCMALLOC=0."""

from __future__ import annotations

import psutil
import pytest

from engine.core import allocator
from engine.core.rundir import RUNNING, STOPPED, RunDir
from engine.jobs import warm_worker
from engine.jobs.launch import job_command
from tests.helpers.runs import tiny_train_config, wait_for_state
from tests.jobs.test_warm_worker import _worker_ready
from webui import runner

LIBRARY = allocator.tcmalloc_path()
needs_tcmalloc = pytest.mark.skipif(LIBRARY is None, reason="libtcmalloc-minimal4 is not installed "
                                                           "(scripts/install.sh installs it where apt can)")


def _maps_tcmalloc(pid: int) -> bool:
    return any("tcmalloc" in (m.path or "") for m in psutil.Process(pid).memory_maps(grouped=True))


@needs_tcmalloc
def test_job_environment_preloads_tcmalloc(monkeypatch, tmp_path):
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    cfg = tiny_train_config()
    _, env = job_command(cfg, tmp_path / "run.yaml")
    assert env["LD_PRELOAD"] == LIBRARY
    assert int(env["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"]) >= 1 << 40  # no backtraces in the run's log
    assert f"LD_PRELOAD={LIBRARY} " in runner.command_preview(RunDir(tmp_path), cfg)  # pasteable, same allocator

    monkeypatch.setenv("LD_PRELOAD", "/opt/mine/libfoo.so")  # a preload of the user's own is kept
    assert allocator.allocator_env()["LD_PRELOAD"] == f"{LIBRARY}:/opt/mine/libfoo.so"
    monkeypatch.setenv("LD_PRELOAD", LIBRARY)  # already there: nothing added
    assert allocator.allocator_env() == {}
    monkeypatch.delenv("LD_PRELOAD")
    monkeypatch.setenv(allocator.ENV_SWITCH, "0")
    assert allocator.allocator_env() == {}
    assert "LD_PRELOAD" not in job_command(cfg, tmp_path / "run.yaml")[1]


@pytest.mark.slow
@needs_tcmalloc
def test_cold_and_warm_jobs_run_on_tcmalloc_unless_turned_off(workdirs, demo_model_dir, monkeypatch):
    def running_job(name: str) -> tuple[RunDir, int]:
        run = runner.launch(runner.run_dir_for("SmolLM2-135M-Instruct", "lora", name),
                            tiny_train_config(num_train_epochs=20.0))
        wait_for_state(run, 180, (RUNNING,))
        return run, run.read_status()["pid"]

    def stop(run: RunDir) -> None:
        runner.stop(run)
        assert wait_for_state(run, 120)["state"] == STOPPED

    monkeypatch.setenv(warm_worker.ENV_SWITCH, "0")
    cold, pid = running_job("alloc-cold")
    assert not cold.read_status()["warm"] and _maps_tcmalloc(pid)
    stop(cold)

    monkeypatch.setenv(allocator.ENV_SWITCH, "0")
    plain, pid = running_job("alloc-off")
    assert not _maps_tcmalloc(pid)
    stop(plain)

    monkeypatch.delenv(allocator.ENV_SWITCH)
    monkeypatch.delenv(warm_worker.ENV_SWITCH)
    _worker_ready()
    warm, pid = running_job("alloc-warm")
    assert warm.read_status()["warm"] and _maps_tcmalloc(pid)
    stop(warm)
