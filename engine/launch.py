"""The command that runs an engine job: plain Python for one process, torchrun for several devices or nodes.

The web UI starts exactly this command, and shows it (with its environment) as the preview, so a run
can be repeated in a terminal or on another node by pasting it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from engine.allocator import allocator_env
from engine.config import RunConfig


def visible_devices_variable(device: str) -> str:
    """CUDA_VISIBLE_DEVICES, or ASCEND_RT_VISIBLE_DEVICES on Ascend (found without importing torch)."""
    if device == "npu" or (device == "auto" and importlib.util.find_spec("torch_npu") is not None):
        return "ASCEND_RT_VISIBLE_DEVICES"
    return "CUDA_VISIBLE_DEVICES"


def uses_torchrun(cfg: RunConfig, command: str) -> bool:
    return command == "train" and cfg.is_distributed()


def job_command(cfg: RunConfig, config_path: str | Path, command: str = "train") -> tuple[list[str], dict[str, str]]:
    """(argument list, extra environment) that run ``command`` on ``config_path``; no shell involved."""
    job = ["-m", "engine", command, str(config_path)]
    env = allocator_env()
    indices = cfg.device_indices() if command == "train" else []
    if indices and cfg.model.device != "cpu":
        env[visible_devices_variable(cfg.model.device)] = ",".join(map(str, indices))
    if not uses_torchrun(cfg, command):
        return [sys.executable, *job], env
    d = cfg.distributed
    env.update(NNODES=str(d.nnodes), NODE_RANK=str(d.node_rank), MASTER_ADDR=d.master_addr.strip(),
               MASTER_PORT=str(d.master_port))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(d.nnodes), "--node_rank",
                str(d.node_rank), "--nproc_per_node", str(cfg.processes_per_node()), "--master_addr",
                d.master_addr.strip(), "--master_port", str(d.master_port)]
    return [*torchrun, *job], env
