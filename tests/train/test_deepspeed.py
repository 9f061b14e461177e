"""DeepSpeed without a GPU: the launch command, ZeRO-3's order of arguments and model, probes under ZeRO-3,
DeepSpeed's checkpoint layout, and (where the deepspeed package is installed) real runs on DeepSpeed's CPU
accelerator with gloo between processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from engine.core.checkpoints import last_complete_checkpoint, list_checkpoints
from engine.core.config import DEEPSPEED_OFF, DEEPSPEED_ZERO2, DEEPSPEED_ZERO3, RunConfig
from engine.core.rundir import FAILED, FINISHED, STOPPED, RunDir
from engine.jobs.launch import job_command, uses_torchrun
from tests.helpers.runs import ROOT, tiny_train_config, wait_for_state

# What deepspeed.comm.init_distributed needs to find in the environment; without it, it asks MPI (mpi4py).
DEEPSPEED_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _has_deepspeed() -> bool:
    import importlib.util

    return importlib.util.find_spec("deepspeed") is not None


needs_deepspeed = pytest.mark.skipif(not _has_deepspeed(), reason="the deepspeed package is not installed")


def _cpu_env(**extra) -> dict:
    """A subprocess environment on DeepSpeed's CPU accelerator (found without asking for CUDA)."""
    return {**os.environ, "DS_ACCELERATOR": "cpu", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]), **extra}


# -- item 3: every DeepSpeed job goes through torchrun ---------------------------------------------------------

@pytest.mark.parametrize("device", ["cuda", "npu", "cpu"])
@pytest.mark.parametrize("stage", [DEEPSPEED_ZERO2, DEEPSPEED_ZERO3])
def test_single_device_deepspeed_job_runs_under_torchrun(tmp_path, device, stage):
    cfg = RunConfig()
    cfg.model.device, cfg.distributed.deepspeed = device, stage
    assert not cfg.is_distributed()
    cmd, env = job_command(cfg, tmp_path / "run.yaml")
    assert uses_torchrun(cfg, "train")
    assert cmd[1:3] == ["-m", "torch.distributed.run"]
    assert cmd[cmd.index("--nproc_per_node") + 1] == "1" and cmd[cmd.index("--nnodes") + 1] == "1"
    assert cmd[-4:] == ["-m", "engine", "train", str(tmp_path / "run.yaml")]
    assert env["MASTER_ADDR"] == "127.0.0.1" and env["MASTER_PORT"] == str(cfg.distributed.master_port)
    # eval and export never start DeepSpeed: plain Python
    assert job_command(cfg, tmp_path / "run.yaml", "export")[0][1:3] == ["-m", "engine"]


def test_plain_single_device_job_stays_plain_python(tmp_path):
    cfg = RunConfig()
    assert cfg.distributed.deepspeed == DEEPSPEED_OFF
    cmd, _ = job_command(cfg, tmp_path / "run.yaml")
    assert cmd == [sys.executable, "-m", "engine", "train", str(tmp_path / "run.yaml")]


@pytest.mark.slow
@needs_deepspeed
def test_torchrun_gives_deepspeed_what_it_needs_without_mpi(tmp_path):
    """The launcher job_command gives, running deepspeed.init_distributed as the engine does: it must find
    its environment and never ask for MPI (plain python reproduces "No module named 'mpi4py'")."""
    probe = tmp_path / "ds_probe.py"
    probe.write_text(textwrap.dedent(f"""
        import json, os, sys
        import deepspeed
        deepspeed.init_distributed(dist_backend="gloo")
        print("DSENV " + json.dumps({{k: os.environ.get(k) for k in {DEEPSPEED_ENV!r}}}))
    """))
    cfg = RunConfig()
    cfg.model.device, cfg.distributed.deepspeed, cfg.distributed.master_port = "cpu", DEEPSPEED_ZERO2, 29641
    cmd, env = job_command(cfg, tmp_path / "run.yaml")
    launcher = cmd[:cmd.index("-m", 3)]  # torchrun and its options; the job itself replaced by the probe
    out = subprocess.run([*launcher, str(probe)], env=_cpu_env(**env), capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    seen = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("DSENV "))[6:])
    assert seen == {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                    "MASTER_PORT": "29641"}
    assert "mpi4py" not in out.stderr


# -- item 2: probe questions under ZeRO-3 ------------------------------------------------------------------------

