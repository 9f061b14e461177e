"""The demo preset's wall time, Start to "Training finished", in this tree and in others (earlier commits).

    git worktree add --detach /tmp/before 75d2a51
    python bench/demo_wall.py --against /tmp/before --repeats 3

Each tree runs its own demo preset (engine.core.presets.demo_config) with the command and environment its own
Start gives a job (engine.jobs.launch.job_command), the trees alternating so that drift on a shared machine
hits all of them. The wall time is the job process's, from its start to its exit: imports, model load,
training, the probe rounds and the checkpoints. Printed with the final probe score, so a faster preset that
learns less shows it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import temporary_folders, write_results  # noqa: E402

# Run inside each tree (its own engine): writes the tree's demo preset into the run folder and prints the
# command and environment that tree's Start would run it with.
_PREPARE = """
import json, sys
from pathlib import Path
from engine.core.presets import demo_config
from engine.core.rundir import RunDir
from engine.jobs.launch import job_command
run = RunDir(Path(sys.argv[1]))
run.path.mkdir(parents=True)
cfg = demo_config()
cfg.train.output_dir = str(run.path)
cfg.save(run.config_path, "train")
argv, env = job_command(cfg, run.config_path)
print(json.dumps({"argv": argv, "env": env}))
"""


def run_demo(tree: Path, run_dir: Path) -> dict:
    """One demo preset run of ``tree``: wall seconds, the trainer's own runtime, and the final probe score."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    prepared = subprocess.run([sys.executable, "-c", _PREPARE, str(run_dir)], cwd=tree, env=env, text=True,
                              capture_output=True, check=True)
    job = json.loads(prepared.stdout.strip().splitlines()[-1])
    t0 = time.perf_counter()
    with open(run_dir / "bench.log", "wb") as log:
        code = subprocess.run(job["argv"], cwd=tree, env=dict(env, **job["env"]), stdout=log,
                              stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    status = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    if code or status.get("state") != "finished":
        raise RuntimeError(f"demo preset in {tree} failed ({code}): {status.get('error')}")
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
              if line.strip()]
    scores = [(e["step"], e["probe_score"]) for e in events if "probe_score" in e]
    return {"wall_s": wall, "runtime_s": status["metrics"]["train_runtime"], "steps": status.get("step"),
            "train_loss": status["metrics"].get("train_loss"), "probe_scores": scores}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", type=Path, action="append", default=[],
                        help="another source tree (e.g. a git worktree of an earlier commit); repeatable")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "demo_wall.json")
    args = parser.parse_args(argv)
    trees = [ROOT, *(t.resolve() for t in args.against)]
    work = temporary_folders("tuneboard-demo-wall-")
    runs: dict[str, list[dict]] = {str(t): [] for t in trees}
    for i in range(args.repeats):
        for k, tree in enumerate(trees):
            result = run_demo(tree, work / "saves" / f"demo-{k}-{i}")
            runs[str(tree)].append(result)
            print(f"  {tree} {i + 1}/{args.repeats}: {result['wall_s']:.1f} s wall ({result['runtime_s']:.1f} s "
                  f"training, {result['steps']} steps), loss {result['train_loss']:.3f}, probe scores "
                  f"{result['probe_scores']}", flush=True)
    summary = {tree: {"wall_s": round(statistics.median(r["wall_s"] for r in rs), 1),
                      "each": [round(r["wall_s"], 1) for r in rs], "steps": rs[0]["steps"],
                      "final_probe_score": rs[-1]["probe_scores"][-1][1] if rs[-1]["probe_scores"] else None}
               for tree, rs in runs.items()}
    here = summary[str(ROOT)]["wall_s"]
    print()
    for tree, s in summary.items():
        ratio = "" if tree == str(ROOT) else f"  this tree takes {here / s['wall_s']:.2f}x its time"
        print(f"{tree}: {s['wall_s']} s ({s['steps']} steps, final probe score {s['final_probe_score']}){ratio}")
    write_results(args.out, {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
