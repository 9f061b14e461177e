"""The command that runs an engine job: plain Python for one process, torchrun for several devices or nodes.

The web UI starts exactly this command, and shows it (with its environment) as the preview, so a run
can be repeated in a terminal or on another node by pasting it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from engine.core.config import DEEPSPEED_OFF, RunConfig
from engine.core.devices import job_device, job_env


def uses_torchrun(cfg: RunConfig, command: str) -> bool:
    # DeepSpeed on one device too: without torchrun's RANK/WORLD_SIZE/MASTER_* it looks for MPI (mpi4py).
    return command == "train" and (cfg.is_distributed() or cfg.distributed.deepspeed != DEEPSPEED_OFF)


def job_command(cfg: RunConfig, config_path: str | Path, command: str = "train") -> tuple[list[str], dict[str, str]]:
    """(argument list, extra environment) that run ``command`` on ``config_path``; no shell involved."""
    job = ["-m", "engine", command, str(config_path)]
    # The device decides the job's environment (which devices it sees, CPU-only tuning), so "auto" is resolved
    # here as the job will resolve it.
    device = job_device(cfg.export.device if command == "export" else cfg.model.device)
    indices = cfg.device_indices() if command == "train" else []
    env = job_env(device, indices, cfg.processes_per_node() if uses_torchrun(cfg, command) else 1)
    if not uses_torchrun(cfg, command):
        return [sys.executable, *job], env
    d = cfg.distributed
    env.update(NNODES=str(d.nnodes), NODE_RANK=str(d.node_rank), MASTER_ADDR=d.master_addr.strip(),
               MASTER_PORT=str(d.master_port))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(d.nnodes), "--node_rank",
                str(d.node_rank), "--nproc_per_node", str(cfg.processes_per_node()), "--master_addr",
                d.master_addr.strip(), "--master_port", str(d.master_port)]
    return [*torchrun, *job], env
