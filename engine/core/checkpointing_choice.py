"""Gradient checkpointing on or off, chosen when a training job starts.

Checkpointing recomputes each layer's activations in backward instead of keeping them: it costs about a third
more compute and saves most of the activation memory, which on a GPU with long samples is most of the run
(LlamaBoard turns it on by default). Lean activations (engine/train/lean_activations.py) only cut fp32 LoRA, not
the bf16 runs an accelerator does. So on an accelerator it is turned on when the memory estimate
(engine/core/memory_estimate.py) says the run without it would not fit or would be tight (engine/core/memory_fit.py),
and when nothing is known about the model or the device's memory (then LlamaBoard's default is the safe side). On
the CPU it stays off, as before: memory there is the machine's RAM, and the measured CPU runs are faster without it.
``gradient_checkpointing`` in Extra arguments always wins.

The device's memory is read as the hardware panel reads it (nvidia-smi / npu-smi): an accelerator's whole memory
counts, not what is free, so every rank of a torchrun job reads the same numbers and makes the same choice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from engine.core.config import RunConfig
from engine.core.memory_estimate import estimate_training, model_info
from engine.core.memory_fit import device_memory, fits, run_devices

ACCELERATORS = ("cuda", "npu", "mps")
REASONS = ("explicit", "cpu", "fits", "tight", "too_big", "unknown")
TURN_OFF = '{"gradient_checkpointing": false}'  # what Extra arguments take to overrule an automatic "on"


@dataclass(frozen=True)
class CheckpointingChoice:
    enabled: bool
    reason: str  # one of REASONS
    need: float = 0.0  # bytes the run would take per device without checkpointing (fits, tight, too_big)
    have: float = 0.0  # bytes of the device's memory

    def to_status(self) -> dict:
        return asdict(self)

    def log_line(self) -> str:
        state = "on" if self.enabled else "off"
        why = {
            "explicit": "as set in extra arguments",
            "cpu": "the default on the CPU",
            "fits": "the run fits in the device's memory without it",
            "tight": "without it the run would take nearly all of the device's memory",
            "too_big": "without it the run would not fit in the device's memory",
            "unknown": "the run's memory need or the device's memory is not known here; on an accelerator that is "
                       "the safe side",
        }[self.reason]
        numbers = f" ({self.need / 2 ** 30:.1f} of {self.have / 2 ** 30:.1f} GB estimated)" if self.have else ""
        return (f"gradient checkpointing {state}: {why}{numbers}; set {{\"gradient_checkpointing\": "
                f"{'false' if self.enabled else 'true'}}} in extra arguments to change it")


def explicit_setting(cfg: RunConfig) -> bool | None:
    try:
        value = cfg.extra_arguments().get("gradient_checkpointing")
    except ValueError:  # a bad extra_args is refused elsewhere
        return None
    return None if value is None else bool(value)


def choose_checkpointing(cfg: RunConfig, device_type: str, devices=None, info=None) -> CheckpointingChoice:
    """The choice for training ``cfg`` on ``device_type`` (cuda, npu, mps, cpu). ``devices``: the machine's
    engine.core.memory_fit.DeviceMemory list (read now when None); ``info``: the model's shape (read when None)."""
    explicit = explicit_setting(cfg)
    if explicit is not None:
        return CheckpointingChoice(explicit, "explicit")
    if device_type not in ACCELERATORS:
        return CheckpointingChoice(False, "cpu")
    info = model_info(cfg.model.model_name_or_path, cfg.model.hub) if info is None else info
    devices = device_memory() if devices is None else devices
    used = run_devices(device_type, cfg.device_indices(), devices)
    if info is None or not used or (device_type != "mps" and used[0].kind == "CPU"):
        return CheckpointingChoice(True, "unknown")  # no reading of the accelerator (no nvidia-smi / npu-smi)
    estimate = estimate_training(cfg, info, device_type=device_type)
    verdict = max((fits(estimate, d) for d in used), key=lambda v: v.need / v.have if v.have else float("inf"))
    return CheckpointingChoice(verdict.state != "fits", verdict.state, verdict.need, verdict.have)
