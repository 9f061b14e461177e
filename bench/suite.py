"""TuneBoard's benchmark suite: training throughput, padding, start-to-first-point, cold start, chat, memory.

    python bench/suite.py                  # every section, 3 repeats: about 10 minutes on 2 CPU cores
    python bench/suite.py --repeats 1 --sections start,chat
    python bench/suite.py --anchor LF_VENV --sections train,predict   # LLaMA-Factory beside us (bench/anchor.py)

Prints one table (each figure the median of the repeats, next to the machine's ceiling) and writes
bench/results/suite.json. With ``--anchor`` (a LLaMA-Factory 0.9.5 virtualenv, ../shared/anchor/setup_lf_venv.sh)
LLaMA-Factory's configurations run in the same invocation, alternating with ours, and the ratios to it come from
those runs only; without it no ratio to LLaMA-Factory is printed (the figures issue 6 measured on another machine
are shown as such). Both sides train on ../shared/anchor/data's identity_aurora (``--anchor-data``) under the
chatml template: the same 3,539 real tokens per epoch.

- train: LoRA SFT (rank 8 on every linear layer, batch 4, cutoff 256, 3 epochs over 100 identity samples) run as
  the UI runs it (``python -m engine train``, with the allocator Start gives it), in fp32 (packed batches, the
  default), in fp32 with padded batches grouped by length (the default before), in fp32 with gradient
  checkpointing (LLaMA-Factory's shipped setting: the like-for-like memory figure) and, where the device has
  native bf16, in bf16 (the default there; compared with LLaMA-Factory's best configuration too, and its final
  loss with the fp32 run's). ``--variants bf16,fp32`` re-measures some variants and keeps the others.
  tokens/s = non-padding tokens fed / the Trainer's train_runtime. MFU = tokens/s x 4 N / matmul ceiling, with
  N = the base model's parameters (LoRA: forward 2N, backward through the frozen weights 2N FLOPs per token;
  the adapters' own FLOPs are under 2% and left out), the ceiling a square fp32 (bf16) matmul timed in this run
  with the trainer's thread count. The peak resident memory is the trainer process's (wait4 ru_maxrss).
- probes: the demo preset as the Train tab starts it (150 steps, a checkpoint every 50), without probe questions
  and with the default ones (answered at steps 0, 50, 100 and 150): the run time each, and the slowdown.
- start: seconds from ``webui.runner.launch`` (what Start calls) to the first loss value in events.jsonl (the
  step-0 point: the first batch's loss, written once its forward pass is done), with
  the warm worker (the default) and without it (TUNEBOARD_WARM_WORKER=0).
- cold: seconds from ``python app.py`` to HTTP 200 on the page, then from pressing Load model (the app's own
  /chat_load event, through gradio_client) to the model being loaded; the web process's resident memory then.
- chat: in one process, time to first token and tokens/s of the streamed answer (ChatEngine.stream, what the
  Chat tab shows) against plain ``model.generate`` on the same prompt (greedy, same length); seconds to switch
  base -> fine-tuned adapter -> base on one loaded model.
- predict: Evaluate & Predict's batch predictions per second (bench/predict_bench.py), beside LLaMA-Factory's
  do_predict on the same 50 samples with --anchor.
- cuda: the training run in bf16 on CUDA models (--cuda-models), beside LLaMA-Factory's bf16 configuration with
  --anchor (bench/cuda_bench.py); "skipped: no CUDA device" elsewhere.
- arena: the checkpoint arena's cost per round, two streamed answers (base and the fine-tuned adapter, one batched
  generate) against one plain answer to the same prompt (bench/arena_round.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import anchor as lf  # noqa: E402
from bench.arena_round import bench_arena  # noqa: E402
from bench.chat_bench import bench_chat  # noqa: E402
from bench.chat_bench import table_rows as chat_rows  # noqa: E402
from bench.cuda_bench import bench_cuda  # noqa: E402
from bench.harness import (  # noqa: E402
    AppProcess,
    free_port,
    run_engine_job,
    short_train_config,
    stop_runs,
    temporary_folders,
    write_results,
)
from bench.predict_bench import bench_predict  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "suite.json"
SECTIONS = ("train", "predict", "probes", "start", "cold", "chat", "arena", "cuda")
DEMO = "demo/SmolLM2-135M-Instruct"
# LLaMA-Factory 0.9.5 measured once on another 2-core CPU (issue 6): shown as "other machine", never divided by.
# The ratios to LLaMA-Factory come from --anchor runs in the same invocation only (bench/anchor.py).
ANCHOR = {"train_tokens_per_s": 91.8, "train_best_tokens_per_s": 158.0, "first_point_s": 9.7,
          "train_peak_rss_mb": 1490.0, "cold_http_s": 8.4, "chat_tokens_per_s": 16.0}


def cpu_model() -> str:
    """The CPU's model name and whether it has native bf16 (which decides the default precision)."""
    from engine.core.devices import cpu_has_native_bf16

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            name = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {'native bf16' if cpu_has_native_bf16() else 'no native bf16'}"


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


