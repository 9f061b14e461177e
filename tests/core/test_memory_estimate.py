"""The memory estimate: its arithmetic, its advice, the published tables it is compared with in README.md, and
(slow) its calibration against real training runs of the demo model on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.core.config import RunConfig
from engine.core.memory_estimate import (
    DEMO_CONFIG,
    GB,
    estimate_inference,
    estimate_training,
    info_from_config,
    lora_trainable_params,
    model_info,
)
from engine.core.memory_fit import DeviceMemory, fits, run_devices

ROOT = Path(__file__).resolve().parents[2]

# config.json of each model (the fields the estimate reads, as published on the hub).
CONFIGS = {
    "Llama-2-7B": {"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 11008,
                   "num_attention_heads": 32, "num_key_value_heads": 32, "num_hidden_layers": 32, "vocab_size": 32000,
                   "tie_word_embeddings": False, "model_type": "llama", "hidden_act": "silu"},
    "Mistral-7B": {"architectures": ["MistralForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
                   "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 32, "vocab_size": 32000,
                   "tie_word_embeddings": False, "model_type": "mistral", "hidden_act": "silu"},
    "Qwen2.5-7B": {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 3584, "intermediate_size": 18944,
                   "num_attention_heads": 28, "num_key_value_heads": 4, "num_hidden_layers": 28,
                   "vocab_size": 152064, "tie_word_embeddings": False, "model_type": "qwen2", "hidden_act": "silu"},
    "Qwen2.5-14B": {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 5120, "intermediate_size": 13824,
                    "num_attention_heads": 40, "num_key_value_heads": 8, "num_hidden_layers": 48,
                    "vocab_size": 152064, "tie_word_embeddings": False, "model_type": "qwen2", "hidden_act": "silu"},
    "Llama-3.1-70B": {"architectures": ["LlamaForCausalLM"], "hidden_size": 8192, "intermediate_size": 28672,
                      "num_attention_heads": 64, "num_key_value_heads": 8, "num_hidden_layers": 80,
                      "vocab_size": 128256, "tie_word_embeddings": False, "model_type": "llama", "hidden_act": "silu"},
    "Llama-2-70B": {"architectures": ["LlamaForCausalLM"], "hidden_size": 8192, "intermediate_size": 28672,
                    "num_attention_heads": 64, "num_key_value_heads": 8, "num_hidden_layers": 80, "vocab_size": 32000,
                    "tie_word_embeddings": False, "model_type": "llama", "hidden_act": "silu"},
}


def info(name: str):
    return info_from_config(CONFIGS[name], name)


def train_config(method="lora", quant="none", compute="bf16", batch=1, cutoff=1024, checkpointing=False, **extra):
    cfg = RunConfig()
    cfg.train.finetuning_type, cfg.model.quantization_bit, cfg.train.compute_type = method, quant, compute
    cfg.train.per_device_train_batch_size, cfg.data.cutoff_len = batch, cutoff
    cfg.train.gradient_accumulation_steps = 1
    args = dict(extra, **({"gradient_checkpointing": True} if checkpointing else {}))
    cfg.train.extra_args = json.dumps(args) if args else ""
    return cfg


# -- arithmetic ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, params", [("Qwen2.5-7B", 7.616e9), ("Qwen2.5-14B", 14.770e9), ("Llama-2-7B", 6.738e9),
                                          ("Mistral-7B", 7.242e9), ("Llama-3.1-70B", 70.554e9),
                                          ("Llama-2-70B", 68.977e9)])
def test_parameter_counts_from_config(name, params):
    """The models' own counts (their cards, safetensors index totals) from the shape alone."""
    assert info(name).params() == pytest.approx(params, rel=1e-3)


