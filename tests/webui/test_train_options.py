"""Train-tab logic without a browser: the device list, form <-> config for every field, the validation-loss
trace, checkpoint labels, and what Start does with an output dir that already holds a run."""

from __future__ import annotations

import json

import gradio as gr
import pytest

from engine.core.config import COMMAND_SECTIONS, RunConfig, iter_fields
from engine.core.rundir import FINISHED, RunDir
from webui import runner
from webui.form import config_from_values, field_control, values_from_config
from webui.locales import plot_labels
from webui.plots import loss_figure
from webui.run_monitor import folder_refusal
from webui.top_bar import build_top_bar, checkpoint_choices, reward_model_choices
from webui.train_tab import build_train_tab, parse_device_list, resume_message

NVIDIA_SMI = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1a2b)\nGPU 1: NVIDIA A10 (UUID: GPU-3c4d)\n"
NPU_SMI = """
        Total Count                    : 2

        NPU ID                         : 0
        Product Name                   : IT21HMDB02-B1
        Serial Number                  : 033JLS10M9000178

        NPU ID                         : 1
        Product Name                   : IT21HMDB02-B1
"""


def test_device_lists_from_vendor_tools():
    assert parse_device_list(NVIDIA_SMI) == [("GPU 0: NVIDIA H100 80GB HBM3", "0"), ("GPU 1: NVIDIA A10", "1")]
    assert parse_device_list(NPU_SMI) == [("NPU 0: IT21HMDB02-B1", "0"), ("NPU 1: IT21HMDB02-B1", "1")]
    assert parse_device_list("") == []


def test_device_picker_fills_the_comma_separated_field():
    picker = field_control("distributed", "devices", "en", ticks=[("GPU 0", "0"), ("GPU 1", "1")])
    assert isinstance(picker.component, gr.CheckboxGroup)
    assert picker.config_value(["0", "1"]) == "0,1" and picker.config_value([]) == ""
    cfg = RunConfig()
    cfg.distributed.devices = "1, 3"
    assert picker.value_from(cfg) == ["1"]  # no device 3 on this machine: Gradio would refuse the form
    cpu = field_control("distributed", "devices", "zh", ticks=[], info_key="devices_cpu_only")
    assert cpu.texts("zh")["info"] == "仅 CPU：未找到 GPU 或 NPU。" and cpu.texts("en")["label"] == "Devices"


def test_every_training_field_has_one_control_and_survives_the_form():
    with gr.Blocks():
        top = build_top_bar()
        tab = build_train_tab(top)
    controls = top.model_controls + tab.controls
    keys = [c.key for c in controls]
    assert len(keys) == len(set(keys)), "a field has two controls"
    wanted = {f"{s}.{f.name}" for s, f, _ in iter_fields(RunConfig()) if s in COMMAND_SECTIONS["train"]}
    assert wanted - set(keys) == {"model.adapter_path", "train.output_dir"}  # checkpoint dropdown; set by the app

    cfg = RunConfig()
    cfg.data.datasets = ["identity"]
    cfg.model.quantization_bit, cfg.model.hub = "4", "modelscope"  # the form shows a concrete hub, not auto
    cfg.train.stage, cfg.train.neftune_noise_alpha, cfg.train.resume = "dpo", 5.0, False
    cfg.train.extra_args = '{"weight_decay": 0.01}'
    cfg.lora.use_dora, cfg.lora.loraplus_lr_ratio, cfg.lora.additional_target = True, 16.0, "embed_tokens"
    cfg.freeze.trainable_modules = "mlp"
    cfg.rlhf.beta, cfg.rlhf.ftx, cfg.rlhf.loss_type = 0.25, 0.5, "ipo"
    cfg.grpo.rewards, cfg.grpo.format_regex, cfg.grpo.beta = ["format", "length"], r"\d+", 0.04
    cfg.distributed.nnodes, cfg.distributed.master_addr, cfg.distributed.deepspeed = 2, "10.0.0.1", "3"
    cfg.validate()
    back = config_from_values(controls, values_from_config(controls, cfg))
    assert back.to_dict() == cfg.to_dict()


def test_loss_plot_draws_validation_loss_on_the_same_axes():
    events = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.8}, {"step": 2, "eval_loss": 1.9},
              {"step": 4, "loss": 1.5}, {"step": 4, "eval_loss": 1.7}]
    fig = loss_figure(events, plot_labels("zh"))
    assert [trace.name for trace in fig.data] == ["损失", "平滑", "验证损失"]
    assert list(fig.data[2].x) == [2, 4] and list(fig.data[2].y) == [1.9, 1.7]


