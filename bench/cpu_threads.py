"""CPU threads beside other processes: training and chat tokens/s as shipped (OpenMP's default waits, the thread
governor of engine.core.cpu_threads) against sleeping OpenMP waits (OMP_WAIT_POLICY=PASSIVE, shipped before) and
against spinning with the thread count fixed, on an idle machine and beside a process using a fifth of a core or
a whole one.

    python bench/cpu_threads.py [--repeats 2]

Training is a 25-step fp32 LoRA run on the demo model (the suite's training configuration, one epoch), started as
Start starts it; chat is the chat engine's streamed greedy answer (96 tokens), in a process of its own so that
OpenMP reads the policy's environment. The policies alternate, so drift on a shared machine hits all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import run_engine_job, stop_runs, temporary_folders, write_results  # noqa: E402
from bench.suite import cpu_model, train_config  # noqa: E402
from engine.core.cpu_threads import THREADS_ENV  # noqa: E402

NEIGHBOURS = {"idle": None, "a fifth of a core": 0.2, "one busy core": 1.0}
CHAT_TOKENS = 96

# The chat engine as the Chat tab uses it: one warm-up answer, then the measured ones (tokens/s of each, printed).
_CHAT = """
import json, sys, time
from engine.core.chat_settings import GenerationSettings
from engine.serve.chat import ChatEngine
eng = ChatEngine()
eng.load(sys.argv[1], device="cpu")
settings = GenerationSettings(max_new_tokens=int(sys.argv[2]), temperature=0.0)
question = [{"role": "user", "content": "Tell me about the water cycle in a few sentences."}]
list(eng.stream(question, settings))
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()  # the neighbour is started now
rates = []
for _ in range(2):
    t0 = time.perf_counter()
    text = list(eng.stream(question, settings))[-1]
    rates.append(len(eng.tokenizer(text, add_special_tokens=False)["input_ids"]) / (time.perf_counter() - t0))
print(json.dumps(rates))
"""


def policies(threads: int) -> dict[str, dict[str, str | None]]:
    """Environment changes of each policy (None: unset)."""
    return {"as shipped (governed)": {"OMP_WAIT_POLICY": None, THREADS_ENV: None},
            "sleeping waits (PASSIVE)": {"OMP_WAIT_POLICY": "PASSIVE", THREADS_ENV: str(threads)},
            "spinning, fixed count": {"OMP_WAIT_POLICY": None, THREADS_ENV: str(threads)}}


def environment(changes: dict[str, str | None]) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@contextmanager
def neighbour(share: float | None):
    """A process keeping ``share`` of a core busy (busy for that share of every 100 ms), or none."""
    if share is None:
        yield
        return
    code = (f"import time\nwhile True:\n    t = time.perf_counter()\n    while time.perf_counter() - t < {share} * 0.1:"
            f"\n        pass\n    time.sleep({1 - share} * 0.1)")
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def train_rate(work: Path, name: str, env: dict[str, str], share: float | None) -> float:
    cfg = train_config(work / name, "fp32")
    cfg.train.num_train_epochs = 1.0
    cfg.validate()
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # run_engine_job starts the job with this process's environment plus Start's
    try:
        with neighbour(share):
            _, status, _ = run_engine_job(work / name, cfg)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    m = status["metrics"]
    return m["num_input_tokens_seen"] / m["train_runtime"]


def chat_rate(model: str, env: dict[str, str], share: float | None) -> float:
    proc = subprocess.Popen([sys.executable, "-c", _CHAT, model, str(CHAT_TOKENS)], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the chat process failed before its first answer")
        with neighbour(share):
            proc.stdin.write("go\n")
            proc.stdin.flush()
            rates = json.loads(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cpu_threads.json")
    args = parser.parse_args(argv)
    import torch

    from engine.core.demo_model import ensure_demo_model

    model = str(ensure_demo_model())
    threads = torch.get_num_threads()
    work = temporary_folders("tuneboard-cpu-threads-")
    runs: dict = {}
    count = 0
    try:
        for where, share in NEIGHBOURS.items():
            for i in range(args.repeats):
                for policy, changes in policies(threads).items():
                    env = environment(changes)
                    key = f"{policy} | {where}"
                    count += 1
                    train = train_rate(work / "saves", f"run-{count}", env, share)
                    chat = chat_rate(model, env, share)
                    runs.setdefault(key, {"train": [], "chat": []})
                    runs[key]["train"].append(round(train, 1))
                    runs[key]["chat"].append(round(chat, 1))
                    print(f"  {key} {i + 1}/{args.repeats}: training {train:.1f}, chat {chat:.1f} tokens/s",
                          flush=True)
    finally:
        stop_runs(work / "saves")
    print(f"\n{cpu_model()}, {threads} torch threads; tokens/s, medians of {args.repeats}")
    print(f"{'':28s}" + "".join(f"{w:>26s}" for w in NEIGHBOURS))
    summary: dict = {}
    for policy in policies(threads):
        cells = []
        for where in NEIGHBOURS:
            r = runs[f"{policy} | {where}"]
            t, c = statistics.median(r["train"]), statistics.median(r["chat"])
            summary.setdefault(policy, {})[where] = {"train": t, "chat": c, "each": r}
            cells.append(f"train {t:6.1f}, chat {c:5.1f}")
        print(f"{policy:28s}" + "".join(f"{c:>26s}" for c in cells))
    write_results(args.out, {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu": cpu_model(), "threads": threads,
                             "repeats": args.repeats, "tokens_per_s": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
