"""Where models come from: Hugging Face (or a mirror), ModelScope, Modelers (openMind).

The rules here are the hubs' own, read from their client libraries, so that a
tutorial's environment (``USE_MODELSCOPE_HUB=1``, ``HF_ENDPOINT=https://hf-mirror.com``,
``HF_HOME``, ``MODELSCOPE_CACHE``) means the same to TuneBoard as to the clients that
download the files. Nothing here imports a client: the web process imports this module
at start, and ``modelscope`` pulls in torch.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HUBS = ("huggingface", "modelscope", "modelers")
HUB_CHOICES = ("auto",) + HUBS

# LlamaBoard's switches (llamafactory.extras.misc.use_modelscope / use_openmind): these values turn them on,
# and ModelScope wins when both are set, as it does there.
_HUB_SWITCHES = (("USE_MODELSCOPE_HUB", "modelscope"), ("USE_OPENMIND_HUB", "modelers"))
_ON = ("true", "y", "1")

# Default endpoints, as the clients have them (huggingface_hub.constants, modelscope_hub.constants,
# openmind_hub's public_address_lib.json).
_DEFAULT_ENDPOINTS = {"huggingface": "https://huggingface.co", "modelscope": "https://modelscope.cn",
                      "modelers": "https://modelers.cn"}

# Repo ids are "owner/name" on every hub. Characters: what the hubs accept in names (letters, digits, - _ .);
# ModelScope owners and Modelers repos also use underscores ("Shanghai_AI_Laboratory", "Baichuan2_7b_chat_pt").
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


@dataclass(frozen=True)
class HubSettings:
    """What the hub's client will use: its endpoint and cache folder, and the variables that set them
    ("" where the client's default is in effect), for the UI to show where files come from and go."""

    hub: str
    endpoint: str
    endpoint_var: str
    cache_dir: Path
    cache_var: str


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def resolve_hub(choice: str = "auto", environ: Mapping[str, str] | None = None) -> str:
    """The concrete hub for ``choice``: itself, or for ``auto`` LlamaBoard's variables (else Hugging Face)."""
    if choice in HUBS:
        return choice
    if choice not in ("auto", ""):
        raise ValueError(f"unknown model hub {choice!r}; choose one of {', '.join(HUB_CHOICES)}")
    switch = hub_switch(environ)
    return dict(_HUB_SWITCHES)[switch] if switch else "huggingface"


def hub_switch(environ: Mapping[str, str] | None = None) -> str:
    """The LlamaBoard variable that picks the ``auto`` hub (e.g. USE_MODELSCOPE_HUB), or "" for none."""
    env = _env(environ)
    return next((var for var, _ in _HUB_SWITCHES if env.get(var, "0").strip().lower() in _ON), "")


def _first_set(env: Mapping[str, str], *names: str) -> tuple[str, str]:
    """(value, name) of the first variable set to a non-empty value, else ("", "")."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value, name
    return "", ""


def _expand(path: str, env: Mapping[str, str]) -> Path:
    # The clients expand ~ and $VARS; $VARS is expanded from ``env`` so tests can pass their own environment.
    expanded = re.sub(r"\$(\w+)|\$\{(\w+)\}", lambda m: env.get(m.group(1) or m.group(2), m.group(0)), path)
    return Path(os.path.expanduser(expanded))


def _xdg_cache(env: Mapping[str, str]) -> Path:
    value = env.get("XDG_CACHE_HOME", "").strip()
    return _expand(value, env) if value else Path(os.path.expanduser("~")) / ".cache"


def _huggingface(env: Mapping[str, str]) -> HubSettings:
    # huggingface_hub.constants: ENDPOINT = HF_ENDPOINT; HF_HUB_CACHE > HUGGINGFACE_HUB_CACHE (legacy) >
    # $HF_HOME/hub, HF_HOME defaulting to $XDG_CACHE_HOME/huggingface.
    endpoint, endpoint_var = _first_set(env, "HF_ENDPOINT")
    cache, cache_var = _first_set(env, "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")
    if cache:
        cache_dir = _expand(cache, env)
    else:
        home, cache_var = _first_set(env, "HF_HOME")
        cache_dir = (_expand(home, env) if home else _xdg_cache(env) / "huggingface") / "hub"
        if not home and env.get("XDG_CACHE_HOME", "").strip():
            cache_var = "XDG_CACHE_HOME"
    return HubSettings("huggingface", (endpoint or _DEFAULT_ENDPOINTS["huggingface"]).rstrip("/"), endpoint_var,
                       cache_dir, cache_var)


def _modelscope(env: Mapping[str, str]) -> HubSettings:
    # modelscope_hub.config.HubConfig (modelscope >= 1.38): MODELSCOPE_ENDPOINT > MODELSCOPE_DOMAIN (a bare
    # domain gets https://) > https://modelscope.cn; files under MODELSCOPE_CACHE (modelscope's shim also takes
    # the older MS_CACHE_HOME), else ~/.cache/modelscope.
    endpoint, endpoint_var = _first_set(env, "MODELSCOPE_ENDPOINT", "MODELSCOPE_DOMAIN")
    if endpoint and not endpoint.lower().startswith(("http://", "https://")):
        endpoint = f"https://{endpoint}"
    cache, cache_var = _first_set(env, "MODELSCOPE_CACHE", "MS_CACHE_HOME")
    cache_dir = _expand(cache, env) if cache else Path(os.path.expanduser("~")) / ".cache" / "modelscope"
    return HubSettings("modelscope", (endpoint or _DEFAULT_ENDPOINTS["modelscope"]).rstrip("/"), endpoint_var,
                       cache_dir, cache_var)


def _modelers(env: Mapping[str, str]) -> HubSettings:
    # openmind_hub.plugins.openmind.constants: OPENMIND_HUB_ENDPOINT (https only) > https://modelers.cn; files
    # under $XDG_CACHE_HOME/openmind/hub - the client has no variable of its own for the cache.
    endpoint, endpoint_var = _first_set(env, "OPENMIND_HUB_ENDPOINT")
    cache_var = "XDG_CACHE_HOME" if env.get("XDG_CACHE_HOME", "").strip() else ""
    return HubSettings("modelers", (endpoint or _DEFAULT_ENDPOINTS["modelers"]).rstrip("/"), endpoint_var,
                       _xdg_cache(env) / "openmind" / "hub", cache_var)


_SETTINGS = {"huggingface": _huggingface, "modelscope": _modelscope, "modelers": _modelers}

# Each hub's client: (module, pip package). scripts/install.sh installs all three.
HUB_CLIENTS = {"huggingface": ("huggingface_hub", "huggingface_hub"), "modelscope": ("modelscope", "modelscope"),
               "modelers": ("openmind_hub", "openmind-hub")}


def hub_settings(hub: str = "auto", environ: Mapping[str, str] | None = None) -> HubSettings:
    """Endpoint and cache folder of ``hub`` (``auto`` resolved first) under ``environ`` (default: os.environ)."""
    env = _env(environ)
    return _SETTINGS[resolve_hub(hub, env)](env)


def hub_endpoint(hub: str = "auto", environ: Mapping[str, str] | None = None) -> str:
    """The URL the hub's client downloads from, e.g. https://hf-mirror.com when HF_ENDPOINT says so."""
    return hub_settings(hub, environ).endpoint


def hub_cache_dir(hub: str = "auto", environ: Mapping[str, str] | None = None) -> Path:
    """The folder the hub's client puts downloaded models in."""
    return hub_settings(hub, environ).cache_dir


def missing_client(hub: str = "auto") -> str:
    """The pip package of the hub's client when it is not installed, else "" (looked up without importing it:
    modelscope pulls in torch)."""
    module, package = HUB_CLIENTS[resolve_hub(hub)]
    return "" if importlib.util.find_spec(module) is not None else package


def is_hub_id(text: str, hub: str = "auto") -> bool:
    """Whether ``text`` has the form of a repo id ("Org/Name") on ``hub``; says nothing of a folder on disk."""
    resolve_hub(hub)  # an unknown hub name is an error, not a "no"
    text = text.strip()
    return bool(_REPO_ID.match(text)) and ".." not in text
