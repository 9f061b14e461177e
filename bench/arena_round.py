"""The checkpoint arena's cost per round: two blind answers against one plain answer.

An arena round streams two answers to one prompt from the one base model in memory, the base and a LoRA
checkpoint, through ``ChatEngine.replies(conversations, [variant_a, variant_b], settings)`` -- what the Chat tab's
arena calls: one batched ``generate`` in which each row passes through its own adapter. It is measured against
one plain answer to the same prompt (``ChatEngine.stream``, the single chat), same max_new_tokens, greedy, and
against the same two answers one after another (the plain one and the checkpoint's alone). Each
figure is the median of N rounds after a warm-up, the two kinds alternating so drift on a shared machine hits both.

    python bench/arena_round.py                          # trains a 4-step LoRA checkpoint on the demo model first
    python bench/arena_round.py --checkpoint saves/.../checkpoint-4 --rounds 9 --max-new-tokens 96

Prints seconds per round and per plain answer, the tokens each generated, tokens/s (the round counts both
answers) and the ratio round / plain (1.0: a round costs what one answer does; 2.0: what two answers one after
the other would), and writes bench/results/arena_round.json. bench/suite.py runs the same as its "arena" section.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import machine_cpu_seconds, short_train_config, write_results  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "arena_round.json"
DEMO = "demo/SmolLM2-135M-Instruct"
# Long enough that both answers (and the plain one) run to max_new_tokens: the same positions generated.
PROMPT = [{"role": "user", "content": "Write a long, detailed essay about the history of the Roman Empire."}]


def train_checkpoint(folder: Path) -> str:
    """A LoRA checkpoint from a real 4-step run on the demo model (``python -m engine train``, as Start runs it)."""
    from engine.core.rundir import RunDir

    run = RunDir(folder)
    run.path.mkdir(parents=True)
    cfg = short_train_config(16, save_steps=4)
    cfg.model.model_name_or_path = DEMO
    cfg.train.output_dir = str(run.path)
    cfg.save(run.config_path, "train")
    with open(run.log_path, "wb") as log:
        subprocess.run([sys.executable, "-m", "engine", "train", str(run.config_path)], cwd=ROOT, stdout=log,
                       stderr=subprocess.STDOUT, check=False)
    checkpoint = run.path / "checkpoint-4"
    if run.read_status().get("state") != "finished" or not (checkpoint / "adapter_model.safetensors").is_file():
        raise RuntimeError(f"training the checkpoint failed:\n{run.log_tail(30)}")
    return str(checkpoint)


def _tokens(engine, text: str) -> int:
    return len(engine.tokenizer(text, add_special_tokens=False)["input_ids"])


def _timed(answers) -> tuple[float, float, list[str]]:
    """Run a stream of growing answers (tuples of texts) to its end: (first text, total) seconds, the texts."""
    t0, first, texts = time.perf_counter(), None, []
    for texts in answers:
        if first is None and any(texts):
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return first or total, total, list(texts)


def _round(engine, checkpoint: str, settings) -> tuple[float, float, list[str]]:
    replies = engine.replies([PROMPT, PROMPT], ["", checkpoint], settings)  # "" = the base model
    return _timed(tuple(r.reasoning + r.answer for r in pair) for pair in replies)


def _plain(engine, settings) -> tuple[float, float, list[str]]:
    return _timed((text,) for text in engine.stream(PROMPT, settings))


def _through(engine, checkpoint: str, settings) -> tuple[float, float, list[str]]:
    """The checkpoint's answer alone (one row through its adapter): with the plain answer, the round's two answers
    one after another."""
    replies = engine.replies([PROMPT], [checkpoint], settings)
    return _timed(tuple(r.reasoning + r.answer for r in one) for one in replies)


def bench_arena(rounds: int, checkpoint: str, max_new_tokens: int = 64, engine=None) -> dict:
    """Median seconds of an arena round and of a plain answer, their tokens, tokens/s and the ratio; ``engine``: a
    ChatEngine to use (the suite's one for chat and arena)."""
    from engine.core.chat_settings import GenerationSettings
    from engine.serve.chat import ChatEngine

    engine = engine or ChatEngine()
    engine.load(DEMO)
    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=0.0)
    _round(engine, checkpoint, settings)  # warm-up: the adapter attached, first-call costs paid
    _plain(engine, settings)
    _through(engine, checkpoint, settings)
    each: dict[str, list] = {"round_s": [], "round_first_s": [], "plain_s": [], "plain_first_s": [], "tuned_s": []}
    before, own = machine_cpu_seconds(), time.process_time()
    for _ in range(rounds):  # alternated, so drift on a shared machine hits both
        first, total, pair = _round(engine, checkpoint, settings)
        each["round_first_s"].append(first)
        each["round_s"].append(total)
        first, total, (answer,) = _plain(engine, settings)
        each["plain_first_s"].append(first)
        each["plain_s"].append(total)
        each["tuned_s"].append(_through(engine, checkpoint, settings)[1])
    after, own = machine_cpu_seconds(), time.process_time() - own
    # The share of the machine's CPU time that other processes used meanwhile: high means the figures are noisy.
    others = None if before is None or after is None else \
        round(max(0.0, (after[0] - before[0] - own) / (after[1] - before[1])), 3)
    tokens = [_tokens(engine, text) for text in pair]  # greedy: every round gives the same answers
    plain_tokens = _tokens(engine, answer)
    out = {name: round(statistics.median(values), 3) for name, values in each.items()}
    out.update(rounds=rounds, max_new_tokens=max_new_tokens, round_tokens=tokens, plain_tokens=plain_tokens,
               round_tokens_per_s=round(sum(tokens) / out["round_s"], 1),
               plain_tokens_per_s=round(plain_tokens / out["plain_s"], 1),
               ratio=round(out["round_s"] / out["plain_s"], 3), others_cpu_share=others,
               # the same two answers one after another (base alone, then the checkpoint alone) against the round
               vs_one_by_one=round((out["plain_s"] + out["tuned_s"]) / out["round_s"], 3),
               # The fastest of each: on a shared machine the least disturbed, a steadier ratio than the medians.
               round_best_s=round(min(each["round_s"]), 3), plain_best_s=round(min(each["plain_s"]), 3),
               best_ratio=round(min(each["round_s"]) / min(each["plain_s"]), 3),
               round_each=[round(s, 3) for s in each["round_s"]], plain_each=[round(s, 3) for s in each["plain_s"]])
    return out