# -- training --------------------------------------------------------------------------------------------
def matmul_ceiling_gflops(dtype: str, threads: int, size: int = 2048, seconds: float = 3.0) -> float:
    """Best GFLOP/s of a size x size matmul in ``dtype`` over about ``seconds`` (in a fresh process, so the
    thread pool is the trainer's)."""
    code = f"""
import time, torch
torch.set_num_threads({threads})
a = torch.randn({size}, {size}, dtype=torch.{'bfloat16' if dtype == 'bf16' else 'float32'})
b = torch.randn_like(a)
for _ in range(3): a @ b
best, end = 0.0, time.perf_counter() + {seconds}
while time.perf_counter() < end:
    t = time.perf_counter(); a @ b; best = max(best, 2 * {size} ** 3 / (time.perf_counter() - t))
print(best / 1e9)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


# Variants of the training benchmark: (compute type, gradient checkpointing, packing, torch_compile). LLaMA-Factory
# as shipped checkpoints gradients, so fp32_gc is its like-for-like run; TuneBoard's default leaves it off and packs
# (fp32_padded: length-grouped padded batches instead, the default before packing was). bf16_compile: the opt-in
# {"torch_compile": true}, its compilation inside the timed run (inductor's on-disk cache as the machine has it).
TRAIN_VARIANTS = {"fp32": ("fp32", False, True, False), "fp32_padded": ("fp32", False, False, False),
                  "fp32_gc": ("fp32", True, True, False), "bf16": ("bf16", False, True, False),
                  "bf16_compile": ("bf16", False, True, True)}
TRAIN_LABELS = {"fp32": "fp32", "fp32_padded": "fp32, padded batches grouped by length",
                "fp32_gc": "fp32, gradient checkpointing", "bf16": "bf16, the default where the CPU has it",
                "bf16_compile": 'bf16 with {"torch_compile": true}, compilation included'}


def train_config(run_dir: Path, compute: str, checkpointing: bool = False, packing: bool = True,
                 compiled: bool = False, data_dir: Path | None = None):
    cfg = short_train_config(100, epochs=3.0, cutoff_len=256, logging_steps=5, compute_type=compute)
    if data_dir is not None:  # LLaMA-Factory's dataset and template: both sides train on the same tokens
        cfg.data.dataset_dir, cfg.data.datasets, cfg.data.max_samples = str(data_dir), [lf.DATASET], 0
        cfg.model.template = lf.TEMPLATE
        # and its schedule (1e-4, cosine, warm-up over 10% of the 75 steps), so the two loss curves compare too
        cfg.train.learning_rate, cfg.train.lr_scheduler_type, cfg.train.warmup_steps = 1e-4, "cosine", 8
    extra = {"gradient_checkpointing": True} if checkpointing else {}
    if compiled:
        extra["torch_compile"] = True
    cfg.train.extra_args = json.dumps(extra) if extra else ""
    cfg.model.model_name_or_path = DEMO
    cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target = 8, 16, 0.0, "all"
    cfg.data.packing = packing
    cfg.train.output_dir = str(run_dir)
    cfg.validate()
    return cfg


def cuda_train_config(run_dir: Path, model: str, booster: str, data_dir: Path | None = None):
    """The training benchmark's bf16 configuration (packed rows) on another model, with a CUDA booster."""
    cfg = train_config(run_dir, "bf16", data_dir=data_dir)
    cfg.model.model_name_or_path, cfg.model.booster = model, booster
    cfg.validate()
    return cfg


