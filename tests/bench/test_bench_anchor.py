"""bench/anchor.py and the suite's side-by-side table: LLaMA-Factory's configurations filled in, its result files
read into figures, and ratios to it printed only from runs of the same invocation.

LLaMA-Factory itself is not installed here (nor in CI): a stand-in ``llamafactory-cli`` writes the result files
LLaMA-Factory writes (train_results.json, predict_results.json, generated_predictions.jsonl), so what is tested is
our side: the configuration it is given, the process run and measured, and the figures read back.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from bench import anchor as lf
from bench import suite
from bench.cuda_bench import SKIPPED, bench_cuda, cuda_config_text
from bench.predict_bench import our_figures

# In the style of ../shared/anchor/configs: placeholders with a "replace:" comment, comments elsewhere.
CONFIG = """\
# LLaMA-Factory SFT LoRA on CPU. Launch: llamafactory-cli train configs/x.yaml
### model
model_name_or_path: MODEL_DIR  # replace: the converted demo model folder

### dataset
dataset: identity_aurora
dataset_dir: DATA_DIR  # replace: this folder's data/
template: chatml
cutoff_len: 256

### output
output_dir: OUTPUT_DIR  # replace: a scratch folder
num_train_epochs: 3.0
bf16: {bf16}
use_cpu: true
"""

# Stands in for LLaMA-Factory's CLI: `llamafactory-cli train CONFIG` writes what its Trainer writes.
FAKE_CLI = """\
#!{python}
import json, sys, yaml
from pathlib import Path
cfg = yaml.safe_load(open(sys.argv[2]))
out = Path(cfg["output_dir"]); out.mkdir(parents=True, exist_ok=True)
ballast = bytearray(64 << 20)  # a peak memory to measure
if cfg.get("do_predict"):
    n = cfg["max_samples"]
    (out / "generated_predictions.jsonl").write_text("".join(json.dumps({{"predict": "x"}}) + "\\n" for _ in range(n)))
    results = {{"predict_runtime": 12.5, "predict_samples_per_second": n / 12.5, "predict_bleu-4": 1.0}}
    (out / "predict_results.json").write_text(json.dumps(results))
else:
    (out / "train_results.json").write_text(json.dumps({{"epoch": 3.0, "num_input_tokens_seen": 10617,
        "train_runtime": 70.0 if cfg["bf16"] else 100.0, "train_loss": 2.5}}))
