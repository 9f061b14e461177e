"""Evaluation, export and terminal chat on a real LoRA adapter trained on the demo model.

A tiny adapter is trained once (24 identity samples, 1 epoch) through the
subprocess runner; then ``python -m engine eval`` / ``export`` / ``chat`` run on
it as subprocesses, the way the web UI and a terminal user start them.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from engine.core.config import RunConfig
from engine.core.rundir import FAILED, FINISHED, STOPPED, RunDir
from tests.helpers.runs import tiny_train_config, wait_for_state
from webui import runner

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BASE = "demo/SmolLM2-135M-Instruct"
METRIC_KEYS = {"eval_loss", "perplexity", "rouge-1", "rouge-2", "rouge-l", "bleu-4", "samples", "runtime_s"}
ZH_QA = [
    {"instruction": "中国的首都是哪里？", "input": "", "output": "中国的首都是北京。"},
    {"instruction": "请用一句话介绍长城。", "input": "",
     "output": "长城是中国古代修建的伟大防御工程，全长两万多公里。"},
    {"instruction": "一年有几个季节？", "input": "", "output": "一年有四个季节：春天、夏天、秋天和冬天。"},
    {"instruction": "水在多少度结冰？", "input": "", "output": "在标准大气压下，水在零摄氏度结冰。"},
]


def _train_config() -> RunConfig:
    return tiny_train_config()


_launched: list[RunDir] = []


def _start(run: RunDir, cfg: RunConfig, command: str) -> RunDir:
    _launched.append(run)
    return runner.launch(run, cfg, command)


def _launch(name: str, cfg: RunConfig, command: str, timeout: float = 900) -> tuple[RunDir, dict]:
    run = runner.run_dir_for("SmolLM2-135M-Instruct", command, name)
    _start(run, cfg, command)
    return run, wait_for_state(run, timeout)


@pytest.fixture(scope="module", autouse=True)
def _end_leftover_processes():
    """Engine processes are detached by design; end any that a failed test left running."""
    yield
    import os
    import signal

    for run in _launched:
        pid = run.read_status().get("pid")
        if pid and run.read_status().get("state") in ("queued", "running"):
            with contextlib.suppress(OSError, ProcessLookupError):
                os.killpg(os.getpgid(int(pid)), signal.SIGKILL)


@pytest.fixture(scope="module")
def adapter_run(workdirs, demo_model_dir) -> RunDir:
    run = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", "eval-export-source")
    _start(run, _train_config(), "train")
    status = wait_for_state(run, 1200)
    assert status["state"] == FINISHED, run.log_tail(60)
    assert (run.path / "adapter_model.safetensors").is_file()
    return run


@pytest.fixture(scope="module")
def eval_data(tmp_path_factory) -> Path:
    """Held-out identity rows (not among the 24 trained on) and a Chinese-only dataset, with a registry."""
    folder = tmp_path_factory.mktemp("eval-data")
    identity = json.loads((ROOT / "assets" / "data" / "identity.json").read_text(encoding="utf-8"))
    (folder / "identity_heldout.json").write_text(json.dumps(identity[24:28], ensure_ascii=False), encoding="utf-8")
    (folder / "zh_qa.json").write_text(json.dumps(ZH_QA, ensure_ascii=False), encoding="utf-8")
    registry = {"identity_heldout": {"file_name": "identity_heldout.json"}, "zh_qa": {"file_name": "zh_qa.json"}}
    (folder / "dataset_info.json").write_text(json.dumps(registry), encoding="utf-8")
    return folder


def _eval_config(adapter: str, dataset_dir: Path, **eval_fields) -> RunConfig:
    cfg = RunConfig()
    cfg.model.model_name_or_path = BASE
    cfg.model.adapter_path = adapter
    cfg.data.dataset_dir = str(dataset_dir)
    cfg.data.datasets = ["identity_heldout", "zh_qa"]
    cfg.data.max_samples = 8
    cfg.data.cutoff_len = 128
    cfg.data.identity_name = "Nimbus"
    cfg.data.identity_author = "Acme Lab"
    cfg.eval.batch_size = 4
    cfg.eval.max_new_tokens = 12
    cfg.eval.compare_base = True
    for key, value in eval_fields.items():
        setattr(cfg.eval, key, value)
    cfg.validate("eval")
    return cfg


# -- metrics ---------------------------------------------------------------------------

def test_chinese_metrics_use_words():
    from engine.evaluate.metrics import corpus_scores, score_pair, tokenize

    same = "今天天气很好，我们一起去公园散步吧。"
    assert score_pair(same, same) == {"rouge-1": 100.0, "rouge-2": 100.0, "rouge-l": 100.0, "bleu-4": 100.0}
    pred, ref = "今天天气很好，我们去公园散步吧。", "今天天气不错，我们去公园玩吧。"
    assert len(pred.split()) == len(ref.split()) == 1  # whitespace splitting: one differing "word" each -> 0
    assert len(tokenize(ref)) >= 5
    scores = score_pair(pred, ref)
    for key in ("rouge-1", "rouge-2", "rouge-l", "bleu-4"):
        assert 0.0 < scores[key] < 100.0, (key, scores)
    assert score_pair("北京", "上海")["rouge-1"] == 0.0
    # mixed Chinese and English: English words stay whole and are lower-cased
    assert {"nimbus", "acme", "lab"} <= set(tokenize("我是Nimbus，由Acme Lab开发。"))
    assert corpus_scores([same, "北京"], [same, "上海"])["rouge-1"] == pytest.approx(50.0)


def test_english_metrics_sanity():
    from engine.evaluate.metrics import score_pair

    scores = score_pair("the cat sat on the mat", "the cat is on the mat")
    assert scores["rouge-1"] == pytest.approx(100 * 5 / 6, abs=1e-6)
    assert scores["rouge-2"] == pytest.approx(60.0, abs=1e-6)
    assert scores["rouge-l"] == pytest.approx(100 * 5 / 6, abs=1e-6)
    assert 0.0 < scores["bleu-4"] < 100.0
    assert score_pair("Hello, World!", "hello world")["rouge-1"] == 100.0  # case and punctuation do not count
    assert score_pair("completely different words", "nothing shared here") == dict.fromkeys(scores, 0.0)
    assert score_pair("", "some answer")["rouge-l"] == 0.0


# -- evaluation --------------------------------------------------------------------------

def test_eval_compares_finetuned_and_base(adapter_run: RunDir, eval_data: Path):
    run, status = _launch("eval-compare", _eval_config(str(adapter_run.path), eval_data), "eval")
    assert status["state"] == FINISHED, run.log_tail(60)
    assert status["error"] is None and status["pid"] > 0
    metrics = json.loads((run.path / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics) == {"fine-tuned", "base"}
    for key, m in metrics.items():
        assert set(m) == METRIC_KEYS, key
        for name, value in m.items():
            assert isinstance(value, (int, float)) and math.isfinite(value), (key, name, value)
        assert m["samples"] == 8  # 4 held-out identity + 4 Chinese
        assert m["eval_loss"] > 0 and m["perplexity"] == pytest.approx(math.exp(m["eval_loss"]), rel=1e-3)
        assert all(0.0 <= m[k] <= 100.0 for k in ("rouge-1", "rouge-2", "rouge-l", "bleu-4"))
    assert metrics["fine-tuned"]["eval_loss"] != metrics["base"]["eval_loss"]  # the adapter was attached
    assert status["metrics"] == metrics
    assert status["step"] == status["total_steps"] == 8  # 2 models x (loss + predict) x 2 batches
    # the weights' dtype, as the log names the precision (a benchmark loads the other tool's model in it)
    assert status["dtype"] in ("bf16", "fp32")
    assert f"(device cpu, {status['dtype']}" in run.log_path.read_text(encoding="utf-8")

    lines = (run.path / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 8
    records = [json.loads(line) for line in lines]
    for r in records:
        assert set(r) == {"prompt", "reference", "prediction", "base_prediction"}
        assert all(isinstance(v, str) for v in r.values()) and r["prompt"] and r["reference"]
    assert "Nimbus" in records[0]["reference"] and "{{" not in lines[0]  # identity placeholders filled
    assert [r["reference"] for r in records[4:]] == [q["output"] for q in ZH_QA]
    assert any(r["prediction"] != r["base_prediction"] for r in records)

    events = run.read_events()
    assert [e["step"] for e in events] == list(range(1, 9))
    for e in events:
        assert set(e) >= {"step", "total_steps", "phase", "elapsed_s", "remaining_s"}
        assert e["phase"] in ("loss", "predict") and e["total_steps"] == 8
    assert events[-1]["remaining_s"] == 0


def test_predictions_take_chat_s_decoding_and_keep_the_model_s_tokens(adapter_run: RunDir, eval_data: Path,
                                                                       tmp_path: Path, monkeypatch):
    """Predictions are generated as chat generates (engine.serve): the weights in chat's precision (bf16 where this
    CPU's bf16 products are fast, packed for oneDNN), the checkpoint's LoRA products without peft's module calls, and
    decoding steps of its own. Their tokens are those of the model's own forward (peft's layers) over the same
    weights, through the checkpoint and with it switched off."""
    import torch

    from engine.core.encode import training_formatter
    from engine.evaluate import run as evaluation
    from engine.modeling.models import load_with_checkpoint
    from engine.serve import decode_step, mixed_lora
    from engine.serve.bf16_decoding import decoding_choice
    from engine.serve.packed_linears import PackedLinears, packing_available

    cfg = _eval_config(str(adapter_run.path), eval_data, max_new_tokens=32)
    dtype = decoding_choice("cpu", str(ROOT / BASE)).dtype
    model, tokenizer, kind = load_with_checkpoint(BASE, str(adapter_run.path), dtype, log=lambda _line: None)
    model.eval()
    assert kind == "lora" and decode_step.use_decode_attention(evaluation._transformers_model(model))
    formatter = training_formatter(cfg, tokenizer)
    items = evaluation.prepare_items(cfg, formatter, evaluation.load_eval_samples(cfg), log=lambda _line: None)
    stop = types.SimpleNamespace(requested=False)
    steps = []
    step = decode_step._Step.step
    monkeypatch.setattr(decode_step._Step, "step",
                        lambda self, ids, *args: steps.append(ids.shape[0]) or step(self, ids, *args))
    from peft.tuners.lora import Linear as LoraLinear

    lora_products, lora_calls = [], []
    lora_forward = LoraLinear.forward
    monkeypatch.setattr(LoraLinear, "forward", lambda self, *args, **kw: lora_calls.append(1) or lora_forward(
        self, *args, **kw))
    lora_layers = sum(isinstance(m, LoraLinear) for m in model.modules())
    delta = mixed_lora._delta
    monkeypatch.setattr(mixed_lora, "_delta", lambda h, *args: lora_products.append(h.shape[0]) or delta(h, *args))
    packed = PackedLinears()

    def answers(name: str) -> list[str]:
        run = RunDir(tmp_path / name)
        run.path.mkdir()
        progress = evaluation.Progress(run, [("model", "predict")] * 2, log=lambda _line: None)
        torch.manual_seed(evaluation.GENERATION_SEED)
        return evaluation.generate_answers(model, tokenizer, formatter, items, cfg, "cpu", progress, stop, packed)

    for switched_off in (False, True):
        with model.disable_adapter() if switched_off else contextlib.nullcontext():
            steps.clear()
            lora_products.clear()
            lora_calls.clear()
            fast = answers(f"fast-{switched_off}")
            # through the checkpoint, its products taken for a batch's rows at once; switched off, none, and the
            # decoding steps call the base layers, not peft's (which the prompts of the two batches go through)
            assert set(lora_products) == (set() if switched_off else {4})
            assert len(lora_calls) == (2 * lora_layers if switched_off else 0)
            # the tokens after each batch's first were decoding steps of chat's, a batch's rows in one
            assert len(steps) > 10 and set(steps) == {4}
            assert len(packed) > 0 or not (dtype == torch.bfloat16 and packing_available())
            taken = len(steps)
            with monkeypatch.context() as own:  # the reference: the model's own forward, over the same linears
                own.setattr(decode_step, "applied", lambda *_args: contextlib.nullcontext({}))
                own.setattr(evaluation, "_through_checkpoint", lambda *_args: contextlib.nullcontext())
                assert answers(f"own-{switched_off}") == fast
            assert len(steps) == taken  # (no decoding step of chat's in the reference)
    assert any(answer for answer in fast)


def test_eval_failures_are_reported_in_words(adapter_run: RunDir, eval_data: Path, tmp_path: Path):
    run, status = _launch("eval-missing", _eval_config(str(tmp_path / "no-such-run"), eval_data), "eval")
    assert status["state"] == FAILED and "does not exist" in status["error"]
    pickle_only = tmp_path / "pickle-adapter"
    pickle_only.mkdir()
    (pickle_only / "adapter_config.json").write_text("{}")
    (pickle_only / "adapter_model.bin").write_bytes(b"\x80\x04.")
    cfg = _eval_config(str(pickle_only), eval_data)
    run, status = _launch("eval-pickle", cfg, "eval")
    assert status["state"] == FAILED and "pickle" in status["error"]
    cfg = _eval_config(str(adapter_run.path), eval_data)
    cfg.data.datasets = ["no_such_dataset"]
    run, status = _launch("eval-bad-data", cfg, "eval")
    assert status["state"] == FAILED and "no_such_dataset" in status["error"] and "not registered" in status["error"]
    assert not (run.path / "metrics.json").exists()


def test_eval_stops_on_sigterm(adapter_run: RunDir, eval_data: Path):
    cfg = _eval_config(str(adapter_run.path), eval_data, batch_size=1, max_new_tokens=64)
    run = runner.run_dir_for("SmolLM2-135M-Instruct", "eval", "eval-stop")
    _start(run, cfg, "eval")
    deadline = time.time() + 300
    while not run.read_events():
        assert time.time() < deadline, run.log_tail(40)
        assert run.live_status().get("state") in ("queued", "running"), run.log_tail(40)
        time.sleep(0.2)
    assert runner.stop(run)
    status = wait_for_state(run, 120)
    assert status["state"] == STOPPED, run.log_tail(40)
    assert status["step"] < status["total_steps"]
    assert not (run.path / "metrics.json").exists()


# -- export ---------------------------------------------------------------------------------

def _export_config(adapter: str, export_dir: Path, **export_fields) -> RunConfig:
    cfg = RunConfig()
    cfg.model.model_name_or_path = BASE
    cfg.model.adapter_path = adapter
    cfg.export.export_dir = str(export_dir)
    for key, value in export_fields.items():
        setattr(cfg.export, key, value)
    cfg.validate("export")
    return cfg


@pytest.fixture(scope="module")
def exported(adapter_run: RunDir, tmp_path_factory) -> tuple[Path, dict]:
    """The adapter merged and exported with a small shard size (fp32, ~540 MB -> 3 shards)."""
    export_dir = tmp_path_factory.mktemp("exports") / "nimbus-merged"
    run, status = _launch("export-lora", _export_config(str(adapter_run.path), export_dir, max_shard_size_gb=0.2),
                          "export")
    assert status["state"] == FINISHED, run.log_tail(60)
    return export_dir, status


def test_export_layout(exported, adapter_run: RunDir):
    export_dir, status = exported
    assert status["export_dir"] == str(export_dir) and status["error"] is None
    files = sorted(p.name for p in export_dir.iterdir())
    assert status["files"] == files
    shards = [f for f in files if f.startswith("model-") and f.endswith(".safetensors")]
    assert len(shards) >= 2 and "model.safetensors.index.json" in files
    index = json.loads((export_dir / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(shards)
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "README.md"):
        assert name in files, name
    readme = (export_dir / "README.md").read_text(encoding="utf-8")
    assert BASE in readme and "identity" in readme and str(adapter_run.path) in readme
    assert not list(export_dir.parent.glob(".*partial*"))  # the temporary build folder is gone


def test_export_round_trip_matches_peft(exported, adapter_run: RunDir, demo_model_dir: Path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    export_dir, _ = exported
    tokenizer = AutoTokenizer.from_pretrained(export_dir)
    merged = AutoModelForCausalLM.from_pretrained(export_dir).eval()
    assert merged.dtype == torch.float32  # auto keeps the base dtype
    messages = [{"role": "user", "content": "Who are you?"}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    base_tokenizer = AutoTokenizer.from_pretrained(demo_model_dir)
    assert base_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    base = AutoModelForCausalLM.from_pretrained(demo_model_dir, dtype=torch.float32)
    reference = PeftModel.from_pretrained(base, str(adapter_run.path)).eval()
    with torch.no_grad():
        got = merged(**inputs).logits[0, -1]
        want = reference(**inputs).logits[0, -1]
        with reference.disable_adapter():
            plain = reference(**inputs).logits[0, -1]
    diff = (got - want).abs().max().item()
    print(f"max |logit difference| merged export vs base+adapter (fp32): {diff:.3g}")
    assert diff < 1e-4
    assert (plain - want).abs().max().item() > 1e-2  # the adapter matters: the check above is not vacuous


def test_export_full_checkpoint_converts_dtype(exported, tmp_path: Path):
    """A whole-model folder (here: the first export) has nothing to merge; it is re-saved as bf16."""
    export_dir, _ = exported
    target = tmp_path / "as-bf16"
    cfg = _export_config(str(export_dir), target, export_dtype="bf16")
    cfg.model.template = "chatml"
    run, status = _launch("export-full", cfg, "export")
    assert status["state"] == FINISHED, run.log_tail(60)
    assert "nothing to merge" in run.log_path.read_text()
    assert json.loads((target / "config.json").read_text())["dtype"] == "bfloat16"
    assert "model.safetensors" in status["files"] and status["dtype"] == "bfloat16"
    from transformers import AutoTokenizer

    text = AutoTokenizer.from_pretrained(target).apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"  # the named template, baked in


def test_export_refuses_non_empty_folder_and_pickle(adapter_run: RunDir, tmp_path: Path):
    target = tmp_path / "occupied"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    run, status = _launch("export-occupied", _export_config(str(adapter_run.path), target), "export")
    assert status["state"] == FAILED and "not empty" in status["error"]
    assert [p.name for p in target.iterdir()] == ["keep.txt"] and (target / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["occupied"]  # no temporary folder left behind

    pickle_only = tmp_path / "pickle-adapter"
    pickle_only.mkdir()
    (pickle_only / "adapter_config.json").write_text("{}")
    (pickle_only / "adapter_model.bin").write_bytes(b"\x80\x04.")
    run, status = _launch("export-pickle", _export_config(str(pickle_only), tmp_path / "new"), "export")
    assert status["state"] == FAILED and "pickle" in status["error"]
    assert not (tmp_path / "new").exists()


# -- terminal chat ------------------------------------------------------------------------------

def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "engine", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0
    for command in ("train", "eval", "export", "chat", "check"):
        assert command in out.stdout


def test_terminal_chat_with_piped_stdin(adapter_run: RunDir):
    out = subprocess.run(
        [sys.executable, "-m", "engine", "chat", "--model", BASE, "--adapter", str(adapter_run.path),
         "--temperature", "0", "--max-new-tokens", "12", "--system", "Answer briefly."],
        input="Who are you?\n/clear\nhi\n/exit\nnever read\n", capture_output=True, text=True, cwd=ROOT,
        timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    answers = [line for line in out.stdout.splitlines() if line.startswith("Assistant: ")]
    assert len(answers) == 2, out.stdout
    assert all(len(a) > len("Assistant: ") for a in answers), out.stdout
    assert "never read" not in out.stdout  # /exit ended the session
    assert "conversation cleared" in out.stderr
