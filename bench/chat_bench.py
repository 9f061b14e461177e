"""The suite's chat section: streamed chat against today's plain ``generate`` and against the memory-bandwidth limit.

Decoding one token reads every weight once (the tied embedding / lm_head matrix once: the embedding reads one row
of it, the lm_head all of it), so tokens/s cannot pass bandwidth / weight bytes per token. In one process, on the
chat engine's torch thread (its thread count), this measures:

- the machine's memory read bandwidth: the best of several sums of a 1 GiB fp32 tensor (larger than the caches);
- the weight bytes read per decoded token of the model as chat loads it (on the CPU fp32, or bf16 where this
  machine's one-row bf16 products measure fast enough: engine.serve.bf16_decoding), hence the tokens/s limit;
- tokens/s of the streamed answer (ChatEngine.stream, what the Chat tab shows), of plain ``model.generate`` on the
  engine's own model (what streaming costs), and of the baseline: plain ``generate`` on the fp32 model with its
  default dynamic cache (how chat decoded before issue 23), the three alternating so drift on a shared machine hits
  all; time to first token, the seconds Load model took, and base -> adapter -> base switches.

    python bench/chat_bench.py [--repeats 3] [--adapter PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEMO = "demo/SmolLM2-135M-Instruct"
PROMPT = [{"role": "user", "content": "Tell me about the water cycle in a few sentences."}]


def _median(values):
    import statistics

    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def read_bandwidth(gib: float = 1.0, tries: int = 8) -> float:
    """Best bytes/s of summing a ``gib`` GiB fp32 tensor (run it on the thread that decodes: its thread count)."""
    import torch

    x = torch.ones(int(gib * 2**30) // 4)
    best = 0.0
    for _ in range(tries):
        t0 = time.perf_counter()
        x.sum()
        best = max(best, x.numel() * 4 / (time.perf_counter() - t0))
    return best


def weight_bytes_per_token(model) -> int:
    """Bytes of the weights one decoding step reads: every parameter once (tied ones share their storage)."""
    seen, total = set(), 0
    for p in model.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel() * p.element_size()
    return total


def _plain_generate(model, engine, max_new: int) -> tuple[float, int]:
    """Plain ``generate`` of ``model`` on the engine's torch thread, as its answers are (one OpenMP team)."""
    return engine.torch_thread.call(_plain_generate_here, model, engine, max_new)


def _plain_generate_here(model, engine, max_new: int) -> tuple[float, int]:
    import torch

    ids = torch.tensor([engine.formatter.encode_prompt(PROMPT)], device=engine.device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=max_new, min_new_tokens=max_new, temperature=None, top_p=None,
                             top_k=None, pad_token_id=engine.tokenizer.pad_token_id)
    return time.perf_counter() - t0, out.shape[1] - ids.shape[1]


def _streamed(engine, max_new: int) -> tuple[float, float, int]:
    from engine.core.chat_settings import GenerationSettings

    settings = GenerationSettings(max_new_tokens=max_new, temperature=0.0)
    t0, first, text = time.perf_counter(), None, ""
    for text in engine.stream(PROMPT, settings):
        if first is None:
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return first or total, total, len(engine.tokenizer(text, add_special_tokens=False)["input_ids"])


def _baseline_model(device: str):
    """The model as chat loaded it before issue 23: fp32 weights (plain ``generate``, its default dynamic cache)."""
    import torch

    from engine.modeling.models import load_model

    return load_model(DEMO, dtype=torch.float32).to(device).eval()


