"""Where models come from: LlamaBoard's hub variables, the endpoints (a mirror through HF_ENDPOINT shown as such), the
cache folders each client uses - checked against the clients themselves - and the top bar's hub dropdown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.core.catalogue import CATALOGUE, CUSTOM_MODEL
from engine.core.config import RunConfig
from engine.core.demo_model import DEMO_MODEL_ID
from engine.core.hubs import (
    HUBS,
    hub_cache_dir,
    hub_endpoint,
    hub_settings,
    hub_switch,
    is_hub_id,
    missing_client,
    resolve_hub,
)

HUB_VARS = ("USE_MODELSCOPE_HUB", "USE_OPENMIND_HUB", "HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE",
            "XDG_CACHE_HOME", "MODELSCOPE_CACHE", "MS_CACHE_HOME", "MODELSCOPE_ENDPOINT", "MODELSCOPE_DOMAIN",
            "OPENMIND_HUB_ENDPOINT", "OPENMIND_PLATFORM")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No hub variable set, and a home of our own."""
    for name in HUB_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(("env", "hub"), [
    ({}, "huggingface"),
    ({"USE_MODELSCOPE_HUB": "1"}, "modelscope"),
    ({"USE_MODELSCOPE_HUB": "true"}, "modelscope"),
    ({"USE_MODELSCOPE_HUB": "Y"}, "modelscope"),
    ({"USE_MODELSCOPE_HUB": "0"}, "huggingface"),
    ({"USE_MODELSCOPE_HUB": "yes"}, "huggingface"),  # LlamaBoard takes true, y and 1 only
    ({"USE_OPENMIND_HUB": "1"}, "modelers"),
    ({"USE_OPENMIND_HUB": "1", "USE_MODELSCOPE_HUB": "1"}, "modelscope"),  # ModelScope first, as in LlamaBoard
])
def test_auto_follows_llamaboards_variables(env, hub):
    assert resolve_hub("auto", env) == hub and resolve_hub("", env) == hub


def test_the_variable_that_chose_the_hub():
    assert hub_switch({"USE_OPENMIND_HUB": "1"}) == "USE_OPENMIND_HUB" and hub_switch({}) == ""


def test_a_chosen_hub_wins_over_the_variables():
    env = {"USE_MODELSCOPE_HUB": "1"}
    assert [resolve_hub(h, env) for h in HUBS] == list(HUBS)
    with pytest.raises(ValueError, match="unknown model hub 'hf'"):
        resolve_hub("hf")


def test_endpoints():
    assert [hub_endpoint(h, {}) for h in HUBS] == ["https://huggingface.co", "https://modelscope.cn",
                                                   "https://modelers.cn"]
    mirror = hub_settings("huggingface", {"HF_ENDPOINT": "https://hf-mirror.com/"})
    assert (mirror.endpoint, mirror.endpoint_var) == ("https://hf-mirror.com", "HF_ENDPOINT")
    # ModelScope builds https:// URLs from a bare MODELSCOPE_DOMAIN; MODELSCOPE_ENDPOINT wins over it.
    assert hub_settings("modelscope", {"MODELSCOPE_DOMAIN": "127.0.0.1:8443"}).endpoint == "https://127.0.0.1:8443"
    both = hub_settings("modelscope", {"MODELSCOPE_DOMAIN": "a.example", "MODELSCOPE_ENDPOINT": "https://b.example"})
    assert (both.endpoint, both.endpoint_var) == ("https://b.example", "MODELSCOPE_ENDPOINT")
    assert hub_endpoint("modelers", {"OPENMIND_HUB_ENDPOINT": "https://om.example"}) == "https://om.example"
    assert hub_endpoint("auto", {"USE_OPENMIND_HUB": "1"}) == "https://modelers.cn"


def test_cache_dirs_follow_the_hubs_rules(clean_env):
    home = clean_env
    assert [hub_cache_dir(h, {}) for h in HUBS] == [home / ".cache/huggingface/hub", home / ".cache/modelscope",
                                                    home / ".cache/openmind/hub"]
    hf = hub_settings("huggingface", {"HF_HOME": "/data/hf"})
    assert (hf.cache_dir, hf.cache_var) == (Path("/data/hf/hub"), "HF_HOME")
    assert hub_cache_dir("huggingface", {"HF_HOME": "/data/hf", "HF_HUB_CACHE": "/data/hub"}) == Path("/data/hub")
    assert hub_cache_dir("huggingface", {"HUGGINGFACE_HUB_CACHE": "~/old"}) == home / "old"
    ms = hub_settings("modelscope", {"MODELSCOPE_CACHE": "/data/ms"})
    assert (ms.cache_dir, ms.cache_var) == (Path("/data/ms"), "MODELSCOPE_CACHE")
    xdg = {"XDG_CACHE_HOME": "/xdg"}
    assert [hub_cache_dir(h, xdg) for h in HUBS] == [Path("/xdg/huggingface/hub"), home / ".cache/modelscope",
                                                     Path("/xdg/openmind/hub")]
    assert hub_settings("modelers", xdg).cache_var == "XDG_CACHE_HOME"