def report(out: dict) -> str:
    a, b = out["round_tokens"]
    return "\n".join([
        f"arena round (base + checkpoint, two streamed answers): {out['round_s']:.3f} s, {a} + {b} tokens, "
        f"{out['round_tokens_per_s']:.1f} tokens/s, first text after {out['round_first_s']:.3f} s",
        f"plain answer (one streamed answer):                    {out['plain_s']:.3f} s, {out['plain_tokens']} "
        f"tokens, {out['plain_tokens_per_s']:.1f} tokens/s, first text after {out['plain_first_s']:.3f} s",
        f"round / plain: {out['ratio']:.2f}x the time for {(a + b) / max(out['plain_tokens'], 1):.2f}x the tokens "
        f"(median of {out['rounds']}, max_new_tokens {out['max_new_tokens']}, greedy)",
        f"the checkpoint's answer alone: {out['tuned_s']:.3f} s; the two answers one after another take "
        f"{out['vs_one_by_one']:.2f}x the round's time",
        f"fastest of each: round {out['round_best_s']:.3f} s, plain {out['plain_best_s']:.3f} s: "
        f"{out['best_ratio']:.2f}x",
        f"other processes used {100 * (out['others_cpu_share'] or 0):.0f}% of the machine's CPU meanwhile"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="", help="a LoRA checkpoint of the demo model (default: train one)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (and plain answers) measured; medians shown")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from bench.suite import cpu_model  # bench.suite imports this module for its "arena" section
    from engine.core.demo_model import ensure_demo_model

    ensure_demo_model()
    with tempfile.TemporaryDirectory(prefix="tuneboard-arena-bench-") as tmp:
        checkpoint = args.checkpoint or train_checkpoint(Path(tmp) / "run")
        out = bench_arena(args.rounds, checkpoint, args.max_new_tokens)
    out["machine"] = {"cpus": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version()}
    out["when"] = time.strftime("%Y-%m-%d %H:%M:%S")
    print(report(out))
    write_results(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
