"""The fastest the training benchmark's steps could run on this machine: their necessary products timed alone.

`bench/suite.py --anchor` trains the demo model with LoRA on identity_aurora (4 samples a step, 75 steps) and divides
by LLaMA-Factory's best configuration. This script asks what ratio the machine allows at all: it takes the run's
real steps (the encoded samples, four to a packed row, bf16 rows rounded up to 16 tokens as the trainer pads them)
and times, each alone on warm caches and at its best of several calls, the work no implementation of that step
can skip:

- base projections: each layer's q/k/v, o, gate, up and down in bf16, forward and the input's gradient (the
  frozen weights need none of their own);
- output layer: the answer rows against the vocabulary, forward and the hidden rows' gradient;
- LoRA rank-r products: per projection two forward and four backward (the adapters' and the input's gradients);
- attention: each sample causal on its own, fp32 (what the trainer runs on the CPU), forward and backward.

Everything between them (norms, activations, rotary, residuals, casts, the optimizer, Python) counted as free,
so the tokens per second printed are an upper bound; with ``--anchor LF_VENV`` LLaMA-Factory's best configuration
runs in the same invocation and the bound is printed as a ratio to it.

    python bench/train_floor.py [--anchor LF_VENV] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import anchor as lf
from bench.harness import ROOT

RESULTS = ROOT / "bench" / "results" / "train_floor.json"
BATCH = 4
BF16_ROW_MULTIPLE = 16


def step_shapes(data_dir: Path) -> list[dict]:
    """One epoch's steps of the benchmark run: the packed row's length (padded as the bf16 trainer pads it), its
    answer tokens and its samples' lengths, in the dataset's order (the trainer shuffles; each epoch holds the same
    samples)."""
    from bench.suite import train_config
    from engine.core.encode import encode_dataset
    from engine.modeling.models import load_tokenizer

    cfg = train_config(Path(tempfile.mkdtemp()), "bf16", data_dir=data_dir)
    rows, _ = encode_dataset(cfg, load_tokenizer(cfg.model.model_name_or_path), log=lambda *_: None)
    steps = []
    for start in range(0, len(rows), BATCH):
        batch = rows[start:start + BATCH]
        lengths = [len(r["input_ids"]) for r in batch]
        real = sum(lengths)
        steps.append({"tokens": real, "rows": -(-real // BF16_ROW_MULTIPLE) * BF16_ROW_MULTIPLE, "lengths": lengths,
                      # a row's loss reads the logits before each answer token
                      "answers": sum(sum(1 for t in r["labels"] if t != -100) for r in batch)})
    return steps


def best_ms(fn, calls: int = 15) -> float:
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def step_floor(shapes: dict, config, rank: int) -> dict:
    """Milliseconds of each kind of necessary product for one step of ``shapes`` (the model's ``config``)."""
    import torch
    import torch.nn.functional as F

    bf16 = torch.bfloat16
    h, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or h // config.num_attention_heads
    q_out, kv_out = config.num_attention_heads * head_dim, config.num_key_value_heads * head_dim
    projections = [(q_out, h), (kv_out, h), (kv_out, h), (h, q_out), (inter, h), (inter, h), (h, inter)]
    m = shapes["rows"]
    base = lora = 0.0
    for out_f, in_f in projections:
        w = torch.randn(out_f, in_f, dtype=bf16)
        x, g = torch.randn(m, in_f, dtype=bf16), torch.randn(m, out_f, dtype=bf16)
        base += best_ms(lambda: F.linear(x, w)) + best_ms(lambda: g @ w)
        a, b = torch.randn(rank, in_f, dtype=bf16), torch.randn(out_f, rank, dtype=bf16)
        inner = torch.randn(m, rank, dtype=bf16)
        lora += best_ms(lambda: (F.linear(F.linear(x, a), b), g @ b, g.t() @ inner, inner.t() @ x, inner @ a))
    heads, groups = config.num_attention_heads, config.num_attention_heads // config.num_key_value_heads

    samples = [(torch.randn(1, heads, n, head_dim, requires_grad=True),
                *(torch.randn(1, heads // groups, n, head_dim, requires_grad=True) for _ in range(2)),
                torch.randn(1, heads, n, head_dim)) for n in shapes["lengths"]]

    def attention():
        for q, k, v, g in samples:
            torch.autograd.grad(F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=groups > 1),
                                (q, k, v), g)

    vocab = torch.randn(config.vocab_size, h, dtype=bf16)
    hidden, grad = torch.randn(shapes["answers"], h, dtype=bf16), torch.randn(shapes["answers"], config.vocab_size,
                                                                                  dtype=bf16)
    output = best_ms(lambda: F.linear(hidden, vocab)) + best_ms(lambda: grad @ vocab)
    return {"base_ms": base * layers, "lora_ms": lora * layers, "attention_ms": best_ms(attention, 5) * layers,
            "output_ms": output}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchor", type=Path, help="LLaMA-Factory 0.9.5 virtualenv: its best configuration beside")
    parser.add_argument("--anchor-data", type=Path, default=lf.ANCHOR_DIR / "data")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    anchor = lf.Anchor(args.anchor, args.anchor_data)
    anchor.check()
    anchor.allow_data()

    import torch
    from transformers import AutoConfig

    from bench.suite import cpu_model
    from engine.core.demo_model import converted_dir, ensure_demo_model

    ensure_demo_model()
    config = AutoConfig.from_pretrained(converted_dir())
    steps = step_shapes(anchor.data_dir)
    kinds = ("base_ms", "lora_ms", "attention_ms", "output_ms")
    floors, lf_runs = [], []
    workdir = Path(tempfile.mkdtemp(prefix="train-floor-"))
    for i in range(args.repeats):
        per_step = [step_floor(s, config, rank=8) for s in steps]
        floors.append({k: statistics.fmean(p[k] for p in per_step) for k in kinds})
        print(f"  floor {i + 1}/{args.repeats}: " + ", ".join(f"{k[:-3]} {floors[-1][k]:.1f} ms" for k in kinds),
              flush=True)
        if anchor.venv:
            lf_runs.append(lf.run_train(anchor, "bf16", converted_dir(), workdir / f"lf-{i}"))
            print(f"  LLaMA-Factory bf16 {i + 1}/{args.repeats}: {lf_runs[-1]['tokens_per_s']:.1f} tokens/s",
                  flush=True)
    floor = {k: statistics.median(f[k] for f in floors) for k in kinds}
    tokens = statistics.fmean(s["tokens"] for s in steps)
    ms = sum(floor.values())
    out = {"cpu": cpu_model(), "threads": torch.get_num_threads(),
           "steps_per_epoch": len(steps), "real_tokens_per_step": round(tokens, 1),
           "rows_per_step": round(statistics.fmean(s["rows"] for s in steps), 1),
           "answer_tokens_per_step": round(statistics.fmean(s["answers"] for s in steps), 1),
           **{k: round(v, 2) for k, v in floor.items()}, "floor_ms_per_step": round(ms, 2),
           "floor_tokens_per_s": round(tokens / ms * 1e3, 1)}
    print(f"\nA step: {tokens:.1f} real tokens in a row of {out['rows_per_step']:.0f}, "
          f"{out['answer_tokens_per_step']:.0f} of them answers. Its necessary products alone:")
    for k in kinds:
        print(f"  {k[:-3]:<10} {floor[k]:6.1f} ms")
    print(f"  {'total':<10} {ms:6.1f} ms: at most {out['floor_tokens_per_s']:.0f} tokens/s")
    if lf_runs:
        theirs = statistics.median(r["tokens_per_s"] for r in lf_runs)
        out["llamafactory_bf16_tokens_per_s"] = round(theirs, 1)
        out["most_ratio"] = round(out["floor_tokens_per_s"] / theirs, 2)
        print(f"LLaMA-Factory's best configuration, same invocation: {theirs:.1f} tokens/s, so at most "
              f"{out['most_ratio']:.2f}x it on this machine, everything between the products free")
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