def train_once(workdir: Path, variant: str, index: int, data_dir: Path | None = None) -> dict:
    run_dir = workdir / f"train-{variant}-{index}"
    return run_training_job(run_dir, train_config(run_dir, *TRAIN_VARIANTS[variant], data_dir=data_dir), variant)


def run_training_job(run_dir: Path, cfg, what: str) -> dict:
    """Train ``cfg`` in ``run_dir`` with the command and environment Start uses; its figures and peak memory."""
    try:
        run, status, peak_mb = run_engine_job(run_dir, cfg)
    except RuntimeError as exc:
        raise RuntimeError(f"training ({what}) failed: {exc}") from None
    m = status["metrics"]
    return {"tokens_per_s": m["num_input_tokens_seen"] / m["train_runtime"], "tokens": m["num_input_tokens_seen"],
            "runtime_s": m["train_runtime"], "padding_share": m.get("padding_share"), "train_loss": m["train_loss"],
            "peak_rss_mb": peak_mb,
            "probe_s": sum(e.get("probe_s", 0.0) for e in run.read_events()),
            "probe_rounds": sum(1 for e in run.read_events() if "probes" in e)}


# -- probe questions ---------------------------------------------------------------------------------------
def bench_probes(workdir: Path, repeats: int) -> dict:
    """The demo preset as the Train tab starts it, with its probe questions and without: the slowdown they add."""
    from engine.core.config import DEFAULT_PROBES
    from engine.core.presets import demo_config

    out = {}
    for mode, questions in (("off", ""), ("on", DEFAULT_PROBES)):
        runs = []
        for i in range(repeats):
            cfg = demo_config()
            cfg.train.probe_questions = questions
            runs.append(run_training_job(workdir / f"probes-{mode}-{i}", cfg, f"probes {mode}"))
            print(f"  demo preset, probes {mode} {i + 1}/{repeats}: {runs[-1]['runtime_s']:.1f} s "
                  f"({runs[-1]['probe_rounds']} probe rounds, {runs[-1]['probe_s']:.1f} s), "
                  f"loss {runs[-1]['train_loss']:.5f}", flush=True)
        out[mode] = {"runtime_s": median(r["runtime_s"] for r in runs), "probe_s": median(r["probe_s"] for r in runs),
                     "probe_rounds": runs[0]["probe_rounds"], "train_loss": median(r["train_loss"] for r in runs)}
    out["slowdown"] = round(out["on"]["runtime_s"] / out["off"]["runtime_s"] - 1, 4)
    return out


