"""Does an estimate fit the device it will run on, and if not, which changes to the form would make it fit.

Devices are read as the hardware panel reads them (nvidia-smi / npu-smi through engine.core.hardware, psutil for the
CPU's memory), so the web process needs no torch. Each suggestion is the form with one change, estimated again.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

import psutil

from engine.core.config import DEEPSPEED_ZERO3
from engine.core.hardware import HardwareUse, device_use
from engine.core.memory_estimate import MemoryEstimate, estimate_training

TIGHT_SHARE = 0.9  # above this share of the device's memory the run is "tight": other processes or a longer batch
#                    than assumed may tip it over


@dataclass(frozen=True)
class DeviceMemory:
    kind: str  # "GPU", "NPU" or "CPU"
    index: int
    name: str
    total: float  # bytes
    used: float

    @property
    def capacity(self) -> float:
        """What a new run may take: an accelerator's whole memory (the device queue runs one job at a time),
        the CPU's memory not in use by other processes."""
        return self.total - self.used if self.kind == "CPU" else self.total


def device_memory(use: HardwareUse | None = None) -> list[DeviceMemory]:
    """Every GPU and NPU, then the CPU's memory: from ``use`` (a reading the hardware panel shares) or read now."""
    if use is None:
        ram = psutil.virtual_memory()
        devices, ram_total, ram_used = device_use(), ram.total, ram.total - ram.available
    else:
        devices, ram_total, ram_used = use.devices, use.ram_total, use.ram_used
    found = [DeviceMemory(d.kind, d.index, d.name, d.memory_total_mb * 2 ** 20, d.memory_used_mb * 2 ** 20)
             for d in devices]
    return found + [DeviceMemory("CPU", 0, "RAM", float(ram_total), float(ram_used))]


def device_type_of(kind: str) -> str:
    return {"GPU": "cuda", "NPU": "npu"}.get(kind, "cpu")


def run_devices(choice: str, indices: list[int], devices: list[DeviceMemory]) -> list[DeviceMemory]:
    """The devices a run with model.device ``choice`` and distributed.devices ``indices`` uses (auto: the
    accelerators if there are any, as engine.core.devices.pick_device picks)."""
    kind = {"cuda": "GPU", "npu": "NPU", "cpu": "CPU", "mps": "CPU"}.get(choice)
    if kind is None:  # auto
        kind = next((d.kind for d in devices if d.kind != "CPU"), "CPU")
    of_kind = [d for d in devices if d.kind == kind]
    if kind == "CPU" or not indices:
        return of_kind[:1]
    return [d for d in of_kind if d.index in indices] or of_kind[:1]


@dataclass(frozen=True)
class Suggestion:
    key: str  # qlora, batch, checkpointing, zero3, zero3_offload, devices, combined
    total: float  # the estimate with this change
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    state: str  # fits, tight, too_big
    need: float
    have: float
    suggestions: tuple[Suggestion, ...] = ()


def _with(cfg, **changes):
    """A copy of ``cfg`` with ``section__field`` values changed."""
    new = copy.deepcopy(cfg)
    for key, value in changes.items():
        section, name = key.split("__")
        setattr(getattr(new, section), name, value)
    return new


def _checkpointing(cfg):
    try:
        extra = dict(cfg.extra_arguments())
    except ValueError:
        extra = {}
    if extra.get("gradient_checkpointing"):
        return None
    extra["gradient_checkpointing"] = True
    return _with(cfg, train__extra_args=json.dumps(extra))


