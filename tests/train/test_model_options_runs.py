"""Training jobs with the model-load options, as Start runs them: booster none trains with auto's loss; a LLaMA
Pro run (with S² attention and RoPE scaling) gives a checkpoint that answers in Chat; a LoRA run with resize vocab
saves its grown embeddings, which evaluation/export and Chat load onto the base model; boosters the machine cannot
run are refused up front."""

from __future__ import annotations

import os
import shutil

import pytest

from bench.harness import short_train_config
from engine.core.config import ConfigError
from engine.core.devices import cpu_has_native_bf16
from tests.helpers.runs import run_cold_job

pytestmark = pytest.mark.slow  # each test trains the demo model for two steps in its own process


def _two_steps(**train):
    cfg = short_train_config(8, cutoff_len=64, extra_args='{"max_steps": 2}', **train)
    cfg.data.packing = True
    return cfg


def _losses(run) -> list[float]:
    return [e["loss"] for e in run.read_events() if "loss" in e and not e.get("initial")]


def _answer(eng) -> str:
    from engine.core.chat_settings import GenerationSettings

    question = [{"role": "user", "content": "Who are you?"}]
    return list(eng.stream(question, GenerationSettings(max_new_tokens=8, temperature=0.0)))[-1]


def test_booster_none_trains_with_the_loss_of_auto(tmp_path):
    runs = {}
    for booster in ("auto", "none"):
        cfg = _two_steps()
        cfg.model.booster = booster
        run, status = run_cold_job(cfg, tmp_path / booster)
        assert status["state"] == "finished", run.log_tail(30)
        runs[booster] = run
    auto, plain = (_losses(runs[b]) for b in ("auto", "none"))
    assert len(auto) == len(plain) == 2
    # In bf16 (auto, where the CPU has it natively) the fused LoRA path rounds at other points than peft's: the
    # step after the first update differed by 0.33% (tests/train/test_lean_activations.py compares both with fp32).
    assert plain == pytest.approx(auto, rel=6e-3 if cpu_has_native_bf16() else 2e-3)
    assert "answer-only loss on" in runs["auto"].log_tail(80)
    log = runs["none"].log_tail(80)
    assert "answer-only loss" not in log and "sample by sample" not in log  # none of TuneBoard's fast paths


def test_llama_pro_checkpoint_answers_in_chat(tmp_path):
    """Also shift short attention and RoPE scaling in the same run: a cutoff past the demo model's 8192 positions
    (the samples stay short) scales them by 2, and the checkpoint keeps the scaled config."""
    from engine.serve.chat import ChatEngine

    cfg = _two_steps(finetuning_type="freeze")
    cfg.freeze.use_llama_pro, cfg.freeze.trainable_layers, cfg.train.shift_attn = True, 2, True
    cfg.data.packing, cfg.data.cutoff_len, cfg.model.rope_scaling = False, 9000, "linear"
    cfg.validate()
    run, status = run_cold_job(cfg, tmp_path / "pro")
    assert status["state"] == "finished", run.log_tail(30)
    log = run.log_tail(80)
    assert "LLaMA Pro: 2 blocks added at [15, 31]" in log and "freeze: training the added 2 of 32 layers" in log
    assert "RoPE scaling: linear, factor 2: 8192 -> 16384 positions" in log and "shift short attention" in log
    assert all(e["loss"] > 0 for e in run.read_events() if "loss" in e)
    eng = ChatEngine()
    eng.load("demo/SmolLM2-135M-Instruct", str(run.path), device="cpu")  # a whole model: it becomes the base
    assert eng.model.config.num_hidden_layers == 32 and eng.model.config.llama_pro_blocks == [15, 31]
    assert eng.model.config.rope_parameters["factor"] == 2.0
    assert _answer(eng)
    eng.unload()


def test_resized_vocabulary_trains_and_loads_everywhere(tmp_path, demo_model_dir):
    from transformers import AutoTokenizer

    from engine.modeling.models import load_with_checkpoint
    from engine.serve.chat import ChatEngine

    model_dir = tmp_path / "model"  # the demo model with one token added to its tokenizer
    model_dir.mkdir()
    for f in demo_model_dir.iterdir():
        if f.is_file():
            try:
                os.link(f, model_dir / f.name)
            except OSError:
                shutil.copy(f, model_dir / f.name)
    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir)
    tokenizer.add_tokens(["<tuneboard_new>"])
    tokenizer.save_pretrained(model_dir)
    cfg = _two_steps(resize_vocab=True)
    cfg.model.model_name_or_path = str(model_dir)
    run, status = run_cold_job(cfg, tmp_path / "resized")
    assert status["state"] == "finished", run.log_tail(30)
    assert "resize vocab: embeddings 49152 -> 49216 rows (tokenizer: 49153 tokens)" in run.log_tail(80)
    model, loaded_tokenizer, kind = load_with_checkpoint(str(model_dir), str(run.path), log=lambda _line: None)
    assert kind == "lora" and model.get_input_embeddings().weight.shape[0] == 49216
    assert len(loaded_tokenizer) == 49153
    eng = ChatEngine()
    eng.load(str(model_dir), str(run.path), device="cpu")
    assert _answer(eng)
    eng.unload()


def test_boosters_this_machine_cannot_run_are_refused_before_loading(demo_model_dir):
    from engine.serve.chat import ChatEngine
    from engine.train.run import _check_device_features

    cfg = _two_steps()
    cfg.model.booster = "flashattn2"
    with pytest.raises(ConfigError) as err:
        _check_device_features(cfg, "cpu")
    assert err.value.field_name == "model.booster" and err.value.key == "booster_needs_cuda"
    eng = ChatEngine()
    with pytest.raises(ConfigError):
        eng.load(str(demo_model_dir), device="cpu", booster="liger_kernel")
    assert not eng.loaded
