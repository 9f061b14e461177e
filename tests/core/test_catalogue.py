"""The model catalogue is data the UI and the downloads trust: every entry names a template that exists, its ids
have each hub's form, names are unique, the demo comes first, and the families the issue names are there with
their ids on the hubs that have them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.core.catalogue import (
    CATALOGUE,
    CUSTOM_MODEL,
    KINDS,
    THINKING_KINDS,
    catalogue_model,
    find_model,
    hubs_with,
    model_id,
    size_text,
)
from engine.core.demo_model import DEMO_MODEL_ID
from engine.core.hubs import HUBS, is_hub_id
from engine.core.templates import TEMPLATE_CHOICES


def test_demo_comes_first_and_is_on_every_hub():
    demo = CATALOGUE[0]
    assert demo.builtin == DEMO_MODEL_ID and demo.name == "SmolLM2-135M-Instruct (demo)"
    assert [model_id(demo.name, hub) for hub in HUBS + ("auto",)] == [DEMO_MODEL_ID] * 4
    assert hubs_with(demo.name) == list(HUBS) and find_model(DEMO_MODEL_ID) is demo
    assert [m for m in CATALOGUE if m.builtin] == [demo]


def test_names_are_unique_and_not_the_custom_choice():
    names = [m.name for m in CATALOGUE]
    assert len(names) == len(set(names)) and CUSTOM_MODEL not in names
    assert len(CATALOGUE) >= 80


def test_every_entry_is_well_formed():
    for m in CATALOGUE:
        assert m.template in TEMPLATE_CHOICES, (m.name, m.template)
        assert m.thinking in THINKING_KINDS and m.kind in KINDS, m.name
        assert 0.1 < m.params_b < 1000, m.name
        assert m.family, m.name
        assert set(m.ids) <= set(HUBS), m.name
        assert m.builtin or "huggingface" in m.ids, m.name  # every model comes from Hugging Face at least
        for hub, repo_id in m.ids.items():
            assert is_hub_id(repo_id, hub) and repo_id.count("/") == 1, (m.name, hub, repo_id)


def test_an_id_names_one_model_per_hub():
    for hub in HUBS:
        ids = [m.ids[hub].lower() for m in CATALOGUE if hub in m.ids]
        assert len(ids) == len(set(ids)), hub


FAMILIES = ("Qwen2.5", "Qwen3", "DeepSeek-R1-Distill", "Llama 3", "GLM-4", "InternLM 3", "Yi 1.5", "Baichuan 2",
            "Mistral", "Gemma 2", "Gemma 3", "Phi", "SmolLM2", "SmolLM3")


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_is_there_with_its_hub_ids(family):
    members = [m for m in CATALOGUE if m.family == family]
    assert members, family
    assert any("huggingface" in m.ids for m in members)
    if family != "Baichuan 2":  # LLaMA-Factory lists Baichuan 2 on Hugging Face and Modelers only
        assert any("modelscope" in m.ids for m in members), family


def test_the_sizes_the_issue_asks_for():
    names = {m.name for m in CATALOGUE}
    for size in ("0.5B", "1.5B", "3B", "7B", "14B", "32B", "72B"):
        assert {f"Qwen2.5-{size}", f"Qwen2.5-{size}-Instruct"} <= names
    assert {f"Qwen3-{size}" for size in ("0.6B", "1.7B", "4B", "8B", "14B", "32B")} <= names
    assert {f"DeepSeek-R1-Distill-Qwen-{size}" for size in ("1.5B", "7B", "14B")} <= names
    assert {"Llama-3.1-8B-Instruct", "Llama-3.2-1B-Instruct", "Llama-3.3-70B-Instruct", "Phi-3.5-mini-instruct",
            "phi-4", "gemma-2-2b-it", "gemma-3-1b-it", "SmolLM3-3B", "Yi-1.5-9B-Chat"} <= names


def test_thinking_kinds():
    assert catalogue_model("Qwen3-8B").thinking == "switch" and catalogue_model("Qwen3-8B-Base").thinking == ""
    assert catalogue_model("DeepSeek-R1-Distill-Qwen-7B").thinking == "always"
    assert catalogue_model("Qwen2.5-7B-Instruct").thinking == ""
    assert all(m.thinking == "" for m in CATALOGUE if m.kind == "base")


def test_the_tutorials_models_have_their_looked_up_ids():
    # The ids the PKU tutorial, the SFT primer and the Zhouyi case download.
    assert model_id("Qwen2.5-7B-Instruct", "modelscope") == "Qwen/Qwen2.5-7B-Instruct"
    assert model_id("Qwen2.5-1.5B-Instruct", "modelscope") == "Qwen/Qwen2.5-1.5B-Instruct"
    assert model_id("DeepSeek-R1-Distill-Qwen-1.5B", "huggingface") == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    # ModelScope renames some: Llama under LLM-Research, Yi under 01ai, InternLM under Shanghai_AI_Laboratory.
    assert model_id("Llama-3.1-8B-Instruct", "modelscope") == "LLM-Research/Meta-Llama-3.1-8B-Instruct"
    assert model_id("Yi-1.5-6B-Chat", "modelscope") == "01ai/Yi-1.5-6B-Chat"
    assert model_id("internlm3-8b-instruct", "modelscope") == "Shanghai_AI_Laboratory/internlm3-8b-instruct"
    assert model_id("Qwen3-8B", "modelers") == "Modelers_Park/Qwen3-8B"
    assert model_id("Baichuan2-7B-Chat", "modelers") == "Baichuan/Baichuan2_7b_chat_pt"


def test_lookups():
    assert model_id("Qwen2.5-7B-Instruct", "modelers") is None  # not on that hub
    assert model_id("no such model", "huggingface") is None and catalogue_model(CUSTOM_MODEL) is None
    assert hubs_with("gemma-2-27b-it") == ["huggingface", "modelscope"]
    assert hubs_with("llm-research/GEMMA-2-27B-IT") == ["huggingface", "modelscope"]  # by any hub's id, any case
    assert hubs_with("someone/unknown") == []
    assert find_model("Qwen/Qwen3-8B") is catalogue_model("Qwen3-8B")


def test_size_text():
    assert [size_text(p) for p in (0.135, 0.49, 1.54, 7.61, 72.7)] == ["135M", "0.49B", "1.5B", "7.6B", "72.7B"]


def test_catalogue_and_hubs_import_no_heavy_module():
    """The web process imports them at start: no torch, gradio or hub client (modelscope imports torch)."""
    code = ("import sys, engine.core.catalogue, engine.core.hubs, engine.core.config; "
            "print(sorted({'torch', 'gradio', 'modelscope', 'modelscope_hub', 'openmind_hub', 'huggingface_hub'}"
            " & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