def _changes(estimate: MemoryEstimate):
    """(key, params, changed config, devices) for each change worth trying, in the order they are offered."""
    cfg, devices, accel = estimate.cfg, estimate.devices, estimate.device_type in ("cuda", "npu")
    if estimate.device_type == "cuda" and cfg.model.quantization_bit != "4":
        yield "qlora", {}, _with(cfg, train__finetuning_type="lora", model__quantization_bit="4"), devices
    batch, accumulation = cfg.train.per_device_train_batch_size, cfg.train.gradient_accumulation_steps
    while batch > 1:
        batch //= 2
        # The same effective batch: accumulation grows as the batch shrinks.
        params = {"batch": batch, "accumulation": accumulation * cfg.train.per_device_train_batch_size // batch}
        yield "batch", params, _with(cfg, train__per_device_train_batch_size=batch,
                                     train__gradient_accumulation_steps=params["accumulation"]), devices
    checkpointed = _checkpointing(cfg)
    if checkpointed is not None:
        yield "checkpointing", {}, checkpointed, devices
    if accel and cfg.distributed.deepspeed != DEEPSPEED_ZERO3:
        yield "zero3", {}, _with(cfg, distributed__deepspeed=DEEPSPEED_ZERO3, distributed__offload=False), devices
    if accel and not (cfg.distributed.deepspeed == DEEPSPEED_ZERO3 and cfg.distributed.offload):
        yield ("zero3_offload", {}, _with(cfg, distributed__deepspeed=DEEPSPEED_ZERO3, distributed__offload=True),
               devices)
    if accel:
        for n in (2, 4, 8):
            if n > devices:
                yield "devices", {"devices": n}, _with(cfg, distributed__deepspeed=DEEPSPEED_ZERO3), n


def _need(estimate: MemoryEstimate, device: DeviceMemory) -> float:
    """What the run takes of ``device``: processes on the CPU share its memory, each holding its own copy."""
    return estimate.total * (estimate.devices if device.kind == "CPU" else 1)


def fits(estimate: MemoryEstimate, device: DeviceMemory) -> Verdict:
    """Whether ``estimate`` fits ``device``; when it does not (training), the first change of each kind that makes
    it fit, in the order QLoRA, a smaller batch, gradient checkpointing, ZeRO-3, more devices; when no single
    change does, those changes together, up to the first combination that fits."""
    have, need = device.capacity, _need(estimate, device)
    state = "fits" if need <= TIGHT_SHARE * have else "tight" if need <= have else "too_big"
    if state == "fits" or estimate.kind != "training" or estimate.cfg is None:
        return Verdict(state, need, have)
    found: dict[str, Suggestion] = {}
    for key, params, cfg, devices in _changes(estimate):
        total = _need(estimate_training(cfg, estimate.info, devices, estimate.device_type), device)
        group = "zero3" if key == "zero3_offload" else key
        if total <= TIGHT_SHARE * have and group not in found:
            found[group] = Suggestion(key, total, params)
    if found:
        return Verdict(state, need, have, tuple(found.values()))
    # Nothing alone is enough: add the other changes up in order, each time with the largest batch that fits.
    combined, devices, steps = estimate.cfg, estimate.devices, []
    for key, params, cfg, n in _changes(estimate):
        if key == "batch":
            continue
        combined, devices = _apply_same(combined, cfg, estimate.cfg), max(devices, n)
        steps = [step for step in steps if not (key == "zero3_offload" and step.key == "zero3")]
        steps.append(Suggestion(key, 0.0, params))
        for batch_key, batch_params, batch_cfg, _ in [("none", {}, estimate.cfg, n), *(
                c for c in _changes(estimate) if c[0] == "batch")]:
            trial = _apply_same(combined, batch_cfg, estimate.cfg)
            total = _need(estimate_training(trial, estimate.info, devices, estimate.device_type), device)
            if total <= TIGHT_SHARE * have:
                extra = [Suggestion(batch_key, 0.0, batch_params)] if batch_key == "batch" else []
                return Verdict(state, need, have, (Suggestion("combined", total, {"steps": tuple(steps + extra)}),))
    return Verdict(state, need, have)


def _apply_same(base, changed, original):
    """``base`` with the fields in which ``changed`` differs from ``original``."""
    new = copy.deepcopy(base)
    for section in ("model", "train", "distributed"):
        for name, value in vars(getattr(changed, section)).items():
            if getattr(getattr(original, section), name) != value:
                setattr(getattr(new, section), name, value)
    return new