def bench_train(workdir: Path, repeats: int, only: list[str] | None = None, previous: dict | None = None,
                anchor: lf.Anchor | None = None) -> dict:
    """Every training variant the machine runs (``only``: some of them, the others kept from ``previous``); on
    ``anchor``'s dataset, and alternating with LLaMA-Factory's configurations where ``anchor.venv`` is set."""
    import torch

    from engine.core.demo_model import converted_dir
    from engine.core.devices import cpu_has_native_bf16
    from engine.modeling.models import load_model

    params = sum(p.numel() for p in load_model(DEMO).parameters())
    variants = ["fp32", "fp32_padded", "fp32_gc"] + (["bf16", "bf16_compile"] if cpu_has_native_bf16() else [])
    threads = torch.get_num_threads()
    out = {"params": params, "flops_per_token": 4 * params, "threads": threads,
           "bf16_note": None if "bf16" in variants else "no native bf16 on this CPU (no AVX512-BF16/AMX): "
                                                          "bf16 would be emulated, slower than fp32"}
    if only:
        out.update({v: r for v, r in (previous or {}).items() if v in variants and v not in only})
        variants = [v for v in variants if v in only]
    data_dir = anchor.data_dir if anchor else None
    out["dataset"] = f"{lf.DATASET}, {lf.TEMPLATE}" if anchor else "identity, built in"
    for variant in variants:
        compute = TRAIN_VARIANTS[variant][0]
        theirs = lf.partner(variant, variants) if anchor and anchor.venv else None
        runs, lf_runs = [], []
        for i in range(repeats):  # ours, LLaMA-Factory, ours, ...: drift on a shared machine hits both
            runs.append(train_once(workdir, variant, i, data_dir))
            print(f"  train {variant} {i + 1}/{repeats}: {runs[-1]['tokens_per_s']:.1f} tokens/s, "
                  f"loss {runs[-1]['train_loss']:.4f}, peak {runs[-1]['peak_rss_mb']:.0f} MB", flush=True)
            if theirs:
                lf_runs.append(lf.run_train(anchor, theirs, converted_dir(), workdir / f"lf-train-{theirs}-{i}"))
                print(f"  LLaMA-Factory {theirs} {i + 1}/{repeats}: {lf_runs[-1]['tokens_per_s']:.1f} tokens/s "
                      f"({lf_runs[-1]['tokens']} tokens), loss {lf_runs[-1]['train_loss']:.4f}, "
                      f"peak {lf_runs[-1]['peak_rss_mb']:.0f} MB", flush=True)
        if lf_runs:
            out.setdefault("llamafactory", {})[theirs] = {**lf.summary(lf_runs, "tokens_per_s"),
                                                          "config": lf.TRAIN_CONFIGS[theirs]}
        ceiling = matmul_ceiling_gflops(compute, threads)
        tps = median(r["tokens_per_s"] for r in runs)
        out[variant] = {"tokens_per_s": tps, "each": [round(r["tokens_per_s"], 1) for r in runs],
                        "padding_share": median(r["padding_share"] for r in runs),
                        "train_loss": median(r["train_loss"] for r in runs),
                        "peak_rss_mb": median(r["peak_rss_mb"] for r in runs), "tokens": runs[0]["tokens"],
                        "matmul_gflops": round(ceiling, 1),
                        "ceiling_tokens_per_s": round(ceiling * 1e9 / (4 * params), 1),
                        "mfu": round(tps * 4 * params / (ceiling * 1e9), 4)}
    for half in ("bf16", "bf16_compile"):
        if half in out and "fp32" in out:
            out[half]["loss_vs_fp32"] = round(out[half]["train_loss"] / out["fp32"]["train_loss"] - 1, 4)
    out["side_by_side"] = lf.side_by_side(out, variants)
    return out


# -- start-to-first-point --------------------------------------------------------------------------------
def first_point_once(name: str) -> float:
    from engine.core.rundir import DONE_STATES
    from webui import runner

    cfg = short_train_config(16, logging_steps=1)
    cfg.model.model_name_or_path = DEMO
    t0 = time.perf_counter()
    run = runner.launch(runner.run_dir_for("SmolLM2-135M-Instruct", "lora", name), cfg)
    seconds = None
    while True:
        if seconds is None and any("loss" in e for e in run.read_events()):
            seconds = time.perf_counter() - t0
        state = run.live_status().get("state")
        if state in DONE_STATES:
            break
        time.sleep(0.02 if seconds is None else 0.3)
    if seconds is None or state != "finished":
        raise RuntimeError(f"run {name} ended {state}: {run.log_tail(20)}")
    return seconds


def bench_start(repeats: int) -> dict:
    from engine.jobs import warm_worker

    out = {}
    for mode in ("cold", "warm"):
        if mode == "cold":
            os.environ[warm_worker.ENV_SWITCH] = "0"
        else:
            os.environ.pop(warm_worker.ENV_SWITCH, None)
            warm_worker.start()
            path = warm_worker.socket_path()
            deadline = time.time() + 120
            while not path.exists() and time.time() < deadline:
                time.sleep(0.2)
        times = []
        for i in range(repeats):
            times.append(first_point_once(f"start-{mode}-{i}"))
            print(f"  start {mode} {i + 1}/{repeats}: first loss point after {times[-1]:.2f} s", flush=True)
        out[mode] = {"first_point_s": median(times), "each": [round(t, 2) for t in times]}
    return out


