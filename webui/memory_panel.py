"""Will it fit? The memory estimate beside the Train tab's form and the Chat tab's Load model.

It follows the form as it changes: each change re-reads nothing but the model's config.json (cached per path by
engine.core.memory_estimate) and the hardware reading the hardware panel shares, then does arithmetic.
"""

from __future__ import annotations

import html

import gradio as gr

from engine.core.checkpointing_choice import TURN_OFF, choose_checkpointing
from engine.core.config import ConfigError, RunConfig
from engine.core.memory_estimate import GB, MemoryEstimate, estimate_inference, estimate_training, model_info
from engine.core.memory_fit import (
    DeviceMemory,
    Verdict,
    _checkpointing,
    device_memory,
    device_type_of,
    fits,
    run_devices,
)
from webui.form import FieldControl, config_from_values
from webui.hardware_panel import reading
from webui.language import LanguageSwitch
from webui.locales import DEFAULT_LANG, t
from webui.run_monitor import bar_html

# The form fields the training estimate reads (the top bar's model fields come first).
TRAIN_FIELDS = ("train.stage", "train.compute_type", "train.per_device_train_batch_size",
                "train.gradient_accumulation_steps", "train.optim", "train.extra_args", "data.cutoff_len",
                "data.train_on_prompt", "lora.rank", "lora.target", "lora.additional_target", "lora.dropout",
                "lora.use_dora", "freeze.trainable_layers", "freeze.trainable_modules", "freeze.extra_modules",
                "distributed.devices", "distributed.nproc_per_node", "distributed.nnodes", "distributed.deepspeed",
                "distributed.offload")
CHAT_CONTEXT = 4096  # tokens of conversation the chat estimate holds a key/value cache for
HARDWARE_MAX_AGE_S = 10.0


def _gb(n_bytes: float) -> str:
    """GB as the hardware panel shows them; below 1 GB in MB, so a LoRA adapter's few MB do not read 0.0 GB."""
    return f"{n_bytes / GB:.1f} GB" if n_bytes >= GB else f"{n_bytes / 2 ** 20:.0f} MB"


def _device_name(lang: str, device: DeviceMemory) -> str:
    if device.kind == "CPU":
        return t(lang, "mem_cpu_device")
    return f"{device.kind} {device.index} · {device.name}"


def _parts(lang: str, e: MemoryEstimate, key: str) -> str:
    return t(lang, key, weights=_gb(e.weights), trainable=_gb(e.trainable), activations=_gb(e.activations),
             overhead=_gb(e.overhead), tokens=f"{e.tokens:,}")


# What the user types for a change made in Extra arguments.
_EXAMPLES = {"checkpointing": {"example": '{"gradient_checkpointing": true}'}}


def _change(lang: str, key: str, params: dict) -> str:
    return t(lang, f"mem_change_{key}", **params, **_EXAMPLES.get(key, {}))


def _suggestions(lang: str, verdict: Verdict) -> str:
    items = []
    for s in verdict.suggestions:
        if s.key == "combined":
            changes = t(lang, "list_sep").join(_change(lang, step.key, step.params) for step in s.params["steps"])
            items.append(t(lang, "mem_fix_combined", changes=changes, total=_gb(s.total)))
        else:
            items.append(t(lang, "mem_fix", change=_change(lang, s.key, s.params), total=_gb(s.total)))
    if not items:
        return f'<p class="tb-hw-note">{html.escape(t(lang, "mem_no_fix"))}</p>'
    rows = "".join(f"<li>{html.escape(item)}</li>" for item in items)
    return f'<p class="tb-hw-note">{html.escape(t(lang, "mem_fix_intro"))}</p><ul>{rows}</ul>'


def estimate_html(lang: str, estimate: MemoryEstimate, device: DeviceMemory) -> str:
    """The total against the device's memory (a bar), the parts, the verdict, and what would make it fit."""
    verdict = fits(estimate, device)
    name = _device_name(lang, device)
    pct = 100.0 * verdict.need / max(verdict.have, 1.0)
    head_key = "mem_train_head" if estimate.kind == "training" else "mem_chat_head"
    head = t(lang, head_key, total=_gb(estimate.total), devices=estimate.devices)
    bar = bar_html(pct, t(lang, "mem_of_device", total=_gb(verdict.need), have=_gb(verdict.have), device=name),
                   t(lang, "mem_title"))
    parts_key = "mem_train_parts" if estimate.kind == "training" else "mem_chat_parts"
    lines = [_parts(lang, estimate, parts_key)]
    if estimate.kind == "training":
        lines.append(t(lang, "mem_assumed", tokens=f"{estimate.tokens:,}", params=f"{estimate.total_params / 1e9:.2f}B",
                       trained=f"{estimate.trainable_params:,}"))
    lines += [t(lang, f"mem_note_{note}") for note in estimate.notes]
    notes = "".join(f'<p class="tb-hw-note">{html.escape(line)}</p>' for line in lines)
    state = t(lang, f"mem_{verdict.state}", pct=f"{pct:.0f}", need=_gb(verdict.need), have=_gb(verdict.have),
              device=name)
    verdict_html = f"<p><strong>{html.escape(state)}</strong></p>" if verdict.state != "fits" else \
        f'<p class="tb-hw-note">{html.escape(state)}</p>'
    fix = _suggestions(lang, verdict) if verdict.state == "too_big" and estimate.kind == "training" else ""
    return f'<div class="tb-hw" role="status"><p>{html.escape(head)}</p>{bar}{verdict_html}{fix}{notes}</div>'