def test_demo_counts_match_torch_and_peft():
    """Total parameters of the demo model and peft's count of LoRA r=8 on all linear layers, built on the meta
    device from the demo's config (no weights read)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**DEMO_CONFIG))
    demo = info_from_config(DEMO_CONFIG)
    assert demo.params() == sum(p.numel() for p in model.parameters()) == 134_515_008
    peft_model = get_peft_model(model, LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert lora_trainable_params(demo, 8, "all") == trainable == 2_442_240
    assert lora_trainable_params(demo, 8, "q_proj,v_proj") == 30 * 8 * ((576 + 576) + (576 + 192))


def test_model_info_sources(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIGS["Qwen2.5-7B"]))
    local = model_info(str(folder))
    assert local.exact and local.params() == info("Qwen2.5-7B").params() and local.qkv_bias
    assert model_info("demo/SmolLM2-135M-Instruct").params() == 134_515_008
    assert model_info("nobody/no-such-model-anywhere") is None
    catalogue = pytest.importorskip("engine.core.catalogue")
    entry = next(m for m in catalogue.CATALOGUE if m.params_b >= 7 and m.ids.get("huggingface"))
    rough = model_info(entry.ids["huggingface"])
    if rough is not None and not rough.exact:  # not downloaded here: the catalogue's size, a rougher estimate
        assert rough.params() == pytest.approx(entry.params_b * 1e9, rel=0.1)
        assert "rough_model" in estimate_training(train_config(), rough).notes


def test_parts_follow_the_settings():
    qwen = info("Qwen2.5-7B")
    lora = estimate_training(train_config(), qwen)
    assert lora.weights == pytest.approx(qwen.params() * 2)  # bf16 frozen weights
    assert estimate_training(train_config(compute="fp32"), qwen).weights == pytest.approx(qwen.params() * 4)
    assert estimate_training(train_config(quant="4"), qwen).weights < estimate_training(
        train_config(quant="8"), qwen).weights < lora.weights
    # Gradient accumulation: no effect on the peak, and the estimate says so.
    cfg = train_config()
    cfg.train.gradient_accumulation_steps = 8
    accumulated = estimate_training(cfg, qwen)
    assert accumulated.total == lora.total and "accumulation_no_effect" in accumulated.notes
    assert "accumulation_no_effect" not in lora.notes
    # Activations grow with batch x cutoff; checkpointing cuts them.
    big = estimate_training(train_config(batch=4, cutoff=2048), qwen)
    assert big.activations == pytest.approx(lora.activations * 8, rel=0.01)
    assert estimate_training(train_config(batch=4, cutoff=2048, checkpointing=True), qwen).activations < \
        big.activations / 3
    # ZeRO-3 divides the full method's weights and states across devices; offload moves the states off.
    full = train_config(method="full")
    full.distributed.deepspeed = "3"
    four = estimate_training(full, qwen, 4)
    one = estimate_training(train_config(method="full"), qwen, 1)
    assert four.weights + four.trainable < (one.weights + one.trainable) / 3
    full.distributed.offload = True
    assert estimate_training(full, qwen, 4).trainable < four.trainable


def test_inference_holds_weights_and_kv_cache():
    qwen = info("Qwen2.5-7B")
    chat = estimate_inference(qwen, 4096, "cuda")
    assert chat.weights == pytest.approx(qwen.params() * 2)
    kv = 2 * 28 * 4 * 128 * 2 * 4096  # k and v, 28 layers, 4 kv heads x 128, bf16, 4096 tokens
    assert kv < chat.activations < kv + 0.5 * GB
    assert estimate_inference(qwen, 4096, "cpu").weights == pytest.approx(qwen.params() * 4)


def test_a_7b_run_too_big_for_24_gb_gets_changes_that_fit():
    gpu = DeviceMemory("GPU", 0, "RTX 4090", 24 * GB, 0.5 * GB)
    estimate = estimate_training(train_config(batch=4, cutoff=2048), info("Qwen2.5-7B"), 1, "cuda")
    verdict = fits(estimate, gpu)
    assert verdict.state == "too_big" and verdict.suggestions
    for s in verdict.suggestions:  # each one re-estimated, each one fits
        assert s.total <= 0.9 * gpu.total
    keys = [s.key for s in verdict.suggestions]
    order = ["qlora", "batch", "checkpointing", "zero3", "zero3_offload", "devices", "combined"]
    assert keys == sorted(keys, key=order.index)
    small = estimate_training(train_config(batch=1, cutoff=512, checkpointing=True), info("Qwen2.5-7B"), 1, "cuda")
    assert fits(small, gpu).state == "fits"


def test_run_devices_pick_the_selected_accelerators():
    devices = [DeviceMemory("GPU", 0, "A", 80 * GB, 0), DeviceMemory("GPU", 1, "B", 24 * GB, 0),
               DeviceMemory("CPU", 0, "RAM", 64 * GB, 8 * GB)]
    assert [d.name for d in run_devices("auto", [], devices)] == ["A"]
    assert [d.name for d in run_devices("cuda", [1], devices)] == ["B"]
    assert [d.name for d in run_devices("cpu", [0, 1], devices)] == ["RAM"]
    assert run_devices("cpu", [], devices)[0].capacity == 56 * GB


# -- published tables (README.md, "Memory estimate against published figures") ------------------------------
# Our setting for each: 1 GPU, batch 1, cutoff 1024, LoRA rank 8 on all linear layers, AdamW, bf16, and gradient
# checkpointing on (LLaMA-Factory's default; Unsloth checkpoints too). GB as the tables print them.
LF = "LLaMA-Factory"
UNSLOTH = "Unsloth"
ACCELERATE = "accelerate"
PUBLISHED = [
    # source, model, method label, config kwargs, published GB, asserted within 30%
    (LF, "Llama-2-7B", "LoRA 16-bit", {}, 16, True),
    (LF, "Qwen2.5-14B", "LoRA 16-bit", {}, 32, True),
    (LF, "Llama-3.1-70B", "LoRA 16-bit", {}, 160, True),
    (LF, "Llama-2-7B", "QLoRA 8-bit", {"quant": "8"}, 10, True),
    (LF, "Qwen2.5-14B", "QLoRA 8-bit", {"quant": "8"}, 20, True),
    (LF, "Llama-3.1-70B", "QLoRA 8-bit", {"quant": "8"}, 80, True),
    (LF, "Llama-2-7B", "QLoRA 4-bit", {"quant": "4"}, 6, True),
    (LF, "Qwen2.5-14B", "QLoRA 4-bit", {"quant": "4"}, 12, True),
    (LF, "Llama-3.1-70B", "QLoRA 4-bit", {"quant": "4"}, 48, True),
    (LF, "Llama-2-7B", "Full, bf16 mixed", {"method": "full"}, 120, True),
    (LF, "Qwen2.5-14B", "Full, bf16 mixed", {"method": "full"}, 240, True),
    (LF, "Llama-3.1-70B", "Full, bf16 mixed", {"method": "full"}, 1200, True),
    (LF, "Llama-2-7B", "Full, pure_bf16", {"method": "full", "compute": "pure_bf16"}, 60, True),
    (LF, "Qwen2.5-14B", "Full, pure_bf16", {"method": "full", "compute": "pure_bf16"}, 120, True),
    (LF, "Llama-3.1-70B", "Full, pure_bf16", {"method": "full", "compute": "pure_bf16"}, 600, True),
    (UNSLOTH, "Llama-2-7B", "LoRA 16-bit", {}, 19, False),
    (UNSLOTH, "Qwen2.5-14B", "LoRA 16-bit", {}, 33, False),
    (UNSLOTH, "Llama-3.1-70B", "LoRA 16-bit", {}, 164, False),
    (UNSLOTH, "Llama-2-7B", "QLoRA 4-bit", {"quant": "4"}, 5, False),
    (UNSLOTH, "Qwen2.5-14B", "QLoRA 4-bit", {"quant": "4"}, 8.5, False),
    (UNSLOTH, "Llama-3.1-70B", "QLoRA 4-bit", {"quant": "4"}, 41, False),
    # accelerate counts weights, gradients and Adam's two states in one dtype, nothing else: our same parts.
    (ACCELERATE, "Mistral-7B", "Full, fp32 (weights + gradients + Adam)", {"method": "full", "compute": "fp32"},
     109.96, True),
    (ACCELERATE, "Llama-2-70B", "Full, 16-bit (weights + gradients + Adam)", {"method": "full",
                                                                             "compute": "pure_bf16"}, 512.59, True),
]


def comparison_rows() -> list[tuple[str, float, bool]]:
    """(README table row, our / published, asserted) for every published figure."""
    rows = []
    for source, model, label, kwargs, published, asserted in PUBLISHED:
        e = estimate_training(train_config(checkpointing=True, **kwargs), info(model), 1, "cuda")
        ours = (e.weights + e.trainable) / GB if source == ACCELERATE else e.total / GB
        ratio = ours / published
        rows.append((f"| {model} | {label} | {source} | {published:g} GB | {ours:.1f} GB | {ratio:.2f} |", ratio,
                     asserted))
    return rows


def test_estimates_agree_with_published_tables_and_readme_says_so():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for row, ratio, asserted in comparison_rows():
        if asserted:
            assert 0.7 <= ratio <= 1.3, row
        assert row in readme, f"README.md lacks (or has another figure in) the row\n{row}"


# -- calibration on the CPU (slow: real training runs) -----------------------------------------------------------
def calibration_config(method: str, compute: str, batch: int) -> RunConfig:
    """The identity demo at cutoff 64: its samples are 53-64 tokens there, so the longest batch holds about batch x
    cutoff tokens, as the estimate assumes; 5 steps reach the peak (its longest batches and a checkpoint save)."""
    cfg = RunConfig()
    cfg.model.device = "cpu"
    cfg.data.datasets, cfg.data.cutoff_len = ["identity"], 64
    cfg.train.finetuning_type, cfg.train.compute_type = method, compute
    cfg.train.per_device_train_batch_size, cfg.train.gradient_accumulation_steps = batch, 1
    cfg.train.learning_rate, cfg.train.logging_steps, cfg.train.save_steps = 1e-4, 1, 100_000
    cfg.train.probe_questions = ""
    cfg.train.extra_args = json.dumps({"max_steps": 5})
    return cfg


CALIBRATION = [("lora", "fp32", 4), ("lora", "fp32", 16), ("lora", "bf16", 16), ("freeze", "bf16", 16),
               ("full", "fp32", 4)]


@pytest.mark.slow
@pytest.mark.parametrize("method, compute, batch", CALIBRATION, ids=[f"{m}-{c}-b{b}" for m, c, b in CALIBRATION])
def test_estimate_matches_measured_cpu_peak(tmp_path, method, compute, batch):
    """One real run per configuration in its own process, started with the environment Start gives it (tcmalloc):
    its peak resident memory above its baseline (the libraries imported, nothing loaded) against the estimate's
    total above its baseline."""
    from engine.core.devices import cpu_has_native_bf16
    from engine.jobs.launch import job_command

    if compute == "bf16" and not cpu_has_native_bf16():
        pytest.skip("bf16 training needs a CPU with native bf16")
    cfg = calibration_config(method, compute, batch)
    cfg.train.output_dir = str(tmp_path / "run")
    cfg.save(tmp_path / "run.yaml", "train")
    _, env = job_command(cfg, tmp_path / "run.yaml")
    script = ROOT / "tests" / "helpers" / "measure_peak.py"
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "run.yaml")],
                         cwd=ROOT, env=dict(os.environ, **env), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    above = measured["peak"] - measured["baseline"]
    estimate = estimate_training(cfg, model_info(cfg.model.model_name_or_path), 1, "cpu")
    print(f"{method} {compute} batch {batch}: measured {above / 2**20:.0f} MB above a baseline of "
          f"{measured['baseline'] / 2**20:.0f} MB, estimate {estimate.above_baseline / 2**20:.0f} MB")
    assert estimate.above_baseline == pytest.approx(above, rel=0.2)


def test_memory_saving_optimizers_shrink_the_trainable_part():
    """GaLore / APOLLO keep rank x n optimizer states for a projected m x n weight; BAdam holds gradients and states
    for one block at a time (a decoder layer, or a share of every weight)."""
    from engine.core.memory_estimate import model_info

    info = model_info("demo/SmolLM2-135M-Instruct")

    def trainable(setup: str, **fields) -> float:
        cfg = RunConfig()
        cfg.train.finetuning_type, cfg.data.datasets = "full", ["identity"]
        if setup:
            section = getattr(cfg, setup)
            setattr(section, f"use_{setup}", True)
            for key, value in fields.items():
                setattr(section, key, value)
        return estimate_training(cfg, info, device_type="cuda").trainable

    full = trainable("")
    assert full == info.params() * 4.0 * 3  # fp32 gradients and two Adam states
    galore = trainable("galore")
    # gradients stay whole; the projected linear layers' states shrink to rank 16 of their shorter side
    linear = info.num_layers * sum(m * n * k for m, n, k in info.linear_shapes().values())
    low_rank = info.num_layers * sum(16 * max(m, n) * k for m, n, k in info.linear_shapes().values())
    assert galore == pytest.approx(full - linear * 8.0 + low_rank * 8.0)
    assert trainable("apollo") == galore and trainable("galore", rank=64) > galore
    assert trainable("galore", target="mlp") > galore  # attention keeps its full states
    assert trainable("badam") == info.layer_params() * 4.0 * 3
    assert trainable("badam", mode="ratio", update_ratio=0.1) == pytest.approx(full * 0.1)
