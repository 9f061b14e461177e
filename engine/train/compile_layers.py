"""``{"torch_compile": true}`` for TuneBoard's runs: the decoder layers compiled in place, one by one.

transformers hands ``torch_compile`` to accelerate, which wraps the whole model in ``torch.compile``. TuneBoard's
answer-only loss (engine/train/fast_loss.py) calls the model's body and output layer itself, past that wrapper, so
the option compiled nothing and only added the wrapper's cost. Compiling each decoder layer in place
(``Module.compile``, accelerate's and PyTorch's "regional compilation") holds whoever calls the layers: the fast
loss, the standard one, evaluation, DPO's reference pass. The layers share one code object, so the first layer's
graphs serve the others; inductor keeps its compiled artefacts on disk (``TORCHINDUCTOR_CACHE_DIR``), so a later run
of the same shapes skips most of the compilation.
"""

from __future__ import annotations

from engine.modeling.expansion import layer_list

# TrainingArguments' compile settings: taken out of the Trainer's arguments, applied here instead.
COMPILE_ARGUMENTS = ("torch_compile", "torch_compile_backend", "torch_compile_mode")


def take_compile_arguments(args: dict) -> dict:
    """Remove the compile settings from the Trainer's ``args`` (accelerate would wrap the model) and return them
    as ``Module.compile`` keywords; empty where compilation was not asked for."""
    asked = {key: args.pop(key) for key in COMPILE_ARGUMENTS if key in args}
    if not (asked.get("torch_compile") or asked.get("torch_compile_backend") or asked.get("torch_compile_mode")):
        return {}
    return {"backend": asked.get("torch_compile_backend") or "inductor", "mode": asked.get("torch_compile_mode")}


def compile_layers(model, settings: dict, log=print) -> int:
    """Compile ``model``'s decoder layers in place with ``settings`` (from :func:`take_compile_arguments`); the
    number compiled (0 where the model's layers are not found: it then runs uncompiled, and says so)."""
    try:
        layers = layer_list(model)
    except ValueError:
        log("torch_compile: the decoder layers of this model were not found; training runs uncompiled")
        return 0
    for layer in layers:
        layer.compile(**settings)
    log(f"torch_compile: {len(layers)} decoder layers compiled in place ({settings['backend']}"
        + (f", mode {settings['mode']}" if settings.get("mode") else "")
        + "); the first steps of each new row length take longer while they compile")
    return len(layers)
