"""LLaMA-Factory run beside TuneBoard in one benchmark invocation (issue 23), so every ratio comes from one machine.

``../shared/anchor/`` (its README) holds LLaMA-Factory 0.9.5's recipe: the script that builds its virtualenv, the
dataset both sides train on (``identity_aurora``) and its two training configurations, with ``MODEL_DIR``,
``DATA_DIR`` and ``OUTPUT_DIR`` placeholders. This module fills them in (and writes the prediction
configuration in the same style), runs ``VENV/bin/llamafactory-cli train CONFIG`` as a user would, in a plain
environment, and reads the figures from the files LLaMA-Factory writes:

- training: tokens/s = real (non-padding) tokens fed / ``train_runtime`` (``train_results.json``; the tokens are
  counted by its Trainer, ``include_num_input_tokens_seen: non_padding``, a counter that changes nothing else);
  peak memory = the process's ru_maxrss (wait4), as for our runs;
- predictions (``do_predict`` with generation): samples / ``predict_runtime`` (``predict_results.json``).

LLaMA-Factory gets the suite's own environment, nothing of our jobs' CPU tuning. On a machine shared with other
work, export OMP_WAIT_POLICY=PASSIVE before the suite (our jobs give up threads to busy processes themselves,
engine.core.cpu_threads): with OpenMP's default spinning waits LLaMA-Factory's fp32 run took 40 s a step on a
2-core machine three agents shared, 3 s with it.
Its predictions need its metrics extra (jieba, nltk, rouge-chinese) in the virtualenv.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.harness import ROOT, run_measured

ANCHOR_DIR = ROOT.parent / "shared" / "anchor"
DATASET = "identity_aurora"
TEMPLATE = "chatml"  # LLaMA-Factory's configurations' template: no system prompt, as in its 3,539 tokens per epoch
PLACEHOLDERS = {"model_name_or_path": "MODEL_DIR", "dataset_dir": "DATA_DIR", "output_dir": "OUTPUT_DIR"}
# LLaMA-Factory's configurations, by the compute type of ours each is measured beside.
TRAIN_CONFIGS = {"fp32": "lf_sft_lora_fp32.yaml", "bf16": "lf_sft_lora_bf16_nogc.yaml"}
TRAIN_LABELS = {"fp32": "as shipped: fp32, gradient checkpointing", "bf16": "its best: bf16, no checkpointing"}
TOKEN_COUNTER = ("\n# Added by bench/anchor.py: the Trainer counts the real (non-padding) tokens it is fed.\n"
                 "include_num_input_tokens_seen: non_padding\n")

# do_predict on the base model, written in the style of the training configurations.
PREDICT_CONFIG = """\
# LLaMA-Factory batch prediction (do_predict with generation) on CPU, base model, greedy. Written by bench/anchor.py.
### model
model_name_or_path: MODEL_DIR  # replace: the converted demo model folder

### method
stage: sft
do_predict: true
finetuning_type: lora  # no adapter_name_or_path: the base model is used

### dataset
eval_dataset: {dataset}
dataset_dir: DATA_DIR  # replace: the anchor's data/
template: {template}
cutoff_len: {cutoff_len}
max_samples: {samples}
overwrite_cache: true

### output
output_dir: OUTPUT_DIR  # replace: a scratch folder
overwrite_output_dir: true
report_to: none

### eval
per_device_eval_batch_size: {batch_size}
predict_with_generate: true
do_sample: false
max_new_tokens: {max_new_tokens}
bf16: {bf16}
use_cpu: true
"""


@dataclass
class Anchor:
    """Where LLaMA-Factory's side comes from. ``venv`` None: the shared dataset is used, LLaMA-Factory is not run."""
    venv: Path | None
    data_dir: Path
    configs_dir: Path = ANCHOR_DIR / "configs"

    @property
    def cli(self) -> Path:
        return Path(self.venv) / "bin" / "llamafactory-cli"

    def check(self) -> None:
        """A ValueError saying what is missing, before any run starts."""
        if not (Path(self.data_dir) / "dataset_info.json").is_file():
            raise ValueError(f"--anchor-data: no dataset_info.json in {self.data_dir}")
        if self.venv is not None:
            if not self.cli.is_file():
                raise ValueError(f"--anchor: no {self.cli} (build it with {ANCHOR_DIR}/setup_lf_venv.sh VENV)")
            missing = [name for name in TRAIN_CONFIGS.values() if not (Path(self.configs_dir) / name).is_file()]
            if missing:
                raise ValueError(f"LLaMA-Factory configurations missing in {self.configs_dir}: {', '.join(missing)}")

    def allow_data(self) -> None:
        """Let this process and the jobs it starts read the anchor's data folder: jobs read data folders only inside
        the allowed roots."""
        from engine.core.paths import DATA_ROOTS_ENV

        os.environ[DATA_ROOTS_ENV] = os.pathsep.join(filter(None, [os.environ.get(DATA_ROOTS_ENV), str(self.data_dir)]))

    def check_predict(self) -> None:
        """A ValueError unless the virtualenv has what LLaMA-Factory's do_predict scores its answers with."""
        probe = subprocess.run([str(Path(self.venv) / "bin" / "python"), "-c", "import jieba, nltk, rouge_chinese"],
                               capture_output=True, text=True, check=False)
        if probe.returncode:
            raise ValueError(f"LLaMA-Factory's do_predict needs its metrics extra: {self.venv}/bin/pip install "
                             f"jieba nltk rouge-chinese ({probe.stderr.strip().splitlines()[-1]})")


