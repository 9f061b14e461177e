"""GaLore, APOLLO, BAdam and the Trackio / SwanLab trackers as settings: what the config refuses (naming the field),
the optional-package check a job makes before loading the model, and the pins it names."""

from __future__ import annotations

import re

import pytest

from engine.core.config import ConfigError, RunConfig
from engine.core.optional_packages import OPTIMIZER_PACKAGES, TRACKER_PACKAGES, Package, check_packages, require
from tests.helpers.runs import ROOT


def _config(optimizer: str | None = "galore", method: str = "full", **train) -> RunConfig:
    cfg = RunConfig()
    cfg.data.datasets = ["identity"]
    cfg.train.finetuning_type = method
    for key, value in train.items():
        setattr(cfg.train, key, value)
    if optimizer:
        setattr(getattr(cfg, optimizer), f"use_{optimizer}", True)
    return cfg


def _refusal(cfg: RunConfig) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        cfg.validate()
    return info.value


@pytest.mark.parametrize("optimizer", ["galore", "apollo", "badam"])
def test_each_optimizer_is_accepted_for_full_training_and_refused_with_lora(optimizer):
    _config(optimizer).validate()
    error = _refusal(_config(optimizer, "lora"))
    assert (error.field_name, error.key) == (f"{optimizer}.use_{optimizer}", "memory_optimizer_lora")


def test_galore_and_apollo_train_frozen_models_too_but_badam_needs_the_full_method():
    _config("galore", "freeze").validate()
    _config("apollo", "freeze").validate()
    error = _refusal(_config("badam", "freeze"))
    assert (error.field_name, error.key) == ("badam.use_badam", "badam_needs_full")


def test_only_one_memory_optimizer_at_a_time():
    cfg = _config("galore")
    cfg.badam.use_badam = True
    error = _refusal(cfg)
    assert error.field_name == "badam.use_badam" and error.key == "one_memory_optimizer"
    assert "galore.use_galore" in str(error)


def test_low_rank_optimizers_need_a_variant_of_the_chosen_optimizer_and_no_deepspeed():
    assert _refusal(_config("apollo", optim="adafactor")).field_name == "train.optim"  # APOLLO is AdamW only
    _config("galore", optim="adafactor").validate()
    assert _refusal(_config("galore", optim="sgd")).key == "low_rank_optim"
    cfg = _config("galore")
    cfg.distributed.deepspeed = "2"
    assert (_refusal(cfg).field_name, _refusal(cfg).key) == ("galore.use_galore", "memory_optimizer_deepspeed")
    cfg = _config("apollo", extra_args='{"optim_args": "rank=4"}')  # the group sets them
    assert _refusal(cfg).field_name == "train.extra_args.optim_args"


def test_badam_launch_rules():
    cfg = _config("badam")
    cfg.badam.mode, cfg.distributed.nproc_per_node = "ratio", 2
    assert _refusal(cfg).field_name == "badam.mode"
    cfg.badam.mode = "layer"
    assert _refusal(cfg).key == "badam_layer_distributed"
    cfg.distributed.deepspeed = "3"
    cfg.validate()  # layer-wise under ZeRO-3, as the badam package supports
    cfg.distributed.deepspeed = "2"
    assert _refusal(cfg).key == "badam_deepspeed"


@pytest.mark.parametrize("field, value", [("galore.rank", 0), ("apollo.update_interval", 0), ("galore.scale", -1.0),
                                          ("badam.update_ratio", 0.0), ("badam.mode", "block"),
                                          ("badam.switch_mode", "sideways"), ("train.report_to", "comet")])
def test_bad_values_name_their_field(field, value):
    section, name = field.split(".")
    raw = _config(None).to_dict()
    raw[section][name] = value
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict(raw)
    assert info.value.field_name == field


def test_settings_survive_run_yaml():
    cfg = _config("badam", report_to="swanlab")
    cfg.badam.mode, cfg.badam.switch_mode, cfg.badam.switch_interval, cfg.badam.update_ratio = "ratio", "random", 7, 0.2
    cfg.galore.rank, cfg.apollo.scale, cfg.apollo.target = 64, 8.0, "mlp,self_attn"
    text = cfg.to_yaml("train")
    assert "badam:\n  use_badam: true\n  mode: ratio" in text and "report_to: swanlab" in text
    assert RunConfig.from_yaml(text).to_dict() == cfg.to_dict()


def test_a_missing_package_names_the_field_the_package_and_the_pip_command():
    missing = Package("GaLore", ("tuneboard_no_such_module",), "galore-torch==1.0")
    with pytest.raises(ConfigError) as info:
        require("galore.use_galore", missing)
    assert info.value.key == "needs_package"
    assert str(info.value) == ("galore.use_galore: GaLore needs the galore-torch package, not installed here: "
                               "pip install galore-torch==1.0")


def test_the_installed_extras_pass_the_check():
    """requirements-extras.txt is installed with the test tools (scripts/install.sh --test)."""
    for optimizer in OPTIMIZER_PACKAGES:
        check_packages(_config(optimizer))
    for tracker in ("trackio", "swanlab"):
        check_packages(_config(None, report_to=tracker))


def test_the_named_pins_are_those_requirements_extras_installs():
    text = (ROOT / "requirements-extras.txt").read_text(encoding="utf-8")
    pinned = set(re.findall(r"^(?:#no-deps )?([\w-]+==[\w.]+)$", text, re.M))
    named = {p.requirement for p in [*OPTIMIZER_PACKAGES.values(), *TRACKER_PACKAGES.values()] if "==" in p.requirement}
    assert pinned == named
