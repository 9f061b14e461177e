"""``{"torch_compile": true}`` for TuneBoard's runs: the decoder layers compiled in place, one by one.

transformers hands ``torch_compile`` to accelerate, which wraps the whole model in ``torch.compile``. TuneBoard's
answer-only loss (engine/train/fast_loss.py) calls the model's body and output layer itself, past that wrapper, so
the option compiled nothing and only added the wrapper's cost. Compiling each decoder layer in place
(``Module.compile``, accelerate's and PyTorch's "regional compilation") holds whoever calls the layers: the fast
loss, the standard one, evaluation, DPO's reference pass. The layers share one code object, so the first layer's
graphs serve the others; inductor keeps its compiled artefacts on disk (``TORCHINDUCTOR_CACHE_DIR``), so a later run
skips most of the compilation.

The layers are compiled with symbolic sizes from the first step (``dynamic=True``): a packed row's length changes
with every batch, and with PyTorch's default (a size becomes symbolic once it has changed) the 75 steps of the
benchmark run compiled again for one new length after another and never earned their compilation back (bench/suite.py,
bf16_compile: 262 tokens/s cold against 475 uncompiled, 7 December). With symbolic sizes one set of graphs serves every
length, on disk too, so the cache a run leaves serves the next run whatever its data.
"""

from __future__ import annotations

from engine.core.config import ConfigError
from engine.modeling.expansion import layer_list

# TrainingArguments' compile settings: taken out of the Trainer's arguments, applied here instead.
COMPILE_ARGUMENTS = ("torch_compile", "torch_compile_backend", "torch_compile_mode")


def take_compile_arguments(args: dict) -> dict:
    """Remove the compile settings from the Trainer's ``args`` (accelerate would wrap the model) and return them
    as ``Module.compile`` keywords; empty where compilation was not asked for."""
    asked = {key: args.pop(key) for key in COMPILE_ARGUMENTS if key in args}
    if not any(asked.values()):  # transformers reads a backend or a mode as asking for compilation too
        return {}
    return {"backend": asked.get("torch_compile_backend") or "inductor", "mode": asked.get("torch_compile_mode")}


def check_compiler(settings: dict) -> None:
    """Raise a ConfigError where inductor (``settings``' backend) finds no C++ compiler: it writes C++ and builds it
    at the first step, so without one the run would load the model and then fail there with inductor's own
    words."""
    if settings.get("backend") != "inductor":
        return
    import torch._inductor.config as inductor_config  # noqa: PLC0415 - only runs that compile need it
    from torch._inductor.cpp_builder import get_cpp_compiler  # noqa: PLC0415

    try:
        get_cpp_compiler()
    except Exception:  # noqa: BLE001 - inductor's InvalidCxxCompiler, or a failed probe of one: either way, none
        compilers = inductor_config.cpp.cxx if isinstance(inductor_config.cpp.cxx, (list, tuple)) else [
            inductor_config.cpp.cxx]
        raise ConfigError("train.extra_args.torch_compile", "compile_needs_compiler",
                          compiler=", ".join(str(c) for c in compilers if c)) from None


def compile_layers(model, settings: dict, log=print) -> int:
    """Compile ``model``'s decoder layers in place with ``settings`` (from :func:`take_compile_arguments`); the
    number compiled (0 where the model's layers are not found: it then runs uncompiled, and says so)."""
    try:
        layers = layer_list(model)
    except ValueError:
        log("torch_compile: the decoder layers of this model were not found; training runs uncompiled")
        return 0
    for layer in layers:
        layer.compile(**settings, dynamic=True)
    log(f"torch_compile: {len(layers)} decoder layers compiled in place ({settings['backend']}"
        + (f", mode {settings['mode']}" if settings.get("mode") else "")
        + "); the first step takes longer while they compile, once: every row length shares the graphs")
    return len(layers)


def uncompiled():
    """A context in which layers compiled for training run their plain code: generation inside a run (probe answers,
    GRPO's and PPO's completions) would otherwise compile a graph for each layer's KV-cache state, up to Dynamo's
    recompile limit, and warn about it in the run's log."""
    import torch  # noqa: PLC0415 - the web process imports this module and must start fast

    return torch.compiler.set_stance("force_eager")


def compile_report() -> str:
    """What the compiler did in this process, for the log at the end of a run: graphs and their compile time (a
    count that grows with the steps would mean recompiling)."""
    from torch._dynamo.utils import compilation_time_metrics, counters  # noqa: PLC0415 - only runs that compile

    seconds = sum(compilation_time_metrics.get("_compile.compile_inner", ()))  # tracing and inductor, cache hits too
    return f"torch_compile: {counters['stats']['unique_graphs']} graphs compiled in {seconds:.1f} s"