@pytest.mark.slow  # the demo model (converted on first use)
def test_probes_are_off_under_zero3_and_say_so(tmp_path, demo_model_dir):
    from engine.modeling.models import load_tokenizer
    from engine.train.probes import make_probe_callback

    tokenizer = load_tokenizer(str(demo_model_dir))
    logged: list[str] = []
    cfg = tiny_train_config(probe_questions="Who are you?")
    cfg.distributed.deepspeed = DEEPSPEED_ZERO3
    assert make_probe_callback(cfg, tokenizer, RunDir(tmp_path), logged.append) is None
    assert any("off under DeepSpeed ZeRO-3" in line for line in logged)
    # ZeRO-2 keeps whole weights on every rank: rank 0 answers alone, as without DeepSpeed.
    cfg.distributed.deepspeed = DEEPSPEED_ZERO2
    assert make_probe_callback(cfg, tokenizer, RunDir(tmp_path), logged.append) is not None


# -- item 6: DeepSpeed's checkpoint layout -----------------------------------------------------------------------

def _trainer_files(ckpt: Path, step: int) -> None:
    """What the Trainer itself writes into a checkpoint beside DeepSpeed's files (trainer_state.json last)."""
    (ckpt / "adapter_model.safetensors").write_bytes(b"weights")
    (ckpt / "rng_state_0.pth").write_bytes(b"rng")
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": [
        {"step": step, "loss": 1.5}]}))


def _deepspeed_layout(ckpt: Path, step: int, ranks: int, zero3: bool, bf16: bool) -> Path:
    """The files engine.save_checkpoint writes (deepspeed/runtime/engine.py: _get_ckpt_name,
    _get_rank_zero_ckpt_name, then ``latest`` once all ranks are done)."""
    tag = ckpt / f"global_step{step}"
    tag.mkdir(parents=True)
    for r in range(ranks):
        (tag / f"{'bf16_' if bf16 else ''}zero_pp_rank_{r}_mp_rank_00_optim_states.pt").write_bytes(b"o")
        if zero3:
            (tag / f"zero_pp_rank_{r}_mp_rank_00_model_states.pt").write_bytes(b"m")
    if not zero3:
        (tag / "mp_rank_00_model_states.pt").write_bytes(b"m")
    (ckpt / "zero_to_fp32.py").write_text("# DeepSpeed's script\n")
    return tag


@pytest.mark.parametrize(("zero3", "bf16"), [(False, False), (True, True), (True, False)])
def test_deepspeed_checkpoint_counts_as_complete(tmp_path, zero3, bf16):
    ckpt = tmp_path / "checkpoint-4"
    tag = _deepspeed_layout(ckpt, 4, 2, zero3, bf16)
    _trainer_files(ckpt, 4)
    assert not list_checkpoints(tmp_path)[0].complete  # DeepSpeed writes ``latest`` last: not done yet
    (ckpt / "latest").write_text(tag.name)
    found = last_complete_checkpoint(tmp_path)
    assert found is not None and found.step == 4 and found.loss == 1.5


@pytest.mark.parametrize("damage", ["rank1_optimizer", "rank1_model", "latest_elsewhere", "latest_escapes",
                                    "trainer_state"])
def test_damaged_deepspeed_checkpoint_is_incomplete(tmp_path, damage):
    ckpt = tmp_path / "checkpoint-4"
    tag = _deepspeed_layout(ckpt, 4, 2, zero3=True, bf16=True)
    _trainer_files(ckpt, 4)
    (ckpt / "latest").write_text(tag.name)
    if damage == "rank1_optimizer":
        (tag / "bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt").unlink()
    elif damage == "rank1_model":
        (tag / "zero_pp_rank_1_mp_rank_00_model_states.pt").unlink()
    elif damage == "latest_elsewhere":
        (ckpt / "latest").write_text("global_step8")
    elif damage == "latest_escapes":
        (ckpt / "latest").write_text(f"../checkpoint-4/{tag.name}")
    else:
        (ckpt / "trainer_state.json").write_text('{"global_step": ')
    assert last_complete_checkpoint(tmp_path) is None