"""


@pytest.fixture
def anchor_dir(tmp_path) -> Path:
    """An anchor folder like ../shared/anchor: configs/, data/ and a venv whose CLI is the stand-in."""
    root = tmp_path / "anchor dir"  # a space: paths must survive into YAML
    (root / "configs").mkdir(parents=True)
    for compute, name in lf.TRAIN_CONFIGS.items():
        (root / "configs" / name).write_text(CONFIG.format(bf16=str(compute == "bf16").lower()))
    (root / "data").mkdir()
    (root / "data" / "dataset_info.json").write_text(json.dumps({lf.DATASET: {"file_name": "x.json"}}))
    cli = root / "venv" / "bin" / "llamafactory-cli"
    cli.parent.mkdir(parents=True)
    cli.write_text(FAKE_CLI.format(python=sys.executable))
    cli.chmod(0o755)
    return root


def make_anchor(root: Path, with_venv: bool = True) -> lf.Anchor:
    return lf.Anchor(root / "venv" if with_venv else None, root / "data", root / "configs")


def test_fill_config_replaces_the_placeholders_with_paths_and_keeps_the_other_comments(tmp_path):
    model, data, out = tmp_path / "my model: v1", tmp_path / "data #2", tmp_path / "out"
    text = lf.fill_config(CONFIG.format(bf16="true"), model, data, out)
    parsed = yaml.safe_load(text)
    assert (parsed["model_name_or_path"], parsed["dataset_dir"], parsed["output_dir"]) == (str(model), str(data),
                                                                                           str(out))
    assert "replace:" not in text and "MODEL_DIR" not in text and "DATA_DIR" not in text
    assert text.startswith("# LLaMA-Factory SFT LoRA on CPU.") and "### dataset" in text
    assert parsed["bf16"] is True and parsed["use_cpu"] is True and parsed["dataset"] == lf.DATASET


def test_fill_config_refuses_a_configuration_without_its_placeholders(tmp_path):
    with pytest.raises(ValueError, match="output_dir: OUTPUT_DIR"):
        lf.fill_config(CONFIG.replace("OUTPUT_DIR", "/somewhere"), tmp_path, tmp_path, tmp_path)


def test_training_configuration_counts_real_tokens_and_writes_valid_yaml(anchor_dir, tmp_path):
    anchor = make_anchor(anchor_dir)
    anchor.check()
    text = lf.train_config_text(anchor, "bf16", tmp_path / "model", tmp_path / "out")
    parsed = lf.write_config(text, tmp_path / "c" / "lf.yaml")
    assert yaml.safe_load((tmp_path / "c" / "lf.yaml").read_text()) == parsed
    assert parsed["include_num_input_tokens_seen"] == "non_padding"
    assert parsed["dataset_dir"] == str((anchor_dir / "data").resolve()) and parsed["bf16"] is True
    with pytest.raises(ValueError, match="placeholders left"):
        lf.write_config(CONFIG.format(bf16="true"), tmp_path / "raw.yaml")
    # On a GPU the same configuration runs without use_cpu.
    assert yaml.safe_load(cuda_config_text(anchor, tmp_path / "model", tmp_path / "out"))["use_cpu"] is False


def test_prediction_configuration(tmp_path):
    text = lf.predict_config_text(tmp_path / "model", tmp_path / "data", tmp_path / "out", samples=50, batch_size=4,
                                  max_new_tokens=64, cutoff_len=256, bf16=False)
    cfg = yaml.safe_load(text)
    assert cfg["do_predict"] is True and cfg["predict_with_generate"] is True and cfg["do_sample"] is False
    assert (cfg["eval_dataset"], cfg["max_samples"], cfg["per_device_eval_batch_size"], cfg["max_new_tokens"]) == (
        lf.DATASET, 50, 4, 64)
    assert cfg["template"] == lf.TEMPLATE and cfg["bf16"] is False and "adapter_name_or_path" not in cfg
    assert "do_train" not in cfg and cfg["model_name_or_path"] == str(tmp_path / "model")


def test_anchor_check_names_what_is_missing(anchor_dir, tmp_path):
    with pytest.raises(ValueError, match="llamafactory-cli"):
        lf.Anchor(tmp_path / "no-venv", anchor_dir / "data", anchor_dir / "configs").check()
    with pytest.raises(ValueError, match="dataset_info.json"):
        lf.Anchor(None, tmp_path).check()
    make_anchor(anchor_dir, with_venv=False).check()  # the dataset alone is enough without LLaMA-Factory


def test_results_files_become_figures():
    figures = lf.train_figures({"num_input_tokens_seen": 10617, "train_runtime": 50.0, "train_loss": 2.0}, 1500.0)
    assert figures["tokens_per_s"] == pytest.approx(212.34) and figures["peak_rss_mb"] == 1500.0
    with pytest.raises(RuntimeError, match="num_input_tokens_seen"):
        lf.train_figures({"train_runtime": 50.0})
    predict = lf.predict_figures({"predict_runtime": 20.0, "predict_samples_per_second": 2.5}, 50)
    assert predict["predictions_per_s"] == 2.5
    # Ours: the eval job's pass time less its loss batches.
    status = {"metrics": {"model": {"runtime_s": 30.0}}}
    events = [{"phase": "loss", "elapsed_s": 1.0}, {"phase": "loss", "elapsed_s": 5.0},
              {"phase": "predict", "elapsed_s": 20.0}]
    assert our_figures(status, events, 50)["predictions_per_s"] == 2.0


def test_llamafactory_runs_are_measured_from_its_result_files(anchor_dir, tmp_path):
    anchor = make_anchor(anchor_dir)
    best = lf.run_train(anchor, "bf16", tmp_path / "model", tmp_path / "train")
    assert (best["tokens"], best["tokens_per_s"], best["train_loss"]) == (10617, round(10617 / 70.0, 2), 2.5)
    assert best["peak_rss_mb"] > 64  # the process's own ru_maxrss, its 64 MB ballast included
    predict = lf.run_predict(anchor, tmp_path / "model", tmp_path / "predict", samples=7, batch_size=4,
                             max_new_tokens=64, cutoff_len=256, bf16=False)
    assert (predict["samples"], predict["predictions_per_s"]) == (7, round(7 / 12.5, 3))
    assert yaml.safe_load((tmp_path / "predict" / "lf-predict.yaml").read_text())["max_samples"] == 7


def test_prediction_needs_the_metrics_extra(anchor_dir):
    python = anchor_dir / "venv" / "bin" / "python"
    python.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'jieba'\" >&2\nexit 1\n")
    python.chmod(0o755)
    with pytest.raises(ValueError, match="pip install jieba nltk rouge-chinese.*jieba"):
        make_anchor(anchor_dir).check_predict()


def test_a_failed_llamafactory_run_says_why(anchor_dir, tmp_path):
    cli = anchor_dir / "venv" / "bin" / "llamafactory-cli"
    cli.write_text(f"#!{sys.executable}\nimport sys\nprint('ValueError: no such dataset')\nsys.exit(3)\n")
    with pytest.raises(RuntimeError, match="exited with 3(.|\n)*no such dataset"):
        lf.run_train(make_anchor(anchor_dir), "fp32", tmp_path / "model", tmp_path / "train")


def test_partners_and_side_by_side_only_from_variants_measured_now():
    assert lf.partner("bf16", ["fp32", "bf16"]) == "bf16"
    assert lf.partner("fp32", ["fp32", "fp32_gc"]) == "fp32" and lf.partner("fp32_gc", ["fp32", "fp32_gc"]) is None
    assert lf.partner("fp32_gc", ["fp32_gc"]) == "fp32" and lf.partner("fp32_padded", ["fp32_padded"]) is None
    train = {"bf16": {"tokens_per_s": 600.0, "peak_rss_mb": 1400.0, "tokens": 10617},
             "fp32": {"tokens_per_s": 400.0, "peak_rss_mb": 1500.0, "tokens": 10617},
             "fp32_gc": {"tokens_per_s": 300.0, "peak_rss_mb": 1200.0, "tokens": 10617},
             "llamafactory": {"bf16": {"tokens_per_s": 200.0, "peak_rss_mb": 2000.0, "tokens": 10617},
                              "fp32": {"tokens_per_s": 150.0, "peak_rss_mb": 1500.0, "tokens": 10617}}}
    rows = {(r["figure"], r["ours"]): r["ratio"] for r in lf.side_by_side(train, ["bf16", "fp32", "fp32_gc"])}
    assert rows == {("tokens_per_s", "bf16"): 3.0, ("tokens_per_s", "fp32"): round(400 / 150, 3),
                    ("peak_rss_mb", "bf16"): round(2000 / 1400, 3), ("peak_rss_mb", "fp32"): 1.0,
                    ("peak_rss_mb", "fp32_gc"): 1.25}
    # bf16 kept from an earlier invocation (--variants fp32): no ratio for it.
    assert {r["ours"] for r in lf.side_by_side(train, ["fp32"])} == {"fp32"}
    assert lf.side_by_side({k: v for k, v in train.items() if k != "llamafactory"}, ["bf16", "fp32"]) == []


def _train_result(tmp_path, with_anchor: bool) -> dict:
    ours = {"tokens_per_s": 640.0, "ceiling_tokens_per_s": 8000.0, "mfu": 0.08, "padding_share": 0.0,
            "peak_rss_mb": 1450.0, "train_loss": 2.1, "tokens": 10617}
    train = {"bf16": dict(ours), "fp32": dict(ours, tokens_per_s=450.0)}
    if with_anchor:  # from real (if stand-in) result files
        out = tmp_path / "lf"
        out.mkdir()
        (out / "train_results.json").write_text(json.dumps({"num_input_tokens_seen": 10617, "train_runtime": 50.0}))
        train["llamafactory"] = {"bf16": lf.train_figures(lf.read_results(out, "train"), 2000.0)}
    train["side_by_side"] = lf.side_by_side(train, ["bf16", "fp32"])
    return {"train": train, "cold": {"http_200_s": 4.2, "load_model_s": 1.0, "web_rss_loaded_mb": 600.0}}


def test_table_without_anchor_shows_other_machine_figures_and_no_ratio(tmp_path):
    text = suite.table(_train_result(tmp_path, with_anchor=False))
    header, *rows = text.splitlines()
    assert "LLaMA-Factory, other machine" in header and "vs LLaMA-Factory" in header
    assert "x" not in "".join(r for r in rows if not r.startswith("-"))  # no ratio anywhere
    assert f"{suite.ANCHOR['train_best_tokens_per_s']:g}" in text and f"{suite.ANCHOR['cold_http_s']:g} s" in text
    assert "beside LLaMA-Factory" not in text


def test_table_with_anchor_prints_ratios_of_the_same_invocation(tmp_path):
    text = suite.table(_train_result(tmp_path, with_anchor=True))
    speed = next(line for line in text.splitlines() if "tokens/s beside LLaMA-Factory its best" in line)
    assert "212.3" in speed and f"{640 / 212.34:.2f}x" in speed
    memory = next(line for line in text.splitlines() if "peak RSS beside LLaMA-Factory its best" in line)
    assert "2000 MB" in memory and f"{2000 / 1450:.2f}x less memory" in memory
    assert "as shipped" not in text  # no fp32 run of LLaMA-Factory: no ratio for ours in fp32
    tokens = next(line for line in text.splitlines() if line.startswith("train real tokens fed"))
    assert "10617" in tokens and "1.00x" in tokens


def test_table_predict_and_cuda_rows():
    result = {"predict": {"settings": {"batch_size": 4, "max_new_tokens": 64},
                          "ours": {"samples": 50, "predictions_per_s": 3.0},
                          "llamafactory": {"predictions_per_s": 1.5}, "ratio": 2.0},
              "cuda": {"skipped": SKIPPED}}
    text = suite.table(result)
    line = next(line for line in text.splitlines() if line.startswith("predictions/s"))
    assert "1.5" in line and "2.00x" in line
    assert SKIPPED in text


def test_cuda_section_is_skipped_without_a_cuda_device(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: the section runs for real")
    assert bench_cuda(tmp_path, 1, [], None, None, None) == {"skipped": SKIPPED}


def test_suite_refuses_a_missing_anchor_before_running_anything(anchor_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        suite.main(["--anchor", str(tmp_path / "nothing"), "--anchor-data", str(anchor_dir / "data"),
                    "--sections", "train", "--out", str(tmp_path / "r.json")])
    assert "llamafactory-cli" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_the_shipped_configurations_fill_in_where_the_anchor_folder_is_present(tmp_path):
    if not (lf.ANCHOR_DIR / "configs").is_dir():
        pytest.skip(f"no {lf.ANCHOR_DIR} here")
    anchor = lf.Anchor(None, lf.ANCHOR_DIR / "data")
    for compute in lf.TRAIN_CONFIGS:
        cfg = yaml.safe_load(lf.train_config_text(anchor, compute, tmp_path / "m", tmp_path / "o"))
        assert cfg["dataset"] == lf.DATASET and cfg["template"] == lf.TEMPLATE and cfg["bf16"] is (compute == "bf16")
    assert textwrap.dedent(lf.TOKEN_COUNTER).strip().endswith("non_padding")