CLIENTS_SAY = """
import json, warnings
warnings.simplefilter("ignore")
from huggingface_hub import constants as hf
from modelscope_hub import HubConfig
from openmind_hub.plugins.openmind import constants as om
ms = HubConfig()
print(json.dumps({"huggingface": [hf.ENDPOINT, hf.HF_HUB_CACHE], "modelscope": [ms.endpoint, str(ms.cache_dir)],
                  "modelers": [om.ENDPOINT, om.OM_HUB_CACHE]}))
"""


@pytest.mark.parametrize("env", [
    {},
    {"HF_ENDPOINT": "https://hf-mirror.com", "HF_HOME": "{tmp}/hf", "MODELSCOPE_CACHE": "{tmp}/ms",
     "MODELSCOPE_DOMAIN": "ms.example", "OPENMIND_HUB_ENDPOINT": "https://om.example"},
    {"XDG_CACHE_HOME": "{tmp}/xdg", "HF_HUB_CACHE": "{tmp}/hub", "MODELSCOPE_ENDPOINT": "https://ms2.example"},
], ids=["defaults", "set", "xdg"])
def test_the_clients_agree(clean_env, env):
    """What the installed clients would use is what we show."""
    env = {name: value.format(tmp=clean_env) for name, value in env.items()}
    run_env = {k: v for k, v in os.environ.items() if k not in HUB_VARS} | env
    out = subprocess.run([sys.executable, "-c", CLIENTS_SAY], env=run_env, capture_output=True, text=True,
                         timeout=120, check=True)
    clients = json.loads(out.stdout.strip().splitlines()[-1])
    ours = {hub: [hub_endpoint(hub, env), str(hub_cache_dir(hub, env))] for hub in HUBS}
    assert ours == clients


def test_hub_ids():
    for text in ("Qwen/Qwen2.5-7B-Instruct", "Shanghai_AI_Laboratory/internlm3-8b-instruct", "01-ai/Yi-1.5-6B",
                 "Baichuan/Baichuan2_7b_chat_pt"):
        assert all(is_hub_id(text, hub) for hub in HUBS), text
    for text in ("Qwen", "./models/qwen", "/data/models/qwen", "a/b/c", "../x", "a/..", "x/.y", "Qwen/ Qwen", ""):
        assert not is_hub_id(text, "huggingface"), text


def test_a_missing_client_is_named(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *_a: None if name == "openmind_hub" else real(name))
    assert missing_client("modelers") == "openmind-hub" and missing_client("modelscope") == ""


# --- the top bar's hub dropdown and hub line ------------------------------------------------------------------


def test_hub_line_shows_the_mirror_and_the_cache(clean_env, monkeypatch):
    from webui.model_hub import hub_info

    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.com")
    monkeypatch.setenv("HF_HOME", str(clean_env / "hf"))
    text = hub_info("en", "Qwen2.5-7B-Instruct", "huggingface")
    assert text == (f"Hugging Face: downloads from `https://hf-mirror.com` (`HF_ENDPOINT`); files go to "
                    f"`{clean_env / 'hf' / 'hub'}` (`HF_HOME`).")
    zh = hub_info("zh", "Qwen2.5-7B-Instruct", "modelscope")
    assert zh.startswith("魔搭社区 ModelScope：从 `https://modelscope.cn` 下载") and "⚠" not in zh
    monkeypatch.setenv("USE_MODELSCOPE_HUB", "1")  # the tutorials' variable is named where it chose the hub
    assert hub_info("en", "Qwen2.5-7B-Instruct", "modelscope").startswith("ModelScope (`USE_MODELSCOPE_HUB`): ")
    assert hub_info("en", "Qwen2.5-7B-Instruct", "huggingface").startswith("Hugging Face: ")