def fill_config(text: str, model_dir: Path, data_dir: Path, output_dir: Path) -> str:
    """``text`` (a LLaMA-Factory YAML configuration) with its three placeholders replaced by the folders, written as
    quoted YAML strings so any path reads back as itself (the "replace:" comment on those lines dropped, the
    others kept). A ValueError if a placeholder is not
    there to replace."""
    values = {"model_name_or_path": model_dir, "dataset_dir": data_dir, "output_dir": output_dir}
    for key, placeholder in PLACEHOLDERS.items():
        pattern = re.compile(rf"^({key}:[ \t]*){placeholder}(?:[ \t]+#.*)?$", re.MULTILINE)
        text, count = pattern.subn(lambda m, key=key: m.group(1) + json.dumps(str(Path(values[key]).resolve())),
                                   text)
        if count != 1:
            raise ValueError(f"the configuration has no single '{key}: {placeholder}' line to fill in")
    return text


def write_config(text: str, path: Path) -> dict:
    """Write ``text`` to ``path`` and return it parsed, checked to hold no placeholder any more."""
    parsed = yaml.safe_load(text)
    left = [key for key, placeholder in PLACEHOLDERS.items() if parsed.get(key) == placeholder]
    if left:
        raise ValueError(f"placeholders left in {path}: {', '.join(left)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return parsed


def train_config_text(anchor: Anchor, compute: str, model_dir: Path, output_dir: Path) -> str:
    text = (Path(anchor.configs_dir) / TRAIN_CONFIGS[compute]).read_text(encoding="utf-8")
    return fill_config(text, model_dir, anchor.data_dir, output_dir).rstrip("\n") + "\n" + TOKEN_COUNTER


def predict_config_text(model_dir: Path, data_dir: Path, output_dir: Path, *, samples: int, batch_size: int,
                        max_new_tokens: int, cutoff_len: int, bf16: bool) -> str:
    text = PREDICT_CONFIG.format(dataset=DATASET, template=TEMPLATE, cutoff_len=cutoff_len, samples=samples,
                                 batch_size=batch_size, max_new_tokens=max_new_tokens, bf16=str(bf16).lower())
    return fill_config(text, model_dir, data_dir, output_dir)


def read_results(output_dir: Path, split: str) -> dict:
    """``{split}_results.json`` of a LLaMA-Factory run (train, predict)."""
    path = Path(output_dir) / f"{split}_results.json"
    if not path.is_file():
        raise RuntimeError(f"LLaMA-Factory wrote no {path.name} in {output_dir}")
    return json.loads(path.read_text(encoding="utf-8"))


def train_figures(results: dict, peak_rss_mb: float | None = None) -> dict:
    """Throughput, loss and memory of a training run from its train_results.json."""
    tokens = results.get("num_input_tokens_seen")
    if not tokens:
        raise RuntimeError("train_results.json has no num_input_tokens_seen (include_num_input_tokens_seen unset)")
    runtime = float(results["train_runtime"])
    return {"tokens": int(tokens), "runtime_s": runtime, "tokens_per_s": round(tokens / runtime, 2),
            "train_loss": results.get("train_loss"), "epochs": results.get("epoch"),
            "peak_rss_mb": None if peak_rss_mb is None else round(peak_rss_mb, 1)}


def predict_figures(results: dict, samples: int, peak_rss_mb: float | None = None) -> dict:
    """Predictions per second of a do_predict run: ``samples`` (the lines of generated_predictions.jsonl) over
    predict_runtime (which, in the Trainer, includes LLaMA-Factory's ROUGE/BLEU scoring of the answers)."""
    runtime = float(results["predict_runtime"])
    return {"samples": samples, "runtime_s": runtime, "predictions_per_s": round(samples / runtime, 3),
            "peak_rss_mb": None if peak_rss_mb is None else round(peak_rss_mb, 1)}


def run_config(anchor: Anchor, text: str, workdir: Path, what: str) -> tuple[Path, float]:
    """Write the configuration ``text`` (its OUTPUT_DIR already ``workdir/out``) and run LLaMA-Factory on it:
    (its output folder, its peak resident memory in MB)."""
    config = workdir / f"{what}.yaml"
    parsed = write_config(text, config)
    code, peak_mb = run_measured([str(anchor.cli), "train", str(config)], workdir / f"{what}.log", cwd=workdir)
    if code:
        tail = (workdir / f"{what}.log").read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
        raise RuntimeError(f"LLaMA-Factory ({what}) exited with {code}:\n" + "\n".join(tail))
    return Path(parsed["output_dir"]), peak_mb


def run_train(anchor: Anchor, compute: str, model_dir: Path, workdir: Path) -> dict:
    """One LLaMA-Factory training run of its ``compute`` configuration (fp32: as shipped; bf16: its best)."""
    workdir.mkdir(parents=True)
    out, peak_mb = run_config(anchor, train_config_text(anchor, compute, model_dir, workdir / "out"), workdir,
                        f"lf-train-{compute}")
    return train_figures(read_results(out, "train"), peak_mb)


def run_predict(anchor: Anchor, model_dir: Path, workdir: Path, **settings) -> dict:
    """One LLaMA-Factory do_predict run (``settings``: predict_config_text's)."""
    workdir.mkdir(parents=True)
    text = predict_config_text(model_dir, anchor.data_dir, workdir / "out", **settings)
    out, peak_mb = run_config(anchor, text, workdir, "lf-predict")
    with open(out / "generated_predictions.jsonl", encoding="utf-8") as fh:
        samples = sum(1 for line in fh if line.strip())
    return predict_figures(read_results(out, "predict"), samples, peak_mb)


def summary(runs: list[dict], key: str) -> dict:
    """The median of each numeric figure over the repeats, and every repeat's ``key``."""
    numeric = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    out = {k: round(statistics.median(r[k] for r in runs if r[k] is not None), 3) for k in numeric}
    out["each"] = [r[key] for r in runs]
    return out


# Side by side, from runs of one invocation: (our variant, LLaMA-Factory's configuration). Speed: ours in bf16
# against its best, ours in fp32 against it as shipped. Memory: the same pairs, and our fp32 run with gradient
# checkpointing (its like-for-like setting) against it as shipped.
SPEED_PAIRS = (("bf16", "bf16"), ("bf16_compile", "bf16"), ("fp32", "fp32"))
MEMORY_PAIRS = (("bf16", "bf16"), ("bf16_compile", "bf16"), ("fp32", "fp32"), ("fp32_gc", "fp32"))


def partner(variant: str, measured: list[str]) -> str | None:
    """The LLaMA-Factory configuration run alternating with our ``variant`` (each beside one of ours only)."""
    if variant == "bf16":
        return "bf16"
    if variant == "fp32" or (variant == "fp32_gc" and "fp32" not in measured):
        return "fp32"
    return None


def side_by_side(train: dict, measured: list[str]) -> list[dict]:
    """The ratios to LLaMA-Factory, each from our variants ``measured`` in this invocation and LLaMA-Factory's runs
    of the same invocation (``train["llamafactory"]``, which only an invocation with --anchor writes)."""
    theirs = train.get("llamafactory") or {}
    rows = []
    for figure, pairs in (("tokens_per_s", SPEED_PAIRS), ("peak_rss_mb", MEMORY_PAIRS)):
        for ours, config in pairs:
            if ours not in measured or config not in theirs or not train.get(ours):
                continue
            a, b = train[ours][figure], theirs[config][figure]
            # Said so that more is better: x faster, x less memory.
            rows.append({"figure": figure, "ours": ours, "llamafactory": config, "ours_value": a, "their_value": b,
                         "ratio": round(a / b if figure == "tokens_per_s" else b / a, 3),
                         "tokens": [train[ours].get("tokens"), theirs[config].get("tokens")]})
    return rows