def bench_chat(repeats: int, adapter: str | None, engine=None) -> dict:
    """The chat figures; ``engine``: a ChatEngine to use (the suite's one for chat and arena, as the app has one)."""
    import torch

    from engine.serve.chat import ChatEngine

    engine = engine or ChatEngine()
    t0 = time.perf_counter()
    engine.load(DEMO)
    load_s = time.perf_counter() - t0
    baseline = engine.torch_thread.call(_baseline_model, engine.device)
    bandwidth = engine.torch_thread.call(read_bandwidth)
    weight_bytes = weight_bytes_per_token(engine.model)
    _streamed(engine, 16)  # warm-up: first-call costs are not what a user waits for on every answer
    _plain_generate(baseline, engine, 16)
    _, _, n = _streamed(engine, 128)  # the answer's own length, so every way generates the same tokens
    before, plain, streamed, ttft = [], [], [], []
    for _ in range(repeats):  # alternated, so drift on a shared machine hits all
        seconds, tokens = _plain_generate(baseline, engine, n)
        before.append(tokens / seconds)
        seconds, tokens = _plain_generate(engine.model, engine, n)
        plain.append(tokens / seconds)
        first, total, tokens = _streamed(engine, n)
        streamed.append(tokens / total)
        ttft.append(first)
    del baseline
    limit = bandwidth / weight_bytes
    out = {"tokens": n, "dtype": str(engine.model.dtype).removeprefix("torch."), "threads": torch.get_num_threads(),
           "load_s": round(load_s, 3), "baseline_tokens_per_s": _median(before),
           "plain_tokens_per_s": _median(plain), "streamed_tokens_per_s": _median(streamed),
           "ratio": round(_median(streamed) / _median(plain), 3),
           "vs_baseline": round(_median(streamed) / _median(before), 3), "ttft_s": _median(ttft),
           "bandwidth_gb_s": round(bandwidth / 1e9, 2), "weight_mb_per_token": round(weight_bytes / 1e6, 1),
           "limit_tokens_per_s": round(limit, 1), "of_limit": round(_median(streamed) / limit, 3),
           "each": {"baseline": [round(x, 1) for x in before], "plain": [round(x, 1) for x in plain],
                    "streamed": [round(x, 1) for x in streamed]}}
    if adapter:
        switches = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            engine.load(DEMO, adapter)
            engine.load(DEMO, "")
            switches.append((time.perf_counter() - t0) / 2)
        out["switch_s"] = _median(switches)
        out["switch_each"] = [round(s, 3) for s in switches]
    engine.unload()
    print(f"  chat ({out['dtype']}): streamed {out['streamed_tokens_per_s']:.1f}, plain generate "
          f"{out['plain_tokens_per_s']:.1f}, fp32 plain generate (before) {out['baseline_tokens_per_s']:.1f} tokens/s"
          f" ({out['vs_baseline']:.2f}x); bandwidth {out['bandwidth_gb_s']:.1f} GB/s / {out['weight_mb_per_token']:.0f}"
          f" MB per token = limit {out['limit_tokens_per_s']:.1f} tokens/s ({100 * out['of_limit']:.0f}% of it); "
          f"first token {out['ttft_s']:.3f} s, Load model {out['load_s']:.2f} s"
          + (f", switch {out['switch_s']:.3f} s" if adapter else ""), flush=True)
    return out


def table_rows(chat: dict, add, **first) -> None:
    """The chat rows of the suite's table (``add`` as bench.suite.table's; ``first``: its keywords for the first row,
    such as LLaMA-Factory's figure)."""
    add("chat streamed tokens/s (ceiling: bandwidth limit)", round(chat["streamed_tokens_per_s"], 1),
        chat.get("limit_tokens_per_s"), **first)
    if chat.get("of_limit") is not None:
        add(f"  share of the limit ({chat['bandwidth_gb_s']:g} GB/s / {chat['weight_mb_per_token']:g} MB per token)",
            round(100 * chat["of_limit"], 1), unit="%")
    add("  streamed / plain generate, same weights", chat["ratio"])
    if chat.get("baseline_tokens_per_s") is not None:
        add("  fp32 plain generate tokens/s (chat before)", round(chat["baseline_tokens_per_s"], 1))
        add("  streamed / fp32 plain generate", chat["vs_baseline"])
    add("  time to first token", round(chat["ttft_s"], 3), unit=" s")
    if chat.get("load_s") is not None:
        add("  Load model (in process)", round(chat["load_s"], 2), unit=" s")
    if "switch_s" in chat:
        add("  switch base <-> fine-tuned", round(chat["switch_s"], 3), unit=" s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--adapter", default="", help="a LoRA checkpoint of the demo model to switch to")
    args = parser.parse_args(argv)
    from engine.core.demo_model import ensure_demo_model

    ensure_demo_model()
    bench_chat(args.repeats, args.adapter or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