def _message(lang: str, key: str, **params) -> str:
    return f'<div class="tb-hw"><p class="tb-hw-note">{html.escape(t(lang, key, **params))}</p></div>'


def training_estimate_html(lang: str, cfg: RunConfig, devices: list[DeviceMemory]) -> str:
    info = model_info(cfg.model.model_name_or_path, cfg.model.hub)
    if info is None:
        return _message(lang, "mem_unknown_model", model=cfg.model.model_name_or_path)
    used = run_devices(cfg.model.device, cfg.device_indices(), devices)
    smallest = min(used, key=lambda d: d.capacity)
    device_type = device_type_of(smallest.kind)
    auto = choose_checkpointing(cfg, device_type, devices, info)
    if not (auto.enabled and auto.reason in ("tight", "too_big")):
        return estimate_html(lang, estimate_training(cfg, info, None, device_type), smallest)
    # The job turns gradient checkpointing on by itself here: show the run it will be, and say so.
    shown = estimate_html(lang, estimate_training(_checkpointing(cfg), info, None, device_type), smallest)
    return shown + _message(lang, "mem_ckpt_auto", need=_gb(auto.need), have=_gb(auto.have), off=TURN_OFF)


def chat_estimate_html(lang: str, model_path: str, hub: str, device_choice: str, devices: list[DeviceMemory]) -> str:
    info = model_info(model_path, hub)
    if info is None:
        return _message(lang, "mem_unknown_model", model=model_path)
    device = run_devices(device_choice, [], devices)[0]
    return estimate_html(lang, estimate_inference(info, CHAT_CONTEXT, device_type_of(device.kind)), device)


def _hardware() -> list[DeviceMemory]:
    return device_memory(reading(HARDWARE_MAX_AGE_S))


def build_train_memory(language: LanguageSwitch, controls: list[FieldControl], initial: RunConfig) -> gr.HTML:
    """The Train tab's estimate, following ``controls`` (the top bar's model fields and TRAIN_FIELDS); on page
    load it shows ``initial`` (the form's first values) and the machine's devices then."""
    view = gr.HTML(lambda: training_estimate_html(DEFAULT_LANG, initial, _hardware()), elem_id="train-memory")
    used = [c for c in controls if c.key.startswith("model.") or c.key in TRAIN_FIELDS]
    base = RunConfig()
    base.data.datasets = ["-"]  # the estimate needs no dataset: the form's choice is checked at Start

    def refresh(lang_, *values):
        try:
            cfg = config_from_values(used, values, base)
        except (ConfigError, ValueError):
            return _message(lang_, "mem_invalid")
        return training_estimate_html(lang_, cfg, _hardware())

    inputs = [language.dropdown] + [c.component for c in used]
    gr.on([c.component.change for c in used], refresh, inputs, view, trigger_mode="always_last",
          show_progress="hidden", queue=False)
    language.on(refresh, inputs, view)
    return view


def build_chat_memory(language: LanguageSwitch, model_path, hub, device, status) -> gr.HTML:
    """The estimate of loading the top bar's model for chat, under Load model; redrawn when ``status`` (Chat's status
    line) changes too: a hub model just downloaded is then sized from its own config.json."""
    view = gr.HTML(lambda: chat_estimate_html(DEFAULT_LANG, model_path.value or "", hub.value or "auto",
                                              device.value or "auto", _hardware()), elem_id="chat-memory")

    def refresh(lang_, path, hub_, choice):
        return chat_estimate_html(lang_, path or "", hub_ or "auto", choice or "auto", _hardware())

    inputs = [language.dropdown, model_path, hub, device]
    gr.on([model_path.change, hub.change, device.change, status.change], refresh, inputs, view,
          trigger_mode="always_last", show_progress="hidden", queue=False)
    language.on(refresh, inputs, view)
    return view

