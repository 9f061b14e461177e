"""Run one training job (``python tests/helpers/measure_peak.py RUN_YAML``) and print its memory as JSON on the
last line.

Used by tests/core/test_memory_estimate.py to calibrate engine/core/memory_estimate.py against real CPU runs.

- baseline: this process's resident memory once the libraries every job imports (torch, transformers with its
  Trainer, peft, datasets and the engine's training modules) are imported, before the tokenizer, the data and
  the model are loaded. It is what engine/core/memory_estimate.py calls the CPU libraries' share of the overhead.
- peak: the process's high-water mark of resident memory (VmHWM, as wait4's ru_maxrss) when the run ends.
The estimate is compared with peak - baseline: what the run itself adds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def main(config_path: str) -> int:
    import datasets  # noqa: F401
    import peft  # noqa: F401
    import torch  # noqa: F401
    from transformers import Trainer, TrainingArguments  # noqa: F401

    import engine.core.encode
    import engine.modeling.finetuning
    import engine.train.fast_loss
    import engine.train.lean_activations
    import engine.train.segment_attention  # noqa: F401
    from engine.train.run import run_training

    baseline = _status_kb("VmRSS") * 1024
    code = run_training(config_path)
    print(json.dumps({"code": code, "baseline": baseline, "peak": _status_kb("VmHWM") * 1024}), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