# -- cold start of the app, Load model, web memory --------------------------------------------------------
def bench_cold(repeats: int, workdir: Path) -> dict:
    import psutil
    from gradio_client import Client

    http, load, reload, rss, idle = [], [], [], [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        app = AppProcess(free_port(), dict(os.environ, PYTHONUNBUFFERED="1"), log=workdir / f"app-{i}.log")
        try:
            app.wait_ready(120)
            http.append(time.perf_counter() - t0)
            client = Client(app.url, verbose=False)
            t1 = time.perf_counter()
            answer = client.predict("en", DEMO, None, "auto", "auto", False, api_name="/chat_load")
            load.append(time.perf_counter() - t1)
            if "SmolLM2" not in str(answer):
                raise RuntimeError(f"Load model answered {answer!r}")
            rss.append(psutil.Process(app.proc.pid).memory_info().rss / 2**20)
            client.predict("en", api_name="/chat_unload")
            t2 = time.perf_counter()  # again, the libraries imported: what a later Load model costs
            client.predict("en", DEMO, None, "auto", "auto", False, api_name="/chat_load")
            reload.append(time.perf_counter() - t2)
            client.close()
            idle.append(idle_cpu_share(psutil.Process(app.proc.pid)))
        finally:
            app.stop()
        print(f"  cold {i + 1}/{repeats}: HTTP 200 after {http[-1]:.2f} s, model loaded {load[-1]:.2f} s later "
              f"(again after unloading: {reload[-1]:.2f} s), web process {rss[-1]:.0f} MB, idle: "
              f"{100 * idle[-1]:.1f}% of a core", flush=True)
    return {"http_200_s": median(http), "http_each": [round(t, 2) for t in http], "load_model_s": median(load),
            "load_each": [round(t, 2) for t in load], "reload_model_s": median(reload),
            "web_rss_loaded_mb": median(rss), "idle_cpu_share": median(idle),
            "idle_each": [round(x, 4) for x in idle]}


def idle_cpu_share(proc, settle_s: float = 5.0, seconds: float = 20.0) -> float:
    """CPU time the app (its web process and the warm worker) spends with no page open, as a share of one core:
    what an app left open takes from a training job on a small machine."""
    def used() -> float:
        return sum(sum(p.cpu_times()[:2]) for p in [proc, *proc.children(recursive=True)])

    time.sleep(settle_s)
    before = used()
    time.sleep(seconds)
    return (used() - before) / seconds


# -- report ----------------------------------------------------------------------------------------------
def table(result: dict) -> str:
    # LLaMA-Factory's figures and the ratios to them come from its runs in the same invocation (--anchor); the
    # stored ANCHOR figures, from another machine, are shown beside them and never divided by.
    rows = [("figure", "TuneBoard", "ceiling / plain", "LLaMA-Factory, this run", "vs LLaMA-Factory",
             "LLaMA-Factory, other machine")]

    def add(name, value, ceiling=None, anchor=None, higher_is_better=True, unit="", better="faster", other=None):
        if value is None:
            return
        ratio = ""
        if anchor:  # said so that more is better: x faster / x less memory
            ratio = f"{value / anchor:.2f}x" if higher_is_better else f"{anchor / value:.2f}x {better}"
        rows.append((name, f"{value:g}{unit}", "" if ceiling is None else f"{ceiling:g}{unit}",
                     "" if anchor is None else f"{anchor:g}{unit}", ratio, "" if other is None else f"{other:g}{unit}"))

    train = result.get("train", {})
    if train.get("side_by_side"):  # both sides fed the same tokens: the ratio reads 1.00x
        pair = train["side_by_side"][0]
        add(f"train real tokens fed ({train.get('dataset')}, 3 epochs)", pair["tokens"][0], anchor=pair["tokens"][1])
    for variant, label in TRAIN_LABELS.items():
        if variant in train:
            r = train[variant]
            add(f"train tokens/s ({label})", round(r["tokens_per_s"], 1), r["ceiling_tokens_per_s"],
                other=ANCHOR["train_best_tokens_per_s" if variant.startswith("bf16") else "train_tokens_per_s"])
            add("  MFU", round(100 * r["mfu"], 1), unit="%")
            add("  padding share", round(100 * r["padding_share"], 1), unit="%")
            add("  trainer peak RSS", round(r["peak_rss_mb"]), unit=" MB", other=ANCHOR["train_peak_rss_mb"])
            for pair in train.get("side_by_side", []):
                if pair["ours"] == variant:
                    speed = pair["figure"] == "tokens_per_s"
                    add(f"  {'tokens/s' if speed else 'peak RSS'} beside LLaMA-Factory "
                        f"{lf.TRAIN_LABELS[pair['llamafactory']]}", round(pair["ours_value"], 1 if speed else None),
                        anchor=round(pair["their_value"], 1 if speed else None), higher_is_better=speed,
                        unit="" if speed else " MB", better="less memory")
            if r.get("loss_vs_fp32") is not None:
                add("  final loss against fp32 (relative)", round(100 * r["loss_vs_fp32"], 2), unit="%")
    predict = result.get("predict", {})
    if predict:
        theirs = predict.get("llamafactory", {}).get("predictions_per_s")
        settings = predict["settings"]
        add(f"predictions/s ({predict['ours']['samples']:g} samples, batch {settings['batch_size']}, greedy, "
            f"<= {settings['max_new_tokens']} new tokens)", predict["ours"]["predictions_per_s"], anchor=theirs)
    probes = result.get("probes", {})
    if "on" in probes:
        add("demo preset run time, no probes", round(probes["off"]["runtime_s"], 1), unit=" s")
        add(f"  with probes ({probes['on']['probe_rounds']} rounds, {probes['on']['probe_s']:.1f} s)",
            round(probes["on"]["runtime_s"], 1), unit=" s")
        add("  slowdown", round(100 * probes["slowdown"], 1), unit="%")
    start = result.get("start", {})
    for mode in ("warm", "cold"):
        if mode in start:
            add(f"start to first point ({mode})", round(start[mode]["first_point_s"], 2), unit=" s",
                other=ANCHOR["first_point_s"])
    cold = result.get("cold", {})
    if cold:
        add("app start to HTTP 200", round(cold["http_200_s"], 2), unit=" s", other=ANCHOR["cold_http_s"])
        add("Load model at once (demo)", round(cold["load_model_s"], 2), unit=" s")
        if cold.get("reload_model_s") is not None:
            add("Load model again (demo)", round(cold["reload_model_s"], 2), unit=" s")
        add("web process RSS, model loaded", round(cold["web_rss_loaded_mb"]), unit=" MB")
        if cold.get("idle_cpu_share") is not None:
            add("app CPU with no page open", round(100 * cold["idle_cpu_share"], 1), unit="% of a core")
    chat = result.get("chat", {})
    if chat:
        chat_rows(chat, add, other=ANCHOR["chat_tokens_per_s"])
    arena = result.get("arena", {})
    if arena:
        add("arena round tokens/s (two answers)", arena["round_tokens_per_s"], arena["plain_tokens_per_s"])
        add("  arena round / one plain answer (time)", arena["ratio"])
        if "vs_one_by_one" in arena:
            add("  the two answers one after another / the round (time)", arena["vs_one_by_one"])
    cuda = result.get("cuda", {})
    if cuda.get("skipped"):
        rows.append(("cuda training", cuda["skipped"], "", "", "", ""))
    for name, entry in cuda.get("models", {}).items():
        ours, theirs = entry["ours"], entry.get("llamafactory", {})
        add(f"cuda {name} bf16 tokens/s ({cuda['card']}, {cuda['booster']})", ours["tokens_per_s"],
            anchor=theirs.get("tokens_per_s"))
        add("  MFU (card's bf16 matmul)", round(100 * ours["mfu"], 1), unit="%",
            anchor=round(100 * theirs["mfu"], 1) if theirs else None)
        add("  peak GPU memory", round(ours["gpu_peak_mb"]), unit=" MB", anchor=theirs.get("gpu_peak_mb"),
            higher_is_better=False, better="less memory")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the table shows medians")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--variants", default="",
                        help=f"train only these of {tuple(TRAIN_VARIANTS)} (comma-separated); "
                             "the others keep their figures")
    parser.add_argument("--anchor", type=Path, metavar="LF_VENV",
                        help="LLaMA-Factory's virtualenv (../shared/anchor/setup_lf_venv.sh): run its configurations "
                             "beside ours, alternating, and print the ratios of those runs")
    parser.add_argument("--anchor-data", type=Path, default=lf.ANCHOR_DIR / "data",
                        help=f"the folder holding {lf.DATASET} (dataset_info.json), which both sides train on")
    parser.add_argument("--cuda-models", default="",
                        help="cuda section: comma-separated model folders (e.g. Qwen2.5-0.5B and 1.5B-Instruct)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the temporary saves/ and run folders")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    if not sections or any(s not in SECTIONS for s in sections):
        parser.error(f"--sections: choose from {', '.join(SECTIONS)}")

    anchor = None
    if args.anchor or args.anchor_data.is_dir():
        anchor = lf.Anchor(args.anchor.resolve() if args.anchor else None, args.anchor_data.resolve())
        try:
            anchor.check()
            if "predict" in sections and anchor.venv is not None:
                anchor.check_predict()  # before the sections that come first, not after their minutes
        except ValueError as exc:
            parser.error(str(exc))
        anchor.allow_data()
    elif "predict" in sections:
        parser.error(f"the predict section needs {lf.DATASET}: --anchor-data {args.anchor_data} is not a folder")
    else:
        print(f"no {args.anchor_data}: training on the built-in identity data, not LLaMA-Factory's", flush=True)

    workdir = temporary_folders("tuneboard-suite-")
    from engine.core.demo_model import ensure_demo_model

    ensure_demo_model()
    # Sections not run this time keep their figures from --out (each section records when it was measured).
    previous = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
    result: dict = {**{k: v for k, v in previous.items() if k in SECTIONS},
                    "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version()},
                    "repeats": args.repeats, "when": time.strftime("%Y-%m-%d %H:%M:%S"), "anchor": ANCHOR}
    failed = None
    try:
        if "train" in sections:
            only = [v.strip() for v in args.variants.split(",") if v.strip()]
            result["train"] = bench_train(workdir, args.repeats, only, previous.get("train"), anchor)
        if "predict" in sections:
            result["predict"] = bench_predict(workdir, args.repeats, DEMO, anchor)
        if "cuda" in sections:
            models = [m.strip() for m in args.cuda_models.split(",") if m.strip()]
            data_dir = anchor.data_dir if anchor else None
            result["cuda"] = bench_cuda(workdir, args.repeats, models, anchor, lambda run_dir, model, booster:
                                        cuda_train_config(run_dir, model, booster, data_dir), run_training_job)
        if "probes" in sections:
            result["probes"] = bench_probes(workdir, args.repeats)
        if "start" in sections:
            result["start"] = bench_start(args.repeats)
        if "cold" in sections:
            result["cold"] = bench_cold(args.repeats, workdir)
        if "chat" in sections or "arena" in sections:
            adapter = next((str(p.parent) for p in sorted(workdir.rglob("adapter_model.safetensors"))), None)
            if adapter is None:  # no training section ran: train a short adapter to switch to
                first_point_once("chat-adapter")
                adapter = str(next(workdir.rglob("adapter_model.safetensors")).parent)
            # One engine for both, as the app has one a workspace: each engine's torch thread has an OpenMP team
            # of its own, and two teams on few cores sleep between parallel regions (engine/serve/chat.py).
            from engine.serve.chat import ChatEngine

            engine = ChatEngine()
            if "chat" in sections:
                result["chat"] = bench_chat(args.repeats, adapter, engine)
            if "arena" in sections:
                result["arena"] = bench_arena(max(args.repeats, 3), adapter, engine=engine)
            engine.unload()
    except Exception as exc:  # noqa: BLE001 - raised again below, after the sections measured before it are written
        failed = exc
    finally:
        stop_runs(workdir / "saves")
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    for name in sections:
        if name in result:
            result[name]["when"] = result["when"]
    print()
    print(table(result))
    write_results(args.out, result)
    if failed is not None:
        raise failed
    return 0


if __name__ == "__main__":
    sys.exit(main())
