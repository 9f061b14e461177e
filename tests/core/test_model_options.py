"""The model-load and data options without torch: RoPE scaling parameters as LlamaBoard computes them, the
booster's refusals, and the rules that tie the new options to the others (each error names its field)."""

from __future__ import annotations

import importlib.util

import pytest

from engine.core.config import ConfigError, RunConfig
from engine.core.model_options import check_booster, rope_plan

SMOLLM2 = {"rope_theta": 100000.0, "rope_type": "default"}  # the demo model's rope_parameters, 8192 positions


def test_training_scales_by_the_cutoff_over_the_trained_length():
    plan = rope_plan("linear", SMOLLM2, 8192, 20000)
    assert plan.parameters == {"rope_type": "linear", "factor": 3.0, "rope_theta": 100000.0}  # ceil(20000 / 8192)
    assert plan.max_positions == 24576 and "8192 -> 24576" in plan.log_line()
    # a cutoff within the trained length has nothing to stretch (LlamaBoard: "Disabling rope scaling")
    within = rope_plan("linear", SMOLLM2, 8192, 1024)
    assert within.parameters is None and "not scaled" in within.reason


def test_inference_scales_by_two_and_each_type_gets_its_keys():
    assert rope_plan("dynamic", SMOLLM2, 8192, None).parameters == {
        "rope_type": "dynamic", "factor": 2.0, "rope_theta": 100000.0, "original_max_position_embeddings": 8192}
    assert rope_plan("yarn", SMOLLM2, 8192, None).parameters["original_max_position_embeddings"] == 8192
    llama3 = rope_plan("llama3", SMOLLM2, 8192, None).parameters
    assert (llama3["low_freq_factor"], llama3["high_freq_factor"], llama3["factor"]) == (1.0, 4.0, 2.0)
    assert rope_plan("none", SMOLLM2, 8192, None).parameters is None


def test_a_model_already_scaled_counts_from_its_original_length():
    scaled = {"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192, "rope_theta": 5e5}
    plan = rope_plan("linear", scaled, 131072, 20000)
    assert plan.parameters["factor"] == 3.0 and plan.max_positions == 24576
    per_layer = {"full_attention": {"rope_type": "default"}, "sliding_attention": {"rope_type": "default"}}
    assert rope_plan("linear", per_layer, 8192, None).parameters is None


def test_cuda_only_boosters_are_refused_elsewhere_with_what_they_need():
    check_booster("auto", "cpu")
    check_booster("none", "mps")
    for device in ("cpu", "mps", "npu"):
        with pytest.raises(ConfigError) as err:
            check_booster("flashattn2", device)
        assert err.value.field_name == "model.booster" and err.value.key == "booster_needs_cuda"
        assert f"flashattn2 needs a CUDA GPU; this run is on {device}" in str(err.value)
    if importlib.util.find_spec("liger_kernel") is None:
        with pytest.raises(ConfigError) as err:
            check_booster("liger_kernel", "cuda")
        assert err.value.key == "booster_needs_package" and "pip install liger-kernel" in str(err.value)


@pytest.mark.parametrize("change, field, key", [
    ({"freeze.use_llama_pro": True}, "freeze.use_llama_pro", "llama_pro_needs_freeze"),
    ({"freeze.use_llama_pro": True, "train.finetuning_type": "freeze", "freeze.trainable_layers": -2},
     "freeze.trainable_layers", "llama_pro_layers"),
    ({"freeze.use_llama_pro": True, "train.finetuning_type": "freeze", "distributed.deepspeed": "3"},
     "distributed.deepspeed", "llama_pro_zero3"),
    ({"train.shift_attn": True}, "train.shift_attn", "shift_attn_packing"),
    ({"train.shift_attn": True, "data.packing": False, "model.booster": "flashattn2"}, "train.shift_attn",
     "shift_attn_booster"),
    ({"model.booster": "liger_kernel", "model.device": "cpu"}, "model.booster", "booster_needs_cuda"),
    ({"model.rope_scaling": "ntk"}, "model.rope_scaling", "not_a_choice"),
    ({"model.booster": "unsloth"}, "model.booster", "not_a_choice"),
])
def test_the_rules_name_the_field(change, field, key):
    raw = {"data": {"datasets": ["identity"]}}
    for dotted, value in change.items():
        section, name = dotted.split(".")
        raw.setdefault(section, {})[name] = value
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(raw)
    assert (err.value.field_name, err.value.key) == (field, key)


def test_the_options_round_trip_through_run_yaml():
    cfg = RunConfig()
    cfg.data.datasets = ["identity"]
    cfg.model.rope_scaling, cfg.model.booster = "yarn", "none"
    cfg.data.packing, cfg.data.neat_packing = False, False
    cfg.train.resize_vocab, cfg.train.shift_attn = True, True
    cfg.train.finetuning_type, cfg.freeze.use_llama_pro = "freeze", True
    text = cfg.to_yaml("train")
    assert "rope_scaling: yarn" in text and "booster: none" in text and "use_llama_pro: true" in text
    assert RunConfig.from_yaml(text).to_dict() == cfg.to_dict()
    assert "rope_scaling: yarn" in cfg.to_yaml("eval")  # evaluation loads the model the same way
