"""Export beyond safetensors: GGUF (checked by loading it back with transformers' GGUF loader and comparing
next-token logits and token ids), the Ollama Modelfile (its Go template rendered and compared with the chat
template), GPTQ (refused without CUDA and gptqmodel), and the push to a hub (the fake Hugging Face and
ModelScope hubs of tests/helpers/fake_hubs.py, spoken to by the real huggingface_hub and modelscope clients)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engine.core.config import ConfigError, RunConfig
from engine.core.data import DataError
from engine.core.export_checks import check_export_request
from engine.core.modelfile import build_modelfile, go_template
from engine.core.paths import PathError
from engine.core.rundir import FAILED, FINISHED, RunDir
from engine.core.templates import NAMED_TEMPLATES
from tests.helpers.fake_hubs import FakeHFHub, FakeModelScopeHub, hub_client_env
from tests.helpers.go_template import render

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ["Who are you?", "你好，你是谁？", "Write a haiku about the sea."]
CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi \"there\"\n{x}"},
     {"role": "assistant", "content": "Hello! 你好"}, {"role": "user", "content": "Bye"}],
]


def _export_cfg(**fields) -> RunConfig:
    cfg = RunConfig()
    cfg.export.export_dir = "out"
    for key, value in fields.items():
        setattr(cfg.export, key, value)
    return cfg


# -- fields and checks (no model) ----------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "field", "key"), [
    ({"export_quantization_bit": "4"}, "export.export_quantization_dataset", "quantization_needs_dataset"),
    ({"export_quantization_bit": "8", "export_quantization_dataset": "identity", "export_gguf": "q8_0"},
     "export.export_gguf", "gguf_with_gptq"),
    ({"export_hub_model_id": "not a repo"}, "export.export_hub_model_id", "hub_repo_id"),
    ({"export_hub_model_id": "../etc"}, "export.export_hub_model_id", "hub_repo_id"),
    ({"export_gguf": "q4_k"}, "export.export_gguf", "not_a_choice"),
    ({"export_hub": "github"}, "export.export_hub", "not_a_choice"),
])
def test_export_options_are_validated_naming_the_field(fields, field, key):
    with pytest.raises(ConfigError) as err:
        _export_cfg(**fields).validate("export")
    assert (err.value.field_name, err.value.key) == (field, key)


def test_export_options_round_trip_through_run_yaml():
    cfg = _export_cfg(export_quantization_bit="4", export_quantization_dataset="identity", export_hub="modelscope",
                      export_hub_model_id="me/my-model", export_hub_private=False, max_shard_size_gb=2.0)
    text = cfg.to_yaml("export")
    raw = yaml.safe_load(text)["export"]
    assert raw["export_quantization_bit"] == "4" and raw["export_hub_model_id"] == "me/my-model"
    assert "token" not in text.lower()  # the token is never a field
    back = RunConfig.from_yaml(text, "export")
    assert back.export == cfg.export
    gguf = _export_cfg(export_gguf="q4_0")
    assert RunConfig.from_yaml(gguf.to_yaml("export"), "export").export.export_gguf == "q4_0"


def test_export_request_checks_token_and_calibration_data(tmp_path):
    pushing = _export_cfg(export_hub_model_id="me/my-model")
    for hub, variable in (("huggingface", "HF_TOKEN"), ("modelscope", "MODELSCOPE_API_TOKEN")):
        pushing.export.export_hub = hub
        with pytest.raises(ConfigError) as err:
            check_export_request(pushing, {})
        assert err.value.key == "hub_token_missing" and err.value.params["variable"] == variable
        assert variable in str(err.value) and err.value.field_name == "export.export_hub_model_id"
        check_export_request(pushing, {variable: "t"})  # present: accepted

    quant = _export_cfg(export_quantization_bit="4", export_quantization_dataset="no_such_dataset",
                        quantization_dataset_dir=str(ROOT / "assets" / "data"))
    with pytest.raises(DataError) as data_err:
        check_export_request(quant, {})
    assert data_err.value.key == "not_registered"
    quant.export.export_quantization_dataset = "identity"
    check_export_request(quant, {})
    quant.export.quantization_dataset_dir = str(tmp_path)
    with pytest.raises(PathError):  # a folder outside the allowed data roots
        check_export_request(quant, {}, roots=[ROOT / "assets" / "data"])


def test_gguf_refuses_other_architectures_by_name():
    from engine.export_gguf import check_gguf_model

    with pytest.raises(ConfigError) as err:
        check_gguf_model({"model_type": "gemma2"})
    assert err.value.key == "gguf_architecture" and "gemma2" in str(err.value) and "qwen2" in str(err.value)
    with pytest.raises(ConfigError) as err:
        check_gguf_model({"model_type": "llama", "rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5}})
    assert err.value.key == "gguf_rope_scaling" and "llama3" in str(err.value)
    check_gguf_model({"model_type": "qwen2", "rope_parameters": {"rope_type": "default"}})


def test_gguf_refuses_a_tokenizer_that_is_not_byte_level_bpe(tmp_path):
    from engine.export_gguf import _merges

    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"type": "Unigram", "vocab": []}}))
    with pytest.raises(ConfigError) as err:
        _merges(tmp_path / "tokenizer.json")
    assert err.value.key == "gguf_tokenizer" and "Unigram" in str(err.value)
    spm = {"model": {"type": "BPE", "merges": [], "byte_fallback": True},
           "decoder": {"type": "Sequence", "decoders": [{"type": "Replace"}, {"type": "ByteFallback"}]}}
    (tmp_path / "tokenizer.json").write_text(json.dumps(spm))
    with pytest.raises(ConfigError) as err:
        _merges(tmp_path / "tokenizer.json")
    assert "SentencePiece BPE" in str(err.value)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "merges": [["a", "b"], "c d"]},
                                                         "decoder": {"type": "ByteLevel"}}))
    assert _merges(tmp_path / "tokenizer.json") == ["a b", "c d"]


@pytest.mark.parametrize("name", sorted(NAMED_TEMPLATES))
def test_modelfile_template_renders_like_the_chat_template(name):
    """Ollama renders TEMPLATE with Go's text/template; rendered here by a small interpreter of that syntax
    (tests/helpers/go_template.py) on each conversation, it gives exactly what training and chat use."""
    named = NAMED_TEMPLATES[name]
    template = go_template(named, "</s>")
    for conversation in CONVERSATIONS + [[]]:
        assert render(template, {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in conversation]}) \
            == named.render(conversation, add_generation_prompt=True, eos_token="</s>")
    text = build_modelfile("m-Q8_0.gguf", named, ["<|im_end|>", "<|im_end|>", ""], "</s>", 8192, 0.7, 0.9)
    assert text.splitlines()[1] == "FROM ./m-Q8_0.gguf"
    assert f'TEMPLATE """{template}"""' in text
    assert text.count('PARAMETER stop "<|im_end|>"') == 1 and "PARAMETER num_ctx 4096" in text
    assert "PARAMETER temperature 0.7" in text and "PARAMETER top_p 0.9" in text
    no_template = build_modelfile("m.gguf", None, [])
    assert "TEMPLATE" not in no_template.replace("No TEMPLATE", "")


# -- GGUF on real weights ------------------------------------------------------------------------------------

def _last_logits(model, tokenizer, prompts):
    import torch

    out = []
    with torch.no_grad():
        for prompt in prompts:
            ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                return_tensors="pt", return_dict=True)["input_ids"]
            out.append(model(ids).logits[0, -1].float())
    return out


def _compare(reference, got) -> tuple[float, float, bool, bool]:
    """(max |diff|, max relative L2 error, same top-1 everywhere, reference top-1 in the top-5 everywhere)."""
    diff = max((a - b).abs().max().item() for a, b in zip(reference, got))
    rel = max(((a - b).norm() / a.norm()).item() for a, b in zip(reference, got))
    top1 = all(a.argmax() == b.argmax() for a, b in zip(reference, got))
    top5 = all(a.argmax() in b.topk(5).indices for a, b in zip(reference, got))
    return diff, rel, top1, top5


def _alone(folder: Path, name: str) -> Path:
    """A folder holding the GGUF file only: transformers prefers a tokenizer.json or config.json lying beside it
    to what the file holds."""
    alone = folder.parent / f"{folder.name}-{name}-alone"
    alone.mkdir()
    os.link(folder / name, alone / name)
    return alone


def _load_gguf(folder: Path, name: str):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(_alone(folder, name), gguf_file=name, dtype=torch.float32).eval()


# Tolerances on the relative L2 error of the last position's logits against the merged model (fp32); the figures
# measured are in README.md (Export).
TOLERANCE = {"f16": 0.005, "q8_0": 0.1, "q4_0": 0.5}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["f16"])
def test_gguf_of_the_demo_model_loads_back_with_its_logits_and_tokens(kind, demo_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.export_gguf import write_gguf

    model = AutoModelForCausalLM.from_pretrained(demo_model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir)
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    (tmp_path / "gguf").mkdir()  # the file alone in its folder, so transformers reads everything from it
    counts = write_gguf(model, tokenizer, tmp_path / "tokenizer", tmp_path / "gguf" / "m.gguf", kind, "m")
    assert counts["F32"] == 61  # 30 layers x 2 norms + the final norm stay F32
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "gguf", gguf_file="m.gguf", dtype=torch.float32).eval()
    back_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "gguf", gguf_file="m.gguf")
    diff, rel, top1, top5 = _compare(_last_logits(model, tokenizer, PROMPTS), _last_logits(back, tokenizer, PROMPTS))
    print(f"GGUF {kind}: max |logit diff| {diff:.4f}, relative L2 error {rel:.4f}, same top-1 {top1}, "
          f"top-1 within top-5 {top5}")
    assert rel < TOLERANCE[kind] and top1
    for text in PROMPTS + ["Hello world  \n 2+2=4 <|im_start|>user"]:
        assert back_tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"], text
    chat = [{"role": "user", "content": "Hi"}]
    assert back_tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == \
        tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)


def _tiny_model(arch: str, tokenizer_dir: Path, folder: Path) -> Path:
    """A small random model of ``arch`` with the demo tokenizer (qwen2: with q/k/v biases, untied output)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, Qwen2Config

    torch.manual_seed(0)
    common = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=49152, max_position_embeddings=2048, bos_token_id=1,
                  eos_token_id=2, pad_token_id=2)
    config = Qwen2Config(**common, tie_word_embeddings=False) if arch == "qwen2" \
        else LlamaConfig(**common, tie_word_embeddings=True)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # random weights large enough that a wrong layout shows in the logits
        for p in model.parameters():
            p.normal_(0, 0.2)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "kind"), [("qwen2", "f16"), ("llama", "q4_0")])
