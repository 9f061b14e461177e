"""GaLore, APOLLO and BAdam train real steps on the demo model, and Trackio and SwanLab log them into the run folder.

One run per optimizer, each also reporting to a tracker (a run costs its process start and model load more than its
steps): GaLore on the freeze method with Trackio, read back through Trackio's own API and compared with
events.jsonl; APOLLO on the full method with SwanLab offline; BAdam layer-wise on the full method, where only the
first layer may change. All three libraries run on the CPU."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from safetensors import safe_open

from engine.core.rundir import FINISHED
from tests.helpers.runs import ROOT, run_cold_job, tiny_train_config

pytestmark = pytest.mark.slow

LAYER = "model.layers.{}.mlp.down_proj.weight"
LAST = 29  # the demo model's last decoder layer


def _config(optimizer: str, method: str, tracker: str):
    cfg = tiny_train_config(report_to=tracker, finetuning_type=method, save_steps=2)
    cfg.data.max_samples, cfg.data.cutoff_len = 8, 64  # two steps of four samples
    section = getattr(cfg, optimizer)
    setattr(section, f"use_{optimizer}", True)
    cfg.validate()
    return cfg


def _weights(folder, names):
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return {name: f.get_tensor(name) for name in names}


def _changed(run, demo_model_dir, layers) -> dict[int, bool]:
    names = [LAYER.format(i) for i in layers]
    before, after = _weights(demo_model_dir, names), _weights(run.path, names)
    return {i: not before[n].equal(after[n].to(before[n].dtype)) for i, n in zip(layers, names)}


def _trackio_logs(folder, run_name) -> list[dict]:
    """The run's metrics as Trackio itself reads them (its own process: TRACKIO_DIR is read at import)."""
    code = ("import json, sys; from trackio.sqlite_storage import SQLiteStorage; "
            "print(json.dumps(SQLiteStorage.get_logs('tuneboard', sys.argv[1])))")
    out = subprocess.run([sys.executable, "-c", code, run_name], capture_output=True, text=True, check=True,
                         env={**os.environ, "TRACKIO_DIR": str(folder)}, cwd=ROOT, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("optimizer, method, tracker", [("galore", "freeze", "trackio"), ("apollo", "full", "swanlab"),
                                                         ("badam", "full", "none")])
def test_memory_optimizer_trains_real_steps(optimizer, method, tracker, tmp_path, demo_model_dir, monkeypatch):
    for name in ("SWANLAB_MODE", "SWANLAB_LOG_DIR", "TRACKIO_SPACE_ID"):  # the defaults: offline, in the run folder
        monkeypatch.delenv(name, raising=False)
    run, status = run_cold_job(_config(optimizer, method, tracker), tmp_path / optimizer, timeout=600)
    log = run.log_path.read_text()
    assert status["state"] == FINISHED, run.log_tail(40)
    assert status["step"] == status["total_steps"] == 2
    losses = {e["step"]: e["loss"] for e in run.read_events() if "loss" in e}
    assert set(losses) >= {1, 2} and all(math.isfinite(v) for v in losses.values())
    assert (run.path / "checkpoint-2" / "optimizer.pt").is_file()  # its state saves with the checkpoint

    if optimizer == "galore":  # freeze: the last two layers, projected
        assert "galore: galore_adamw on 14 linear layers, rank 16" in log
        assert _changed(run, demo_model_dir, [0, LAST]) == {0: False, LAST: True}
    elif optimizer == "apollo":
        assert "apollo: apollo_adamw on 210 linear layers" in log
        assert _changed(run, demo_model_dir, [0, LAST]) == {0: True, LAST: True}
    else:  # layer-wise, ascending, switching every 50 steps: two steps train the first layer only
        assert "badam: layer-wise, ascending order" in log
        assert _changed(run, demo_model_dir, [0, 1, LAST]) == {0: True, 1: False, LAST: False}

    if tracker == "trackio":
        logged = {row["train/global_step"]: row["train/loss"] for row in _trackio_logs(run.path / "trackio", run.name)
                  if "train/loss" in row}
        assert logged and set(logged) <= set(losses)
        assert all(math.isclose(logged[step], losses[step], rel_tol=1e-4) for step in logged), (logged, losses)
    elif tracker == "swanlab":
        assert "swanlab: offline mode" in log
        records = list((run.path / "swanlog").glob("run-*/run-*.swanlab"))
        assert len(records) == 1 and b"train/loss" in records[0].read_bytes()
