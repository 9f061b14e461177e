"""What an export needs besides valid fields, checked before anything is loaded (torch-free, so the Export tab
refuses at once what the job would refuse later): the GPTQ calibration dataset is registered in an allowed data
folder, a push has its token in the environment, and GPTQ has its package."""

from __future__ import annotations

import importlib.util

from engine.core.config import ConfigError, RunConfig
from engine.core.data.registry import DatasetSpec, resolve_dataset
from engine.core.download import HUB_NAMES, LOGIN
from engine.core.paths import confined_data_dir

# the variable each hub client reads its token from, as for downloads of gated models
PUSH_TOKEN_VARS = {hub: LOGIN[hub][1] for hub in ("huggingface", "modelscope")}
GPTQ_PACKAGE = "gptqmodel"


def calibration_dataset(cfg: RunConfig, roots=None) -> DatasetSpec | None:
    """The GPTQ calibration dataset's registry entry (None without GPTQ); a DataError / PathError says why not."""
    e = cfg.export
    if e.export_quantization_bit == "none":
        return None
    folder = confined_data_dir(e.quantization_dataset_dir, roots)
    return resolve_dataset(folder, e.export_quantization_dataset.strip())


def check_gptq_package() -> None:
    if importlib.util.find_spec(GPTQ_PACKAGE) is None:
        raise ConfigError("export.export_quantization_bit", "gptq_needs_package")


def check_export_request(cfg: RunConfig, environ, roots=None) -> None:
    """Refuse, naming the field, an export that cannot succeed here (the device check is the job's: it needs
    torch)."""
    calibration_dataset(cfg, roots)
    if cfg.export.export_hub_model_id.strip():
        push_token(cfg.export.export_hub, environ)


def push_token(hub: str, environ) -> str:
    """The hub's token from the environment (never the form or run.yaml), or a ConfigError naming the variable."""
    variable = PUSH_TOKEN_VARS[hub]
    token = environ.get(variable, "").strip()
    if not token:
        raise ConfigError("export.export_hub_model_id", "hub_token_missing", hub=HUB_NAMES[hub], variable=variable)
    return token
