"""The training benchmark on a CUDA GPU: the same LoRA configuration on bigger models, beside LLaMA-Factory.

For each model folder given (no internet on a GPU machine: e.g. Qwen2.5-0.5B-Instruct and Qwen2.5-1.5B-Instruct),
our bf16 run with packed rows, on FlashAttention-2 (varlen over the packed samples) where ``flash_attn`` is
installed, else Liger kernels where ``liger_kernel`` is, else SDPA with our per-sample attention; and, with
--anchor, LLaMA-Factory's bf16 configuration on the same model (its ``use_cpu`` off), alternated per repeat.
Figures: tokens/s, MFU = tokens/s x 4 N / the card's measured bf16 matmul (N: the model's parameters, as the CPU
section counts them), and the peak GPU memory of the run (nvidia-smi's used memory of the compute processes,
polled; the benchmark process itself holds no CUDA context). Without a CUDA device the section says so.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from pathlib import Path

from bench import anchor as lf

SKIPPED = "skipped: no CUDA device"
CEILING_CODE = """
import torch
a = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
b = torch.randn_like(a)
for _ in range(5): a @ b
torch.cuda.synchronize()
best = 0.0
for _ in range(20):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); a @ b; e.record(); torch.cuda.synchronize()
    best = max(best, 2 * 8192 ** 3 / (s.elapsed_time(e) / 1e3))
print(torch.cuda.get_device_name(0)); print(best / 1e9)
"""


def booster() -> str:
    """Our booster for the CUDA runs: one at a time (engine.core.config.BOOSTERS), FlashAttention-2 first."""
    if importlib.util.find_spec("flash_attn") is not None:
        return "flashattn2"
    if importlib.util.find_spec("liger_kernel") is not None:
        return "liger_kernel"
    return "auto"


def model_parameters(folder: Path) -> int:
    """Parameters of a model folder's safetensors weights, read from their headers (nothing loaded)."""
    from safetensors import safe_open

    total = 0
    for path in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                n = 1
                for size in fh.get_slice(key).get_shape():
                    n *= size
                total += n
    return total


class GpuMemoryPeak:
    """The most GPU memory the compute processes used together while the block ran (nvidia-smi, polled)."""

    def __init__(self, every_s: float = 0.2):
        self.every_s, self.peak_mb = every_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(["nvidia-smi", "--query-compute-apps=used_memory", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, check=False).stdout
            used = sum(float(x) for x in out.split() if x.replace(".", "", 1).isdigit())
            self.peak_mb = max(self.peak_mb, used)
            self._stop.wait(self.every_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def cuda_config_text(anchor: lf.Anchor, model_dir: Path, output_dir: Path) -> str:
    """LLaMA-Factory's bf16 configuration for a GPU: as on the CPU, without ``use_cpu``."""
    text = lf.train_config_text(anchor, "bf16", model_dir, output_dir)
    return text.replace("\nuse_cpu: true", "\nuse_cpu: false")


def bench_cuda(workdir: Path, repeats: int, models: list[str], anchor: lf.Anchor | None, make_config,
               run_job) -> dict:
    """``make_config(run_dir, model, booster)``: our bf16 training configuration on ``model``;
    ``run_job(run_dir, cfg, what)``: its figures (suite.run_training_job)."""
    import torch

    if not torch.cuda.is_available():
        print(f"  cuda: {SKIPPED}", flush=True)
        return {"skipped": SKIPPED}
    if not models:
        raise ValueError("the cuda section needs --cuda-models PATH[,PATH] (model folders: no internet there)")
    lines = subprocess.run([sys.executable, "-c", CEILING_CODE], capture_output=True, text=True,
                           check=True).stdout.strip().splitlines()
    card, ceiling = lines[-2], float(lines[-1])
    boost = booster()
    out = {"card": card, "bf16_matmul_gflops": round(ceiling, 1), "booster": boost, "models": {}}
    for model in models:
        name, params = Path(model).name, model_parameters(Path(model))
        ours, theirs = [], []
        for i in range(repeats):
            run_dir = workdir / f"cuda-{name}-{i}"
            with GpuMemoryPeak() as gpu:
                r = run_job(run_dir, make_config(run_dir, model, boost), f"cuda {name}")
            ours.append({**r, "gpu_peak_mb": gpu.peak_mb})
            if anchor is not None and anchor.venv is not None:
                lf_dir = workdir / f"lf-cuda-{name}-{i}"
                lf_dir.mkdir(parents=True)
                text = cuda_config_text(anchor, Path(model), lf_dir / "out")
                with GpuMemoryPeak() as gpu:
                    output, peak_mb = lf.run_config(anchor, text, lf_dir, "lf-train-cuda-bf16")
                theirs.append({**lf.train_figures(lf.read_results(output, "train"), peak_mb),
                               "gpu_peak_mb": gpu.peak_mb})
        entry = {"params": params, "ours": _figures(ours, params, ceiling)}
        if theirs:
            entry["llamafactory"] = _figures(theirs, params, ceiling)
            entry["ratio"] = round(entry["ours"]["tokens_per_s"] / entry["llamafactory"]["tokens_per_s"], 3)
            entry["memory_ratio"] = round(entry["llamafactory"]["gpu_peak_mb"] / entry["ours"]["gpu_peak_mb"], 3)
        out["models"][name] = entry
        print(f"  cuda {name}: {json.dumps(entry)}", flush=True)
    return out


def _figures(runs: list[dict], params: int, ceiling_gflops: float) -> dict:
    s = lf.summary([{k: r[k] for k in ("tokens_per_s", "tokens", "train_loss", "gpu_peak_mb")} for r in runs],
                   "tokens_per_s")
    s["mfu"] = round(s["tokens_per_s"] * 4 * params / (ceiling_gflops * 1e9), 4)
    return s
