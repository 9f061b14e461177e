"""Packages some options need but the base install leaves out (requirements-extras.txt pins them), and the check a
job makes before loading the model: a missing one ends the run at once, naming the package and the pip command."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from engine.core.config import MEMORY_OPTIMIZERS, ConfigError, RunConfig


@dataclass(frozen=True)
class Package:
    what: str  # the feature, as the message names it
    modules: tuple[str, ...]  # importable names, any one of which will do
    requirement: str  # what to pip install

    def installed(self) -> bool:
        return any(importlib.util.find_spec(m) is not None for m in self.modules)


# Memory-saving optimizers (by config section) and experiment trackers (by train.report_to value). The pinned ones
# are those requirements-extras.txt installs (tests/core/test_optional_packages.py keeps the two lists equal).
OPTIMIZER_PACKAGES = {
    "galore": Package("GaLore", ("galore_torch",), "galore-torch==1.0"),
    "apollo": Package("APOLLO", ("apollo_torch",), "apollo-torch==1.0.3"),
    "badam": Package("BAdam", ("badam",), "badam==1.4"),
}
TRACKER_PACKAGES = {
    "tensorboard": Package("TensorBoard", ("tensorboard", "tensorboardX"), "tensorboard"),
    "wandb": Package("W&B", ("wandb",), "wandb"),
    "mlflow": Package("MLflow", ("mlflow",), "mlflow"),
    "trackio": Package("Trackio", ("trackio",), "trackio==0.43.0"),
    "swanlab": Package("SwanLab", ("swanlab",), "swanlab==0.10.3"),
}


def require(field_name: str, package: Package) -> None:
    """Raise a ConfigError naming ``field_name`` when ``package`` is not installed."""
    if not package.installed():
        raise ConfigError(field_name, "needs_package", what=package.what, package=package.requirement.split("==")[0],
                          command=f"pip install {package.requirement}")


def check_packages(cfg: RunConfig) -> None:
    """Every optional package the run's settings need, checked before anything heavy is loaded."""
    optimizer = cfg.memory_optimizer()
    if optimizer is not None:
        require(f"{optimizer}.{MEMORY_OPTIMIZERS[optimizer]}", OPTIMIZER_PACKAGES[optimizer])
    if cfg.train.report_to != "none":
        require("train.report_to", TRACKER_PACKAGES[cfg.train.report_to])
