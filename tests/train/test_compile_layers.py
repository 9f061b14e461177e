"""``{"torch_compile": true}`` compiles the decoder layers (engine/train/compile_layers.py): a compiled run trains
through inductor's code, and its loss curve is the uncompiled run's."""

from __future__ import annotations

import pytest

from engine.core.rundir import FINISHED
from engine.train.compile_layers import take_compile_arguments
from tests.helpers.runs import pin_cpu_threads, run_cold_job, tiny_train_config


def test_the_compile_settings_leave_the_trainer_s_arguments():
    args = {"learning_rate": 1e-4, "torch_compile": True, "torch_compile_mode": "max-autotune"}
    assert take_compile_arguments(args) == {"backend": "inductor", "mode": "max-autotune"}
    assert args == {"learning_rate": 1e-4}  # accelerate would wrap the model, which the answer-only loss bypasses
    args = {"torch_compile": False}
    assert take_compile_arguments(args) == {} and args == {}


def _losses(run) -> list[float]:
    return [e["loss"] for e in run.read_events() if "loss" in e and not e.get("initial")]


@pytest.mark.slow
def test_a_compiled_run_gives_the_uncompiled_loss_curve(tmp_path, demo_model_dir, monkeypatch):
    pin_cpu_threads(monkeypatch)  # both runs on one thread count: fp32 sums in the same order where not fused
    cache = tmp_path / "inductor"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(cache))  # what inductor compiled lands here
    runs = {}
    for name, extra in (("plain", ""), ("compiled", '{"torch_compile": true}')):
        cfg = tiny_train_config(compute_type="fp32", logging_steps=1, extra_args=extra, probe_questions="")
        cfg.data.max_samples, cfg.data.cutoff_len = 12, 128  # three steps of four samples
        runs[name], status = run_cold_job(cfg, tmp_path / name, timeout=600)
        assert status["state"] == FINISHED, runs[name].log_tail(30)
    log = runs["compiled"].log_path.read_text()
    assert "torch_compile: 30 decoder layers compiled in place (inductor)" in log
    assert "lean activations off under torch_compile" in log
    assert any(cache.rglob("*.py")), "inductor wrote no compiled code"
    plain, compiled = _losses(runs["plain"]), _losses(runs["compiled"])
    assert len(plain) == len(compiled) == 3
    # Inductor fuses the norms and activations (other fp32 rounding) and lean activations are off: the same
    # curve to a few parts in a million, steps apart by far more.
    assert compiled == pytest.approx(plain, rel=1e-4)
    assert max(plain) - min(plain) > 1e-2


def test_no_c_compiler_is_named_before_the_model_loads(monkeypatch):
    import torch._inductor.config as inductor_config

    from engine.core.config import ConfigError
    from engine.train.compile_layers import check_compiler

    check_compiler({"backend": "inductor", "mode": None})  # this machine has g++
    monkeypatch.setattr(inductor_config.cpp, "cxx", (None, "/nonexistent/g++"))
    with pytest.raises(ConfigError) as err:
        check_compiler({"backend": "inductor", "mode": None})
    assert err.value.key == "compile_needs_compiler" and err.value.field_name == "train.extra_args.torch_compile"
    assert "/nonexistent/g++" in str(err.value) and "apt install g++" in str(err.value)
    check_compiler({"backend": "eager", "mode": None})  # backends that build nothing need no compiler


@pytest.mark.slow
def test_compiled_layers_take_every_row_length_without_compiling_again(tmp_path, demo_model_dir, monkeypatch):
    """Packed rows change length with every batch: one set of graphs serves them all (symbolic sizes), with the
    uncompiled layers' loss and gradients."""
    import torch
    from torch._dynamo.utils import counters

    from engine.modeling.finetuning import apply_finetuning
    from engine.modeling.models import load_model
    from engine.train.compile_layers import compile_layers, compile_report
    from engine.train.segment_attention import use_segment_attention

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    cfg = tiny_train_config(compute_type="fp32")
    models = []
    for _ in range(2):
        torch.manual_seed(0)  # the same LoRA initialisation in both
        model = apply_finetuning(load_model(str(demo_model_dir), dtype=torch.float32), cfg, log=lambda *_: None)
        use_segment_attention(model, log=lambda *_: None)
        models.append(model.train())
    plain, compiled = models
    torch._dynamo.reset()
    counters.clear()
    try:
        assert compile_layers(compiled, {"backend": "inductor", "mode": None}, log=lambda *_: None) == 30
        graphs = None
        for length in (40, 57, 83):  # a row of two samples, as packing makes them
            ids = torch.randint(0, 1000, (1, length), generator=torch.Generator().manual_seed(length))
            first = length // 3
            positions = torch.cat([torch.arange(first), torch.arange(length - first)])[None]
            results = []
            for model in (plain, compiled):
                model.zero_grad()
                loss = model(input_ids=ids, position_ids=positions, labels=ids).loss
                loss.backward()
                grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
                results.append((loss.item(), grads))
            (plain_loss, plain_grads), (compiled_loss, compiled_grads) = results
            assert compiled_loss == pytest.approx(plain_loss, rel=1e-5)
            for a, b in zip(plain_grads, compiled_grads, strict=True):
                torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5)
            if graphs is None:
                graphs = counters["stats"]["unique_graphs"]
                assert graphs > 0
            assert counters["stats"]["unique_graphs"] == graphs, f"row length {length} compiled anew"
        assert compile_report().startswith(f"torch_compile: {graphs} graphs compiled in ")
    finally:
        torch._dynamo.reset()


@pytest.mark.slow
def test_generation_inside_a_compiled_run_compiles_nothing(tmp_path, demo_model_dir, monkeypatch):
    """GRPO's completions and the probe answers go through the compiled layers with a KV cache: they run the plain
    code (a graph for each layer's cache state would hit Dynamo's recompile limit and warn in the run's log)."""
    import re

    from tests.helpers.runs import short_train_config

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    cfg = short_train_config(4, stage="grpo", probe_questions="What is 2 + 3?", probe_max_new_tokens=3,
                             extra_args='{"torch_compile": true}')
    cfg.data.datasets = ["arithmetic_answer"]
    cfg.grpo.num_generations, cfg.grpo.max_completion_length = 2, 6
    cfg.validate()
    run, status = run_cold_job(cfg, tmp_path / "grpo", timeout=600)
    assert status["state"] == FINISHED, run.log_tail(30)
    log = run.log_path.read_text()
    assert "recompil" not in log.lower(), run.log_tail(30)  # Dynamo's recompile-limit warning among them
    graphs = int(re.search(r"torch_compile: (\d+) graphs compiled in", log).group(1))
    assert 0 < graphs < 8  # the training pass's graphs only
    assert [e["step"] for e in run.read_events() if "probes" in e] == [0, 2]  # before training and at its end