def test_resuming_a_deepspeed_checkpoint_needs_the_same_process_count(tmp_path):
    """DeepSpeed reloads a ZeRO optimizer state split as it was saved (rank r reads share r): a resume with
    another number of processes is refused up front instead of failing, or mixing shares, at load."""
    from engine.core.checkpoints import resume_plan

    cfg = tiny_train_config()
    cfg.model.device, cfg.distributed.deepspeed, cfg.distributed.devices = "cuda", DEEPSPEED_ZERO2, "0,1"
    cfg.train.output_dir = str(tmp_path)
    cfg.save(tmp_path / "run.yaml", "train")
    ckpt = tmp_path / "checkpoint-4"
    (ckpt / "latest").parent.mkdir()
    (ckpt / "latest").write_text(_deepspeed_layout(ckpt, 4, 2, zero3=False, bf16=True).name)
    _trainer_files(ckpt, 4)
    assert not resume_plan(tmp_path, cfg).conflicts
    cfg.distributed.devices = "2,3"  # other GPUs, as many: fine
    assert not resume_plan(tmp_path, cfg).conflicts
    cfg.distributed.devices = "0,1,2"
    assert resume_plan(tmp_path, cfg).conflicts == ["distributed.devices"]
    cfg.distributed.devices, cfg.distributed.nproc_per_node = "0", 2  # two processes again, said otherwise
    assert not resume_plan(tmp_path, cfg).conflicts


_DS_SAVE = """
import sys, torch, deepspeed
stage, out = int(sys.argv[1]), sys.argv[2]
deepspeed.init_distributed(dist_backend="gloo")
model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
config = {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1,
          "optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "torch_adam": True}},
          "zero_optimization": {"stage": stage}}
engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=config)
loss = engine(torch.ones(1, 8)).sum()
engine.backward(loss)
engine.step()
engine.save_checkpoint(out)
torch.distributed.destroy_process_group()  # as the engine does: without it gloo may abort the exit (exit -6)
"""


@pytest.mark.slow
@needs_deepspeed
@pytest.mark.parametrize("stage", [2, 3])
def test_checkpoint_saved_by_deepspeed_itself_is_complete(tmp_path, stage):
    """DeepSpeed's own save_checkpoint on its CPU accelerator, two gloo processes, plus the Trainer's files."""
    script = tmp_path / "ds_save.py"
    script.write_text(_DS_SAVE)
    ckpt = tmp_path / "run" / "checkpoint-1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(29650 + stage), str(script), str(stage), str(ckpt)]
    out = subprocess.run(cmd, env=_cpu_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (ckpt / "latest").read_text().strip() == "global_step1"
    assert not list_checkpoints(ckpt.parent)[0].complete  # no trainer_state.json yet
    _trainer_files(ckpt, 1)
    found = last_complete_checkpoint(ckpt.parent)
    assert found is not None and found.step == 1
    # A share lost afterwards: rank 0's (the highest rank's alone cannot be told from the file names; a save cut
    # off is told by trainer_state.json, which the Trainer writes after DeepSpeed's closing barrier).
    next((ckpt / "global_step1").glob("*zero_pp_rank_0_mp_rank_00_optim_states.pt")).unlink()
    assert last_complete_checkpoint(ckpt.parent) is None


# -- item 7: the DeepSpeed config exists before the model loads ---------------------------------------------------

_ORDER_PROBE = """
import sys
import engine.train.run
from engine.train.run import run_training

def recording_load_model(*args, **kwargs):
    from transformers.integrations import is_deepspeed_zero3_enabled
    print("ZERO3_AT_LOAD", is_deepspeed_zero3_enabled(), flush=True)
    raise SystemExit(0)

engine.train.run.load_model = recording_load_model  # the name the job calls
run_training(sys.argv[1])
"""


@needs_deepspeed
@pytest.mark.slow  # the demo model (converted on first use)
@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_zero3_config_is_in_force_when_the_model_loads(tmp_path, demo_model_dir, stage):
    """transformers only loads a model partitioned (zero.Init) when the ZeRO-3 config is registered before
    from_pretrained: run the real training entry point up to the model loader and ask transformers there."""
    cfg = tiny_train_config()
    cfg.model.device, cfg.distributed.deepspeed = "cpu", DEEPSPEED_ZERO3
    cfg.train.stage = stage
    cfg.data.datasets = ["identity" if stage == "sft" else "dpo_demo"]
    cfg.train.finetuning_type = "full" if stage == "dpo" else "lora"  # full DPO also loads a reference model
    cfg.train.output_dir = str(tmp_path)
    cfg.save(tmp_path / "run.yaml", "train")
    script = tmp_path / "order_probe.py"
    script.write_text(_ORDER_PROBE)
    env = _cpu_env(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="29655")
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "run.yaml")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert "ZERO3_AT_LOAD True" in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]


# -- two DeepSpeed processes on the CPU: losses, probes, checkpoint, Stop and Resume --------------------------------

# DeepSpeed's bf16 mode casts the whole model, LoRA adapters included, to bf16 (fp32 master weights in the
# optimizer), where one process keeps the adapters in fp32 under autocast: the losses differ by about 0.2%.
LOSS_TOLERANCE = 1e-2


