"""The GaLore, APOLLO and BAdam groups and the new trackers on the Train tab: every value survives the form (so Save /
Load arguments), reaches Preview command's run.yaml, and a run refused for a missing package reads in each language."""

from __future__ import annotations

import gradio as gr

from engine.core.config import ConfigError, RunConfig
from engine.core.optional_packages import Package, require
from engine.core.rundir import RunDir
from engine.jobs.job import error_record
from webui import runner
from webui.errors import error_text, recorded_error
from webui.form import config_from_values, values_from_config
from webui.top_bar import build_top_bar
from webui.train_tab import build_train_tab


def test_memory_optimizer_settings_survive_the_form_and_reach_the_preview(tmp_path):
    with gr.Blocks():
        top = build_top_bar()
        tab = build_train_tab(top)
    controls = top.model_controls + tab.controls
    cfg = RunConfig()
    cfg.data.datasets = ["identity"]
    cfg.model.hub = "huggingface"  # the form shows a concrete hub, not auto
    cfg.train.finetuning_type, cfg.train.report_to = "full", "trackio"
    cfg.apollo.use_apollo, cfg.apollo.rank, cfg.apollo.update_interval = True, 32, 50
    cfg.apollo.scale, cfg.apollo.target = 4.5, "mlp"
    cfg.galore.rank, cfg.galore.target = 8, "q_proj,v_proj"
    cfg.badam.mode, cfg.badam.switch_mode, cfg.badam.switch_interval, cfg.badam.update_ratio = "ratio", "fixed", 9, 0.3
    cfg.validate()
    back = config_from_values(controls, values_from_config(controls, cfg))
    assert back.to_dict() == cfg.to_dict()
    preview = runner.command_preview(RunDir(tmp_path / "run"), back)
    assert "apollo:\n  use_apollo: true\n  rank: 32\n  update_interval: 50\n  scale: 4.5\n  target: mlp" in preview
    assert "report_to: trackio" in preview and "switch_mode: fixed" in preview


def test_a_missing_package_reads_in_the_users_language():
    try:
        require("badam.use_badam", Package("BAdam", ("tuneboard_no_such_module",), "badam==1.4"))
    except ConfigError as exc:
        record = error_record(exc)  # what a failed job keeps in status.json
    shown = {lang: error_text(lang, recorded_error(record)) for lang in ("en", "zh", "ja", "ko", "ru")}
    assert shown["en"] == "Use BAdam: BAdam needs the badam package, not installed here: pip install badam==1.4"
    assert shown["zh"].startswith("使用 BAdam") and "需要 badam 包" in shown["zh"]
    assert all("pip install badam==1.4" in text for text in shown.values())