def test_gguf_of_small_models_loads_back(arch, kind, demo_model_dir, tmp_path):
    """qwen2 (biases, untied output, no q/k permutation) and the other types, on small random models."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.export_gguf import write_gguf

    folder = _tiny_model(arch, demo_model_dir, tmp_path / arch)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    write_gguf(model, tokenizer, folder, folder / "m.gguf", kind, "m")
    back = _load_gguf(folder, "m.gguf")
    assert back.config.model_type == arch
    diff, rel, top1, top5 = _compare(_last_logits(model, tokenizer, PROMPTS), _last_logits(back, tokenizer, PROMPTS))
    print(f"GGUF {kind} of a small {arch} model: max |logit diff| {diff:.4f}, relative L2 error {rel:.4f}, "
          f"same top-1 {top1}")
    assert rel < TOLERANCE[kind] and top5


# -- the export job: GGUF + Modelfile + push, and the GPTQ refusal ---------------------------------------------

def _run_export(cfg: RunConfig, run_dir: Path, env: dict) -> tuple[dict, str]:
    """``python -m engine export`` as a terminal user runs it: (status.json, what it printed)."""
    run_dir.mkdir(parents=True)
    cfg.export.output_dir = str(run_dir)
    cfg.save(run_dir / "run.yaml", "export")
    result = subprocess.run([sys.executable, "-m", "engine", "export", str(run_dir / "run.yaml")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    status = RunDir(run_dir).read_status()
    assert status.get("state") in (FINISHED, FAILED), result.stdout[-3000:] + result.stderr[-3000:]
    return status, result.stdout + result.stderr


@pytest.mark.slow
def test_export_writes_gguf_and_modelfile_and_pushes_to_the_hub(demo_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = _tiny_model("llama", demo_model_dir, tmp_path / "tiny-llama")
    with FakeHFHub({}) as hub:
        env = dict(hub_client_env(tmp_path / "hubs", hf=hub, token=True), TUNEBOARD_WARM_WORKER="0")
        cfg = RunConfig()
        cfg.model.model_name_or_path = str(base)
        cfg.model.template = "chatml"
        cfg.export.export_dir = str(tmp_path / "exports" / "tiny-chat")
        cfg.export.export_gguf = "q8_0"
        cfg.export.export_hub_model_id = "tuneboard-user/tiny-chat"
        status, output = _run_export(cfg, tmp_path / "run-private", env)
        assert status["state"] == FINISHED, status
        export_dir = Path(status["export_dir"])
        files = sorted(p.name for p in export_dir.iterdir())
        assert "tiny-chat-Q8_0.gguf" in files and "Modelfile" in files and "README.md" in files
        assert status["pushed_to"].endswith("/tuneboard-user/tiny-chat")

        pushed = hub.pushed["tuneboard-user/tiny-chat"]
        assert pushed["private"] is True  # the default
        assert sorted(pushed["files"]) == files  # every file of the export, model card included
        for name in files:
            assert pushed["files"][name] == (export_dir / name).read_bytes(), name
        readme = pushed["files"]["README.md"].decode()
        assert "tiny-chat-Q8_0.gguf" in readme and "Modelfile" in readme
        modelfile = (export_dir / "Modelfile").read_text()
        assert "FROM ./tiny-chat-Q8_0.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
        assert go_template(NAMED_TEMPLATES["chatml"], "<|im_end|>") in modelfile
        # every upload request carried the token from the environment; run.yaml and the log never hold it
        assert all(r.auth for r in hub.requests)
        assert hub.token not in (tmp_path / "run-private" / "run.yaml").read_text()
        assert hub.token not in output

        # the GGUF, read back by transformers, answers as the exported safetensors do
        merged = AutoModelForCausalLM.from_pretrained(export_dir, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(export_dir)
        back = _load_gguf(export_dir, "tiny-chat-Q8_0.gguf")
        diff, rel, _, _ = _compare(_last_logits(merged, tokenizer, PROMPTS), _last_logits(back, tokenizer, PROMPTS))
        print(f"export job GGUF q8_0 (tiny llama): relative L2 error {rel:.4f}")
        assert rel < TOLERANCE["q8_0"]

        _push_to_modelscope(export_dir, tmp_path, files)

        _push(export_dir, "huggingface", "tuneboard-user/tiny-public", env)  # public this time
        assert hub.pushed["tuneboard-user/tiny-public"]["private"] is False

        refused = RunConfig.from_yaml(cfg.to_yaml("export"), "export")
        refused.export.export_dir = str(tmp_path / "exports" / "never")
        no_token = {k: v for k, v in env.items() if k != "HF_TOKEN"}
        status, _ = _run_export(refused, tmp_path / "run-no-token", no_token)
        assert status["state"] == FAILED and "HF_TOKEN" in status["error"]
        assert status["error_record"]["key"] == "hub_token_missing"
        assert not (tmp_path / "exports" / "never").exists()  # refused before anything was written


def _push(folder: Path, hub: str, repo_id: str, env: dict) -> str:
    """engine.export_push.push_folder(private=False) in a process of its own (the clients read their endpoint
    variables on import); returns what it printed."""
    code = ("import sys; from pathlib import Path; from engine.export_push import push_folder; "
            "print(push_folder(Path(sys.argv[1]), sys.argv[2], sys.argv[3], False))")
    result = subprocess.run([sys.executable, "-c", code, str(folder), hub, repo_id], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def _push_to_modelscope(export_dir: Path, tmp_path: Path, files: list[str]) -> None:
    """The same export pushed, public, to the fake ModelScope hub by modelscope's own client (blobs and commit)."""
    with FakeModelScopeHub({}) as hub:
        output = _push(export_dir, "modelscope", "tuneboard-user/tiny-chat",
                       hub_client_env(tmp_path / "ms", ms=hub, token=True))
        pushed = hub.pushed["tuneboard-user/tiny-chat"]
        assert pushed["private"] is False
        assert sorted(pushed["files"]) == files
        for name in files:
            assert pushed["files"][name] == (export_dir / name).read_bytes(), name
        assert pushed["blobs"]  # the weights went as LFS blobs
        assert hub.token not in output


@pytest.mark.slow
def test_gptq_export_is_refused_without_cuda(tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal is for machines without it")
    cfg = RunConfig()
    cfg.export.export_dir = str(tmp_path / "exports" / "gptq")
    cfg.export.export_quantization_bit = "4"
    cfg.export.export_quantization_dataset = "identity"
    cfg.export.quantization_dataset_dir = str(ROOT / "assets" / "data")
    status, output = _run_export(cfg, tmp_path / "run-gptq", dict(os.environ, TUNEBOARD_WARM_WORKER="0"))
    assert status["state"] == FAILED
    record = status["error_record"]
    assert record["key"] == "gptq_needs_cuda" and record["field"] == "export.export_quantization_bit"
    assert "NVIDIA GPU (CUDA)" in status["error"] and "pip install gptqmodel" in status["error"]
    assert "Traceback" not in output
    assert json.loads((tmp_path / "run-gptq" / "status.json").read_text())["state"] == FAILED