def _run_with_checkpoints(cfg: RunConfig, name: str = "first") -> RunDir:
    """A run folder as the Trainer leaves it: checkpoints 2 and 4 complete, 6 cut off while saving."""
    run = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", name)
    run.path.mkdir(parents=True)
    cfg.save(run.config_path, "train")
    run.write_status(FINISHED, created_at=1.0, command="train")
    (run.path / "adapter_model.safetensors").write_bytes(b"")
    history = [{"step": 2, "loss": 1.5}, {"step": 4, "loss": 1.25}, {"step": 4, "eval_loss": 1.375}]
    for step in (2, 4, 6):
        ckpt = run.path / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "adapter_model.safetensors").write_bytes(b"")
        if step < 6:
            (ckpt / "optimizer.pt").write_bytes(b"")
            (ckpt / "scheduler.pt").write_bytes(b"")
            (ckpt / "trainer_state.json").write_text(json.dumps(
                {"log_history": history, "best_model_checkpoint": str(run.path / "checkpoint-4")}))
    return run


@pytest.fixture
def first_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEBOARD_SAVES", str(tmp_path))
    cfg = RunConfig()
    cfg.data.datasets = ["identity"]
    return _run_with_checkpoints(cfg), cfg


def test_checkpoint_dropdown_lists_runs_and_complete_checkpoints(first_run):
    run, _ = first_run
    choices = checkpoint_choices("en", "SmolLM2-135M-Instruct (demo)", "demo/SmolLM2-135M-Instruct", "lora")
    assert choices == [("first", str(run.path)),
                       ("first / checkpoint-4 (step 4, loss 1.25, eval loss 1.375, best by loss)",
                        str(run.path / "checkpoint-4")),
                       ("first / checkpoint-2 (step 2, loss 1.5)", str(run.path / "checkpoint-2"))]
    zh = checkpoint_choices("zh", "SmolLM2-135M-Instruct (demo)", "demo/SmolLM2-135M-Instruct", "lora")
    assert zh[1][0] == "first / checkpoint-4 (步数 4，损失 1.25，验证损失 1.375，损失最优)"


def test_existing_run_resumes_only_when_nothing_essential_changed(first_run):
    run, cfg = first_run
    assert folder_refusal("en", run, cfg, "train") is None
    text = resume_message("en", run, cfg)
    assert "from checkpoint-4 (step 4, loss 1.25" in text and "optimizer state" in text
    assert "Skipped (incomplete): checkpoint-6" in text and "No setting changed" in text

    cfg.train.learning_rate = 1e-4  # may change when resuming
    assert folder_refusal("en", run, cfg, "train") is None
    assert "Learning rate: 5e-05 → 0.0001" in resume_message("en", run, cfg)

    cfg.lora.rank = 16  # may not
    refusal = folder_refusal("zh", run, cfg, "train")
    assert "LoRA 秩: 8 → 16" in refusal and "学习率" not in refusal and str(run.path) in refusal
    assert refusal in resume_message("zh", run, cfg)

    cfg.lora.rank, cfg.train.resume = 8, False
    assert "tick Resume" in folder_refusal("en", run, cfg, "train")
    assert "already holds a run" in folder_refusal("en", run, cfg, "eval")
    fresh = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", "second")
    assert folder_refusal("en", fresh, cfg, "train") is None and resume_message("en", fresh, cfg) == ""


def test_ppo_options_survive_the_form_and_show_in_the_command(first_run):
    run, _ = first_run
    with gr.Blocks():
        top = build_top_bar()
        tab = build_train_tab(top)
    controls = top.model_controls + tab.controls
    cfg = RunConfig()
    cfg.data.datasets, cfg.train.stage, cfg.model.hub = ["identity"], "ppo", "huggingface"  # the form's hub
    cfg.rlhf.reward_model, cfg.rlhf.ppo_score_norm, cfg.rlhf.ppo_whiten_rewards = str(run.path), True, True
    cfg.rlhf.ppo_epochs, cfg.rlhf.ppo_max_new_tokens = 2, 32
    cfg.validate()
    back = config_from_values(controls, values_from_config(controls, cfg))
    assert back.to_dict() == cfg.to_dict()
    shown = runner.command_preview(run, back, "train")
    for line in (f"reward_model: {run.path}", "ppo_score_norm: true", "ppo_whiten_rewards: true", "ppo_epochs: 2",
                 "ppo_max_new_tokens: 32", "stage: ppo"):
        assert line in shown and line in back.to_yaml("train")


def test_reward_model_list_offers_only_reward_modeling_runs(first_run, tmp_path):
    run, cfg = first_run  # an SFT run: not a reward model
    cfg.train.stage, cfg.data.datasets = "rm", ["dpo_demo"]
    rm = _run_with_checkpoints(cfg, "reward")
    choices = reward_model_choices("en", "SmolLM2-135M-Instruct (demo)", "demo/SmolLM2-135M-Instruct", "lora")
    assert [path for _, path in choices] == [str(rm.path), str(rm.path / "checkpoint-4"),
                                             str(rm.path / "checkpoint-2")]
    assert str(run.path) in [p for _, p in checkpoint_choices("en", "SmolLM2-135M-Instruct (demo)",
                                                               "demo/SmolLM2-135M-Instruct", "lora")]