def test_hub_line_says_which_hubs_have_a_model(clean_env):
    from webui.model_hub import hub_info

    text = hub_info("en", "gemma-2-27b-it", "modelers")
    assert ("gemma-2-27b-it is not on Modelers (openMind); it is on Hugging Face, ModelScope. Choose one of those as "
            "the model hub") in text
    assert "魔乐社区 Modelers 上没有 gemma-2-27b-it；它在 Hugging Face，魔搭社区 ModelScope 上" in hub_info(
        "zh", "gemma-2-27b-it", "modelers")
    assert "⚠" not in hub_info("en", CATALOGUE[0].name, "modelers")  # the demo is built in
    assert "⚠" not in hub_info("en", CUSTOM_MODEL, "modelers")  # a path of one's own: nothing to say


def test_hub_line_names_a_missing_client(monkeypatch):
    import importlib.util

    from webui.model_hub import hub_info

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *_a: None if name == "openmind_hub" else real(name))
    assert ("The client library of Modelers (openMind) (`openmind-hub`) is not installed"
            in hub_info("en", "Qwen3-8B", "modelers"))
    assert "客户端库（`openmind-hub`）未安装" in hub_info("zh", "Qwen3-8B", "modelers")


def test_model_path_follows_the_hub():
    from webui.model_hub import model_path_for

    assert model_path_for("Llama-3.1-8B-Instruct", "huggingface") == "meta-llama/Llama-3.1-8B-Instruct"
    assert model_path_for("Llama-3.1-8B-Instruct", "modelscope") == "LLM-Research/Meta-Llama-3.1-8B-Instruct"
    # not on Modelers: the first hub's id, as LlamaBoard falls back to Hugging Face's (the hub line says so)
    assert model_path_for("Llama-3.1-8B-Instruct", "modelers") == "meta-llama/Llama-3.1-8B-Instruct"
    assert [model_path_for(CATALOGUE[0].name, h) for h in HUBS] == [DEMO_MODEL_ID] * 3
    assert model_path_for(CUSTOM_MODEL, "modelscope") is None


def test_model_list_shows_sizes_and_filters():
    from webui.model_hub import model_name_choices

    en = model_name_choices("en")
    assert en[0] == ("SmolLM2-135M-Instruct (built-in demo, 135M)", "SmolLM2-135M-Instruct (demo)")
    assert ("Qwen2.5-7B-Instruct (7.6B)", "Qwen2.5-7B-Instruct") in en
    assert model_name_choices("zh")[0][0] == "SmolLM2-135M-Instruct (内置演示，135M)"


def _handler(blocks, name: str):
    return next(fn for fn in blocks.fns.values() if getattr(fn.fn, "__name__", "") == name)


def test_top_bar_hub_defaults_to_the_environment_and_reaches_the_config(clean_env, monkeypatch):
    import gradio as gr

    from webui.form import config_from_values, values_from_config
    from webui.top_bar import build_top_bar

    monkeypatch.setenv("USE_MODELSCOPE_HUB", "1")
    with gr.Blocks() as blocks:
        top = build_top_bar()
    assert top.hub.component.value == "modelscope" and top.hub in top.model_controls
    assert [v for _, v in top.hub.component.choices] == list(HUBS)  # concrete hubs only: no "auto"
    assert "ModelScope" in top.hub_info.value
    values = [c.component.value for c in top.model_controls]
    cfg = config_from_values(top.model_controls, values, command="export",
                             base=RunConfig.from_dict({"export": {"export_dir": "out"}}, "export"))
    assert cfg.model.hub == "modelscope"  # written into run.yaml as the hub used
    assert values_from_config([top.hub], RunConfig())[0] == "modelscope"  # a run.yaml saying auto, shown resolved

    on_hub = _handler(blocks, "on_hub").fn
    assert on_hub("Qwen2.5-7B-Instruct", "modelers") == "Qwen/Qwen2.5-7B-Instruct"
    assert on_hub("Yi-1.5-6B-Chat", "modelscope") == "01ai/Yi-1.5-6B-Chat"
    assert on_hub(CUSTOM_MODEL, "modelscope") == {"__type__": "update"}  # a path of one's own is left alone
    on_model_name = _handler(blocks, "on_model_name").fn
    path, template, _, line = on_model_name("en", "Yi-1.5-6B-Chat", "lora", "modelers")
    assert (path, template) == ("LlamaFactory/Yi-1.5-6B-Chat", "chatml") and "⚠" not in line
    *_, line = on_model_name("en", "Qwen2.5-7B-Instruct", "lora", "modelers")
    assert "Qwen2.5-7B-Instruct is not on Modelers (openMind)" in line
