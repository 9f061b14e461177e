"""Batch predictions per second: Evaluate & Predict's job against LLaMA-Factory's do_predict, on the same samples.

Ours runs as the Evaluate tab runs it (``python -m engine eval run.yaml``, engine.evaluate.run): the loss pass,
then the answers generated in left-padded batches and scored. Its prediction time is the job's pass time less its
loss batches (from events.jsonl), so it counts generation and scoring, as LLaMA-Factory's ``predict_runtime``
does. Both sides: the base demo model, the first ``SAMPLES`` rows of identity_aurora under the chatml template,
greedy, at most ``MAX_NEW_TOKENS`` new tokens, the same batch size and weights dtype; alternated per repeat.
"""

from __future__ import annotations

from pathlib import Path

from bench import anchor as lf
from bench.harness import run_engine_job

SAMPLES = 50
MAX_NEW_TOKENS = 64
CUTOFF_LEN = 256


def predict_config(model: str, data_dir: Path, samples: int = SAMPLES, max_new_tokens: int = MAX_NEW_TOKENS):
    """The Evaluate tab's configuration: predictions on, greedy, its default batch size."""
    from engine.core.config import RunConfig

    cfg = RunConfig()
    cfg.model.model_name_or_path, cfg.model.template = model, lf.TEMPLATE
    cfg.data.dataset_dir, cfg.data.datasets = str(data_dir), [lf.DATASET]
    cfg.data.max_samples, cfg.data.cutoff_len = samples, CUTOFF_LEN
    cfg.eval.predict, cfg.eval.temperature, cfg.eval.max_new_tokens = True, 0.0, max_new_tokens
    cfg.validate("eval")
    return cfg


def our_figures(status: dict, events: list[dict], predictions: int) -> dict:
    """Predictions per second of a finished eval job without a checkpoint (one pass, metrics key "model")."""
    metrics = status["metrics"]["model"]
    loss_s = max((e["elapsed_s"] for e in events if e.get("phase") == "loss"), default=0.0)
    seconds = metrics["runtime_s"] - loss_s
    return {"samples": predictions, "runtime_s": round(seconds, 2),
            "predictions_per_s": round(predictions / seconds, 3), "loss_s": loss_s}


def run_ours(cfg, run_dir: Path) -> dict:
    run, status, peak_mb = run_engine_job(run_dir, cfg, "eval")
    with open(run.path / "predictions.jsonl", encoding="utf-8") as fh:
        predictions = sum(1 for line in fh if line.strip())
    return {**our_figures(status, run.read_events(), predictions), "peak_rss_mb": round(peak_mb, 1),
            "dtype": status["dtype"]}


def bench_predict(workdir: Path, repeats: int, model: str, anchor: lf.Anchor) -> dict:
    """Ours (and, with ``anchor.venv``, LLaMA-Factory's) predictions per second, alternated per repeat. (The
    suite checks ``anchor.check_predict()`` before any of its sections runs.)"""
    from engine.core.demo_model import converted_dir

    cfg = predict_config(model, anchor.data_dir)
    ours, theirs = [], []
    for i in range(repeats):
        ours.append(run_ours(predict_config(model, anchor.data_dir), workdir / f"predict-{i}"))
        # LLaMA-Factory loads the weights in the dtype our first job took (chat's: bf16 where this CPU's products are
        # fast), as that job measured it, not as a probe of our own might decide near the threshold
        bf16 = ours[0]["dtype"] == "bf16"
        settings = dict(samples=SAMPLES, batch_size=cfg.eval.batch_size, max_new_tokens=MAX_NEW_TOKENS,
                        cutoff_len=CUTOFF_LEN, bf16=bf16)
        print(f"  predict {i + 1}/{repeats}: {ours[-1]['predictions_per_s']:.2f} predictions/s "
              f"({ours[-1]['samples']} in {ours[-1]['runtime_s']:.1f} s)", flush=True)
        if anchor.venv is not None:
            theirs.append(lf.run_predict(anchor, converted_dir(), workdir / f"lf-predict-{i}", **settings))
            print(f"  LLaMA-Factory do_predict {i + 1}/{repeats}: {theirs[-1]['predictions_per_s']:.2f} "
                  f"predictions/s ({theirs[-1]['samples']} in {theirs[-1]['runtime_s']:.1f} s)", flush=True)
    out = {"settings": {**settings, "dtype": "bf16" if bf16 else "fp32", "greedy": True},
           "ours": lf.summary(ours, "predictions_per_s")}
    if theirs:
        out["llamafactory"] = lf.summary(theirs, "predictions_per_s")
        out["ratio"] = round(out["ours"]["predictions_per_s"] / out["llamafactory"]["predictions_per_s"], 3)
    return out

