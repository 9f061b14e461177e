"""Training throughput benchmark: the standard loss against the answer-only loss (engine/train/fast_loss.py).

Runs the baseline configuration (demo SmolLM2-135M-Instruct, LoRA rank 8 on all linear layers, batch 4,
cutoff 256, the identity data set with 100 samples, fp32) through ``python -m engine train`` -- the very
code path the web UI starts -- once with ``TUNEBOARD_FAST_LOSS=0`` and once with the default, and prints
tokens/s, padding share and training loss of each, plus their ratio.

    python bench/bench_train.py                 # 1 epoch, 1 repeat: a few minutes on 2 CPU cores
    python bench/bench_train.py --repeats 3     # medians of 3, the two modes alternating

tokens/s counts trained (non-padding) tokens over the Trainer's train_runtime (model loading excluded).
On a shared machine timings are noisy: the "others" column is the share of the machine's CPU time that
other processes used during each run; compare ratios within one invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import machine_cpu_seconds  # noqa: E402
from engine.core.config import RunConfig  # noqa: E402 - light: yaml only

MODES = {"standard": "0", "fast": "1"}  # value of TUNEBOARD_FAST_LOSS


def make_config(run_dir: Path, args) -> Path:
    cfg = RunConfig.from_dict({
        "model": {"model_name_or_path": args.model, "device": "cpu"},
        "data": {"datasets": ["identity"], "cutoff_len": args.cutoff_len, "max_samples": args.max_samples},
        "train": {"finetuning_type": "lora", "learning_rate": 5.0e-4, "num_train_epochs": args.epochs,
                  "per_device_train_batch_size": args.batch_size, "gradient_accumulation_steps": args.grad_accum,
                  "logging_steps": 5, "save_steps": 100_000, "compute_type": "fp32",
                  "output_dir": str(run_dir)},
        "lora": {"rank": 8, "alpha": 16, "dropout": 0.0, "target": "all"},
    })
    path = run_dir / "run.yaml"
    cfg.save(path)
    return path


def run_once(mode: str, args, workdir: Path, index: int) -> dict:
    run_dir = workdir / f"{mode}-{index}"
    run_dir.mkdir(parents=True)
    config = make_config(run_dir, args)
    env = {**os.environ, "TUNEBOARD_FAST_LOSS": MODES[mode]}
    before, usage0 = machine_cpu_seconds(), os.times()
    with open(run_dir / "stdout.log", "w", encoding="utf-8") as out:
        proc = subprocess.run([sys.executable, "-m", "engine", "train", str(config)], cwd=ROOT, env=env,
                              stdout=out, stderr=subprocess.STDOUT, check=False)
    after, usage1 = machine_cpu_seconds(), os.times()
    status = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    if proc.returncode != 0 or status.get("state") != "finished":
        tail = (run_dir / "stdout.log").read_text(encoding="utf-8")[-2000:]
        raise SystemExit(f"{mode} run failed ({status.get('error')}):\n{tail}")
    metrics = status["metrics"]
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
              if line.strip()]
    losses = [e["loss"] for e in events if "loss" in e]
    log_text = (run_dir / "stdout.log").read_text(encoding="utf-8")
    others = None
    if before and after:
        mine = usage1.children_user + usage1.children_system - usage0.children_user - usage0.children_system
        total = after[1] - before[1]
        others = max(0.0, (after[0] - before[0] - mine) / total) if total else None
    return {
        "mode": mode,
        "tokens_per_s": metrics["num_input_tokens_seen"] / metrics["train_runtime"],
        "runtime_s": metrics["train_runtime"],
        "tokens": metrics["num_input_tokens_seen"],
        "padding_share": metrics.get("padding_share"),
        "train_loss": metrics["train_loss"],
        "last_loss": losses[-1] if losses else float("nan"),
        "fast_active": "answer-only loss on" in log_text,
        "others": others,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=float, default=1.0, help="training epochs per run (default 1)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per mode; the table shows medians")
    parser.add_argument("--max-samples", type=int, default=100)
    parser.add_argument("--cutoff-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--model", default="demo/SmolLM2-135M-Instruct")
    parser.add_argument("--modes", default="standard,fast", help="comma-separated subset of standard,fast")
    parser.add_argument("--keep", metavar="DIR", help="keep the run folders under DIR (default: a temp folder)")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes: choose from {', '.join(MODES)}")

    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tuneboard-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {m: [] for m in modes}
    t0 = time.time()
    for rep in range(args.repeats):
        order = modes if rep % 2 == 0 else modes[::-1]  # alternate, so slow drift hits both modes alike
        for mode in order:
            r = run_once(mode, args, workdir, rep)
            results[mode].append(r)
            others = f", others used {100 * r['others']:.0f}% of the CPU" if r["others"] is not None else ""
            print(f"[{time.time() - t0:6.0f}s] {mode:8s} repeat {rep + 1}: {r['tokens_per_s']:.1f} tokens/s, "
                  f"train loss {r['train_loss']:.6f}{others}", flush=True)

    def med(mode, key):
        values = [r[key] for r in results[mode] if r[key] is not None]
        return statistics.median(values) if values else None

    print()
    print(f"config: LoRA r=8 all-linear, batch {args.batch_size} x accum {args.grad_accum}, cutoff {args.cutoff_len}, "
          f"identity x{args.max_samples}, {args.epochs:g} epoch(s), fp32, {args.repeats} repeat(s); "
          f"torch threads: {os.environ.get('OMP_NUM_THREADS', 'default')}")
    header = (f"{'mode':9s} {'tokens/s':>9s} {'runs':>22s} {'padding':>8s} {'train_loss':>11s} "
              f"{'last_loss':>10s} {'others':>7s}")
    print(header)
    print("-" * len(header))
    for mode in modes:
        runs = " ".join(f"{r['tokens_per_s']:.1f}" for r in results[mode])
        pad = med(mode, "padding_share")
        others = med(mode, "others")
        print(f"{mode:9s} {med(mode, 'tokens_per_s'):9.1f} {runs:>22s} "
              f"{(f'{100 * pad:.1f}%' if pad is not None else '-'):>8s} {med(mode, 'train_loss'):11.6f} "
              f"{med(mode, 'last_loss'):10.4f} {(f'{100 * others:.0f}%' if others is not None else '-'):>7s}")
    if "standard" in results and "fast" in results:
        std, fast = results["standard"], results["fast"]
        ratio = med("fast", "tokens_per_s") / med("standard", "tokens_per_s")
        pairs = [f["tokens_per_s"] / s["tokens_per_s"] for s, f in zip(std, fast)]
        loss_rel = abs(med("fast", "train_loss") - med("standard", "train_loss")) / abs(med("standard", "train_loss"))
        print(f"\nspeed-up fast/standard: {ratio:.2f}x (per repeat: {', '.join(f'{p:.2f}' for p in pairs)})")
        print(f"train loss relative difference: {loss_rel:.2e}")
        if not all(r["fast_active"] for r in fast):
            print("warning: the answer-only loss was not active in every fast run (see stdout.log)")
    print(f"run folders: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