def _pair_config(nproc: int, stage: str = DEEPSPEED_OFF) -> RunConfig:
    """24 identity samples, 4 a step in all (one process of 4, or two of 2): 6 steps, a checkpoint every 2."""
    cfg = tiny_train_config(per_device_train_batch_size=4 // nproc, logging_steps=1, save_steps=2,
                            probe_questions="Who are you?", probe_max_new_tokens=8)
    cfg.model.device = "cpu"
    cfg.distributed.deepspeed, cfg.distributed.nproc_per_node = stage, nproc if nproc > 1 else 0
    return cfg


def _losses(run: RunDir) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in run.read_events() if "loss" in e and not e.get("initial")}


@pytest.fixture(scope="module")
def one_process_losses(tmp_path_factory, demo_model_dir) -> dict[int, float]:
    """The same run in one ordinary process (the standard loss: the answer-only one is off under torchrun)."""
    out = tmp_path_factory.mktemp("one-process")
    cfg = _pair_config(1)
    cfg.train.output_dir = str(out)
    cfg.save(out / "run.yaml", "train")
    with open(out / "stdout.log", "wb") as log:
        subprocess.run([sys.executable, "-m", "engine", "train", str(out / "run.yaml")], cwd=ROOT, stdout=log,
                       stderr=subprocess.STDOUT, timeout=600, env={**os.environ, "TUNEBOARD_FAST_LOSS": "0"})
    run = RunDir(out)
    assert run.read_status()["state"] == FINISHED, (out / "stdout.log").read_text()[-3000:]
    return _losses(run)


@needs_deepspeed
@pytest.mark.slow
@pytest.mark.parametrize("stage", [DEEPSPEED_ZERO2, DEEPSPEED_ZERO3])
def test_two_deepspeed_processes_stop_resume_and_match_one(stage, workdirs, demo_model_dir, one_process_losses,
                                                           monkeypatch):
    from engine.core.checkpoints import resume_plan
    from engine.jobs import warm_worker
    from webui import runner

    monkeypatch.setenv("DS_ACCELERATOR", "cpu")  # no CUDA probing in the jobs the runner starts
    # Nor a warm worker started with that variable: it would outlive this test and refuse later jobs
    # (their environment lacks it), which would then start cold.
    monkeypatch.setenv(warm_worker.ENV_SWITCH, "0")
    cfg = _pair_config(2, stage)
    cfg.distributed.master_port = 29660 + int(stage)
    run = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", f"deepspeed-zero{stage}")
    assert "torch.distributed.run" in runner.command_preview(run, cfg)
    runner.launch(run, cfg)
    # Stop once the first checkpoint is complete; a timeout anywhere below is a hang.
    deadline = time.time() + 600
    while time.time() < deadline and last_complete_checkpoint(run.path) is None:
        assert run.live_status().get("state") not in (FAILED, FINISHED, STOPPED), run.log_tail(60)
        time.sleep(0.2)
    assert last_complete_checkpoint(run.path) is not None, run.log_tail(60)
    runner.stop(run)
    status = wait_for_state(run, 300, (FAILED, FINISHED, STOPPED))
    assert status["state"] == STOPPED and status["step"] < status["total_steps"] == 6, run.log_tail(60)
    last = last_complete_checkpoint(run.path)
    assert last.step in (2, 4) and (last.path / "latest").is_file()  # DeepSpeed's layout, counted complete
    assert resume_plan(run.path, cfg).checkpoint.step == last.step

    runner.launch(run, cfg)  # Resume (train.resume is on by default)
    status = wait_for_state(run, 600, (FAILED, FINISHED, STOPPED))
    assert status["state"] == FINISHED and status["resumed_from"] == last.path.name, run.log_tail(60)
    assert status["step"] == 6
    text = run.log_path.read_text()
    assert f"resuming from {last.path.name} (step {last.step})" in text
    ours = _losses(run)
    assert sorted(ours) == sorted(one_process_losses), (ours, one_process_losses)  # each step once
    for step, loss in one_process_losses.items():
        assert ours[step] == pytest.approx(loss, rel=LOSS_TOLERANCE), (step, ours, one_process_losses)
    probe_steps = {e["step"] for e in run.read_events() if "probes" in e}
    if stage == DEEPSPEED_ZERO3:
        assert not probe_steps and "probe questions: off under DeepSpeed ZeRO-3" in text
    else:  # rank 0 answers alone under ZeRO-2 (whole weights on every rank) without stalling the others
        assert {2, 6} <= probe_steps, probe_steps
    assert (run.path / "adapter_model.safetensors").is_file()
