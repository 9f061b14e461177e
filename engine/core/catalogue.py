"""The model catalogue: the models the model-name list offers, as data, in one place.

Each entry has its repo id on every hub that has it, its size, the chat template to
train and chat with, and whether (and how) it reasons before answering. The ids were
looked up, not derived: Hugging Face and ModelScope ids from LLaMA-Factory's model
registry (src/llamafactory/extras/constants.py, DEFAULT / MODELSCOPE / OPENMIND), the
Modelers ids of Qwen3 from vLLM-Ascend's model tutorials (Modelers_Park), the rest (the
current Llama repo names, glm-4-9b-chat-hf, SmolLM3) from the models' own pages. A hub
missing from an entry does not have that model, as far as we know: the UI says so and
names the hubs that do.

Templates: a named one (engine/core/templates.py) where the model's format is one of ours,
for base models as well (their tokenizers often carry no chat template); ``auto`` (the
tokenizer's own) where the model ships the right template and ours would differ.
Sizes are total parameters in billions, from the models' cards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.core.demo_model import DEMO_MODEL_ID
from engine.core.hubs import HUBS, resolve_hub

# The model-name choice for a path of one's own (a local folder or any hub id).
CUSTOM_MODEL = "Custom"

THINKING_KINDS = ("", "switch", "always")  # none; enable_thinking turns it on/off (Qwen3); always reasons (R1)
KINDS = ("base", "instruct")


@dataclass(frozen=True, eq=False)
class CatalogueModel:
    name: str                  # shown in the list, and the folder name of its runs under saves/
    params_b: float            # total parameters, in billions
    template: str              # a name of engine.core.templates.TEMPLATE_CHOICES
    ids: dict = field(default_factory=dict)  # hub -> repo id on that hub
    thinking: str = ""         # one of THINKING_KINDS
    kind: str = "instruct"     # one of KINDS
    family: str = ""
    builtin: str = ""          # a path served on every hub setting without a download (the embedded demo)


SAME = "same"  # in _m below: the same id as on Hugging Face


def _m(family: str, name: str, params_b: float, hf: str, ms: str | None = SAME, om: str | None = None, *,
       template: str = "auto", thinking: str = "", kind: str = "instruct") -> CatalogueModel:
    ids = {"huggingface": hf, "modelscope": hf if ms == SAME else ms, "modelers": om}
    return CatalogueModel(name, params_b, template, {hub: i for hub, i in ids.items() if i}, thinking, kind, family)


def _qwen25(size: str, params_b: float) -> tuple[CatalogueModel, ...]:
    return (_m("Qwen2.5", f"Qwen2.5-{size}", params_b, f"Qwen/Qwen2.5-{size}", template="qwen", kind="base"),
            _m("Qwen2.5", f"Qwen2.5-{size}-Instruct", params_b, f"Qwen/Qwen2.5-{size}-Instruct", template="qwen"))


def _qwen3(size: str, params_b: float, base: bool = True) -> tuple[CatalogueModel, ...]:
    # The hybrid models take enable_thinking in their own chat template; their bases speak ChatML.
    hybrid = _m("Qwen3", f"Qwen3-{size}", params_b, f"Qwen/Qwen3-{size}", om=f"Modelers_Park/Qwen3-{size}",
                thinking="switch")
    if not base:
        return (hybrid,)
    return (_m("Qwen3", f"Qwen3-{size}-Base", params_b, f"Qwen/Qwen3-{size}-Base", template="chatml", kind="base"),
            hybrid)


def _r1(name: str, params_b: float) -> CatalogueModel:
    return _m("DeepSeek-R1-Distill", name, params_b, f"deepseek-ai/{name}", thinking="always")


CATALOGUE: tuple[CatalogueModel, ...] = (
    # The embedded demo first: it is the default and works offline on every hub setting.
    CatalogueModel("SmolLM2-135M-Instruct (demo)", 0.135, "auto", {}, family="SmolLM2", builtin=DEMO_MODEL_ID),
    # Qwen2.5 (base and Instruct; LlamaBoard trains both on its qwen template)
    *_qwen25("0.5B", 0.49), *_qwen25("1.5B", 1.54), *_qwen25("3B", 3.09), *_qwen25("7B", 7.61),
    *_qwen25("14B", 14.7), *_qwen25("32B", 32.5), *_qwen25("72B", 72.7),
    # Qwen3 (hybrid thinking), and its 2507 updates that only answer / only think
    *_qwen3("0.6B", 0.6), *_qwen3("1.7B", 1.7), *_qwen3("4B", 4.0), *_qwen3("8B", 8.2), *_qwen3("14B", 14.8),
    *_qwen3("32B", 32.8, base=False),
    _m("Qwen3", "Qwen3-4B-Instruct-2507", 4.0, "Qwen/Qwen3-4B-Instruct-2507"),
    _m("Qwen3", "Qwen3-4B-Thinking-2507", 4.0, "Qwen/Qwen3-4B-Thinking-2507", thinking="always"),
    # DeepSeek-R1 distills: always reason; their tokenizers carry the template
    _r1("DeepSeek-R1-Distill-Qwen-1.5B", 1.78), _r1("DeepSeek-R1-Distill-Qwen-7B", 7.62),
    _r1("DeepSeek-R1-Distill-Qwen-14B", 14.8), _r1("DeepSeek-R1-Distill-Qwen-32B", 32.8),
    _r1("DeepSeek-R1-Distill-Llama-8B", 8.03),
    # Llama 3.1 / 3.2 / 3.3 (gated on Hugging Face: a token from `hf auth login` or HF_TOKEN)
    _m("Llama 3", "Llama-3.1-8B", 8.03, "meta-llama/Llama-3.1-8B", "LLM-Research/Meta-Llama-3.1-8B",
       template="llama3", kind="base"),
    _m("Llama 3", "Llama-3.1-8B-Instruct", 8.03, "meta-llama/Llama-3.1-8B-Instruct",
       "LLM-Research/Meta-Llama-3.1-8B-Instruct", template="llama3"),
    _m("Llama 3", "Llama-3.1-70B", 70.6, "meta-llama/Llama-3.1-70B", "LLM-Research/Meta-Llama-3.1-70B",
       template="llama3", kind="base"),
    _m("Llama 3", "Llama-3.1-70B-Instruct", 70.6, "meta-llama/Llama-3.1-70B-Instruct",
       "LLM-Research/Meta-Llama-3.1-70B-Instruct", template="llama3"),
    _m("Llama 3", "Llama-3.2-1B", 1.24, "meta-llama/Llama-3.2-1B", "LLM-Research/Llama-3.2-1B", template="llama3",
       kind="base"),
    _m("Llama 3", "Llama-3.2-1B-Instruct", 1.24, "meta-llama/Llama-3.2-1B-Instruct",
       "LLM-Research/Llama-3.2-1B-Instruct", template="llama3"),
    _m("Llama 3", "Llama-3.2-3B", 3.21, "meta-llama/Llama-3.2-3B", "LLM-Research/Llama-3.2-3B", template="llama3",
       kind="base"),
    _m("Llama 3", "Llama-3.2-3B-Instruct", 3.21, "meta-llama/Llama-3.2-3B-Instruct",
       "LLM-Research/Llama-3.2-3B-Instruct", template="llama3"),
    _m("Llama 3", "Llama-3.3-70B-Instruct", 70.6, "meta-llama/Llama-3.3-70B-Instruct",
       "LLM-Research/Llama-3.3-70B-Instruct", template="llama3"),
    # GLM-4: the original 9B repos ship their own code; the -hf and 0414 ones load with transformers alone
    _m("GLM-4", "glm-4-9b", 9.4, "zai-org/glm-4-9b", "ZhipuAI/glm-4-9b", template="default", kind="base"),
    _m("GLM-4", "glm-4-9b-chat", 9.4, "zai-org/glm-4-9b-chat", "ZhipuAI/glm-4-9b-chat", "LlamaFactory/glm-4-9b-chat"),
    _m("GLM-4", "glm-4-9b-chat-hf", 9.4, "zai-org/glm-4-9b-chat-hf", "ZhipuAI/glm-4-9b-chat-hf"),
    _m("GLM-4", "GLM-4-9B-0414", 9.4, "zai-org/GLM-4-9B-0414", "ZhipuAI/GLM-4-9B-0414"),
    # InternLM 3
    _m("InternLM 3", "internlm3-8b-instruct", 8.8, "internlm/internlm3-8b-instruct",
       "Shanghai_AI_Laboratory/internlm3-8b-instruct"),
    # Yi 1.5: ChatML
    _m("Yi 1.5", "Yi-1.5-6B", 6.06, "01-ai/Yi-1.5-6B", "01ai/Yi-1.5-6B", template="chatml", kind="base"),
    _m("Yi 1.5", "Yi-1.5-6B-Chat", 6.06, "01-ai/Yi-1.5-6B-Chat", "01ai/Yi-1.5-6B-Chat", "LlamaFactory/Yi-1.5-6B-Chat",
       template="chatml"),
    _m("Yi 1.5", "Yi-1.5-9B", 8.83, "01-ai/Yi-1.5-9B", "01ai/Yi-1.5-9B", template="chatml", kind="base"),
    _m("Yi 1.5", "Yi-1.5-9B-Chat", 8.83, "01-ai/Yi-1.5-9B-Chat", "01ai/Yi-1.5-9B-Chat", template="chatml"),
    _m("Yi 1.5", "Yi-1.5-34B", 34.4, "01-ai/Yi-1.5-34B", "01ai/Yi-1.5-34B", template="chatml", kind="base"),
    _m("Yi 1.5", "Yi-1.5-34B-Chat", 34.4, "01-ai/Yi-1.5-34B-Chat", "01ai/Yi-1.5-34B-Chat", template="chatml"),
    # Baichuan 2: ships its own code (tick "Trust remote code"), and its weights as pickle files, which TuneBoard
    # refuses (convert them to safetensors first). Its chat format is none of our named templates: ``auto``.
    _m("Baichuan 2", "Baichuan2-7B-Base", 7.51, "baichuan-inc/Baichuan2-7B-Base", template="default", kind="base"),
    _m("Baichuan 2", "Baichuan2-7B-Chat", 7.51, "baichuan-inc/Baichuan2-7B-Chat", om="Baichuan/Baichuan2_7b_chat_pt"),
    _m("Baichuan 2", "Baichuan2-13B-Base", 13.9, "baichuan-inc/Baichuan2-13B-Base",
       om="Baichuan/Baichuan2_13b_base_pt", template="default", kind="base"),
    _m("Baichuan 2", "Baichuan2-13B-Chat", 13.9, "baichuan-inc/Baichuan2-13B-Chat",
       om="Baichuan/Baichuan2_13b_chat_pt"),
    # Mistral
    _m("Mistral", "Mistral-7B-v0.3", 7.25, "mistralai/Mistral-7B-v0.3", "LLM-Research/mistral-7b-v0.3",
       template="default", kind="base"),
    _m("Mistral", "Mistral-7B-Instruct-v0.3", 7.25, "mistralai/Mistral-7B-Instruct-v0.3",
       "LLM-Research/Mistral-7B-Instruct-v0.3"),
    _m("Mistral", "Ministral-8B-Instruct-2410", 8.02, "mistralai/Ministral-8B-Instruct-2410"),
    _m("Mistral", "Mistral-Nemo-Base-2407", 12.2, "mistralai/Mistral-Nemo-Base-2407",
       "LLM-Research/Mistral-Nemo-Base-2407", template="default", kind="base"),
    _m("Mistral", "Mistral-Nemo-Instruct-2407", 12.2, "mistralai/Mistral-Nemo-Instruct-2407",
       "AI-ModelScope/Mistral-Nemo-Instruct-2407"),
    _m("Mistral", "Mistral-Small-24B-Instruct-2501", 23.6, "mistralai/Mistral-Small-24B-Instruct-2501"),
    # Gemma 2 and 3 (gated on Hugging Face)
    _m("Gemma 2", "gemma-2-2b", 2.61, "google/gemma-2-2b", "LLM-Research/gemma-2-2b", template="default",
       kind="base"),
    _m("Gemma 2", "gemma-2-2b-it", 2.61, "google/gemma-2-2b-it", "LLM-Research/gemma-2-2b-it",
       "LlamaFactory/gemma-2-2b-it"),
    _m("Gemma 2", "gemma-2-9b", 9.24, "google/gemma-2-9b", "LLM-Research/gemma-2-9b", template="default",
       kind="base"),
    _m("Gemma 2", "gemma-2-9b-it", 9.24, "google/gemma-2-9b-it", "LLM-Research/gemma-2-9b-it",
       "LlamaFactory/gemma-2-9b-it"),
    _m("Gemma 2", "gemma-2-27b", 27.2, "google/gemma-2-27b", "LLM-Research/gemma-2-27b", template="default",
       kind="base"),
    _m("Gemma 2", "gemma-2-27b-it", 27.2, "google/gemma-2-27b-it", "LLM-Research/gemma-2-27b-it"),
    _m("Gemma 3", "gemma-3-270m-it", 0.27, "google/gemma-3-270m-it", "LLM-Research/gemma-3-270m-it"),
    _m("Gemma 3", "gemma-3-1b-pt", 1.0, "google/gemma-3-1b-pt", "LLM-Research/gemma-3-1b-pt", template="default",
       kind="base"),
    _m("Gemma 3", "gemma-3-1b-it", 1.0, "google/gemma-3-1b-it", "LLM-Research/gemma-3-1b-it"),
    _m("Gemma 3", "gemma-3-4b-pt", 4.3, "google/gemma-3-4b-pt", "LLM-Research/gemma-3-4b-pt", template="default",
       kind="base"),
    _m("Gemma 3", "gemma-3-4b-it", 4.3, "google/gemma-3-4b-it", "LLM-Research/gemma-3-4b-it"),
    _m("Gemma 3", "gemma-3-12b-it", 12.2, "google/gemma-3-12b-it", "LLM-Research/gemma-3-12b-it"),
    _m("Gemma 3", "gemma-3-27b-it", 27.4, "google/gemma-3-27b-it", "LLM-Research/gemma-3-27b-it"),
    # Phi-3.5 / Phi-4
    _m("Phi", "Phi-3.5-mini-instruct", 3.82, "microsoft/Phi-3.5-mini-instruct", "LLM-Research/Phi-3.5-mini-instruct"),
    _m("Phi", "Phi-4-mini-instruct", 3.84, "microsoft/Phi-4-mini-instruct", "LLM-Research/Phi-4-mini-instruct"),
    _m("Phi", "phi-4", 14.7, "microsoft/phi-4", "LLM-Research/phi-4"),
    # SmolLM2 / SmolLM3: small enough for a laptop CPU; ChatML. (SmolLM2-135M-Instruct is the demo above: a second
    # entry would share its runs folder, saves/SmolLM2-135M-Instruct.)
    _m("SmolLM2", "SmolLM2-135M", 0.135, "HuggingFaceTB/SmolLM2-135M", template="chatml", kind="base"),
    _m("SmolLM2", "SmolLM2-360M", 0.362, "HuggingFaceTB/SmolLM2-360M", template="chatml", kind="base"),
    _m("SmolLM2", "SmolLM2-360M-Instruct", 0.362, "HuggingFaceTB/SmolLM2-360M-Instruct"),
    _m("SmolLM2", "SmolLM2-1.7B", 1.71, "HuggingFaceTB/SmolLM2-1.7B", template="chatml", kind="base"),
    _m("SmolLM2", "SmolLM2-1.7B-Instruct", 1.71, "HuggingFaceTB/SmolLM2-1.7B-Instruct"),
    _m("SmolLM3", "SmolLM3-3B-Base", 3.08, "HuggingFaceTB/SmolLM3-3B-Base", None, template="chatml", kind="base"),
    _m("SmolLM3", "SmolLM3-3B", 3.08, "HuggingFaceTB/SmolLM3-3B", thinking="switch"),
)

_BY_NAME = {m.name: m for m in CATALOGUE}


def catalogue_model(name: str) -> CatalogueModel | None:
    """The entry called ``name`` (None for the custom choice or an unknown name)."""
    return _BY_NAME.get(name)


def model_id(name: str, hub: str = "auto") -> str | None:
    """What the model path holds for catalogue model ``name`` on ``hub``: its repo id there, the demo's alias on
    every hub, or None where that hub does not have it (or the name is not in the catalogue)."""
    model = catalogue_model(name)
    if model is None:
        return None
    return model.builtin or model.ids.get(resolve_hub(hub))


def find_model(repo_id_or_name: str) -> CatalogueModel | None:
    """The entry with this name, or this repo id on any hub (hub ids compare case-insensitively, as the hubs do)."""
    text = repo_id_or_name.strip()
    if text in _BY_NAME:
        return _BY_NAME[text]
    lowered = text.lower()
    return next((m for m in CATALOGUE if m.builtin == text or lowered in (i.lower() for i in m.ids.values())), None)


def hubs_with(repo_id_or_name: str) -> list[str]:
    """The hubs that have this model (in HUBS order), for "not on this hub: try ModelScope" hints;
    empty when the catalogue does not know it."""
    model = find_model(repo_id_or_name)
    if model is None:
        return []
    return list(HUBS) if model.builtin else [hub for hub in HUBS if hub in model.ids]


def size_text(params_b: float) -> str:
    """A size as model names write it: 135M, 0.49B, 1.5B, 7.6B, 72.7B."""
    if params_b < 0.4:
        return f"{params_b * 1000:.0f}M"
    if params_b < 1:
        return f"{params_b:.2f}".rstrip("0") + "B"
    return f"{params_b:.1f}B"
