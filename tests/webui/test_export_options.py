"""Export-tab logic without a browser: every ExportConfig field has one control that survives the form, and the
new options (GPTQ, GGUF, hub push) reach Preview command, run.yaml and Save / Load arguments."""

from __future__ import annotations

import gradio as gr
import yaml

from engine.core.config import COMMAND_SECTIONS, RunConfig, iter_fields
from webui import runner
from webui.command_row import preview_answer
from webui.export_tab import build_export_tab
from webui.form import config_from_values, values_from_config
from webui.top_bar import build_top_bar


def _export_config() -> RunConfig:
    cfg = RunConfig()
    cfg.model.hub = "huggingface"  # the form shows a concrete hub, not auto
    cfg.export.export_dir = "my-model"
    cfg.export.export_quantization_bit = "4"
    cfg.export.export_quantization_dataset = "identity"
    cfg.export.export_hub, cfg.export.export_hub_model_id, cfg.export.export_hub_private = \
        "modelscope", "me/my-model", False
    cfg.export.max_shard_size_gb = 2.0
    cfg.validate("export")
    return cfg


def test_every_export_field_has_one_control_and_survives_the_form():
    with gr.Blocks():
        top = build_top_bar()
        tab = build_export_tab(top, runner.RunWatch())
    controls = top.model_controls + tab.controls
    keys = [c.key for c in controls]
    assert len(keys) == len(set(keys)), "a field has two controls"
    wanted = {f"{s}.{f.name}" for s, f, _ in iter_fields(RunConfig()) if s in COMMAND_SECTIONS["export"]}
    assert wanted - set(keys) == {"model.adapter_path", "export.output_dir"}  # checkpoint dropdown; set by the app

    cfg = _export_config()
    back = config_from_values(controls, values_from_config(controls, cfg), command="export")
    assert back.to_dict() == cfg.to_dict()
    gguf = RunConfig.from_dict({"export": {"export_dir": "x", "export_gguf": "q8_0"}}, "export")
    assert config_from_values(controls, values_from_config(controls, gguf), command="export").export.export_gguf \
        == "q8_0"


def test_export_options_in_preview_command_and_saved_arguments(tmp_path):
    cfg = _export_config()
    run = runner.run_dir_for("demo", "lora", "export-preview", tmp_path / "saves")
    command, status = preview_answer("en", lambda: (cfg, run), "export")
    assert status == ""
    text = command["value"]
    for line in ("export_quantization_bit: '4'", "export_quantization_dataset: identity", "export_gguf: none",
                 "export_hub: modelscope", "export_hub_model_id: me/my-model", "export_hub_private: false"):
        assert line in text, line
    assert "python -m engine export" in text

    path = tmp_path / "export_config.yaml"  # what Save arguments writes and Load arguments reads
    cfg.save(path, "export")
    assert set(yaml.safe_load(path.read_text())) == {"model", "export"}
    assert RunConfig.load(path, "export").to_dict() == cfg.to_dict()

    bad = _export_config()
    bad.export.export_hub_model_id = "no slash"
    _, status = preview_answer("zh", lambda: (RunConfig.from_dict(bad.to_dict(), "export"), run), "export")
    assert "HF Hub ID（非必填）" in status and "owner/name" in status
