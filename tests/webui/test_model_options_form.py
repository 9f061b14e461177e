"""The model-load and data options in the form: the top bar's advanced settings and the Extra group's boxes survive
Save/Load arguments, show in Preview command, and their refusals read in the page's language."""

from __future__ import annotations

import gradio as gr

from engine.core.config import ConfigError, RunConfig
from engine.core.rundir import RunDir
from webui import runner
from webui.errors import error_text
from webui.form import config_from_values, values_from_config
from webui.locales import field_text
from webui.top_bar import build_top_bar
from webui.train_tab import build_train_tab


def _options_config() -> RunConfig:
    cfg = RunConfig()
    cfg.data.datasets, cfg.model.hub = ["identity"], "huggingface"  # the form shows a concrete hub, not auto
    cfg.model.rope_scaling, cfg.model.booster = "llama3", "none"
    cfg.data.packing, cfg.data.neat_packing = False, False
    cfg.train.finetuning_type, cfg.freeze.use_llama_pro, cfg.freeze.trainable_layers = "freeze", True, 4
    cfg.train.resize_vocab, cfg.train.shift_attn = True, True
    cfg.validate()
    return cfg


def test_the_options_survive_the_form_and_show_in_the_preview(tmp_path):
    with gr.Blocks():
        top = build_top_bar()
        tab = build_train_tab(top)
    assert top.rope_scaling in top.model_controls and top.booster in top.model_controls  # train, eval, export forms
    controls = top.model_controls + tab.controls
    cfg = _options_config()
    back = config_from_values(controls, values_from_config(controls, cfg))
    assert back.to_dict() == cfg.to_dict()
    cfg.train.output_dir = str(tmp_path)
    preview = runner.command_preview(RunDir(tmp_path), cfg)
    for line in ("rope_scaling: llama3", "booster: none", "neat_packing: false", "resize_vocab: true",
                 "shift_attn: true", "use_llama_pro: true"):
        assert line in preview


def test_labels_are_llamaboards_and_refusals_are_translated():
    assert field_text("zh", "model.rope_scaling")[0] == "RoPE 插值方法"
    assert field_text("zh", "model.booster")[0] == "加速方式"
    assert field_text("zh", "data.neat_packing")[0] == "使用无污染打包"
    assert field_text("en", "freeze.use_llama_pro")[0] == "Enable LLaMA Pro"
    err = ConfigError("model.booster", "booster_needs_cuda", booster="flashattn2", device="cpu")
    assert error_text("zh", err) == "加速方式：flashattn2 需要 CUDA GPU；本次运行在 cpu 上。请选择 auto 或 none"
    err = ConfigError("train.shift_attn", "shift_attn_packing")
    assert "S^2 Attention" in error_text("ko", err) and "패킹을 끄세요" in error_text("ko", err)
