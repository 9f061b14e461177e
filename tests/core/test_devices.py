"""engine/core/devices.py and what follows from a job's device: the devices a job sees and in what order, the
CPU-only tuning only on the CPU, bf16 only where the hardware has it, the cache freed on the device a chat model
was on, and a broken torch-npu kept away from CPU work. No GPU needed: torch.cuda / torch.npu answers are faked
at the device layer's boundary."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from engine.core import allocator, devices
from engine.core.config import RunConfig
from engine.jobs.launch import job_command

torch = pytest.importorskip("torch")

TUNING = ("LD_PRELOAD", "OMP_WAIT_POLICY")


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch):
    for name in ("CUDA_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES", "OMP_WAIT_POLICY", "LD_PRELOAD",
                 devices.BACKEND_AUTOLOAD, allocator.ENV_SWITCH):
        monkeypatch.delenv(name, raising=False)
    # tcmalloc where the test machine lacks it, so that its absence from GPU jobs means something
    monkeypatch.setattr(allocator, "tcmalloc_path", lambda: "/usr/lib/libtcmalloc_minimal.so.4")
    yield
    devices.machine_device.cache_clear()  # it may have cached a faked machine


def config(device: str, ticked: str = "", nproc: int = 0) -> RunConfig:
    cfg = RunConfig()
    cfg.model.device = device
    cfg.distributed.devices = ticked
    cfg.distributed.nproc_per_node = nproc
    return cfg


def listed_gpus(monkeypatch, count: int) -> None:
    """A machine whose nvidia-smi lists ``count`` GPUs (how the web process and the warm worker, which do not
    import torch, tell an accelerator machine)."""
    from engine.core import hardware

    gpus = [hardware.DeviceUse("GPU", i, "NVIDIA GeForce RTX 4090", 0.0, 24564.0, 0.0) for i in range(count)]
    monkeypatch.setattr(hardware, "device_use", lambda: gpus)
    monkeypatch.setattr(devices, "device_use", lambda: gpus)  # machine_device's own reference
    devices.machine_device.cache_clear()


def fake_gpus(monkeypatch, count: int) -> None:
    """A CUDA machine with ``count`` GPUs, as torch.cuda reports it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


# -- which devices a job sees -----------------------------------------------------------------------------
@pytest.mark.parametrize("device, variable", [("cuda", "CUDA_VISIBLE_DEVICES"), ("npu", "ASCEND_RT_VISIBLE_DEVICES")])
@pytest.mark.parametrize("ticked, visible, launcher", [("", "0", "python"), ("1", "1", "python"),
                                                       ("0,2,3", "0,2,3", "torchrun")])
def test_job_sees_the_ticked_devices_or_only_the_first(device, variable, ticked, visible, launcher, tmp_path):
    """Nothing ticked on a machine with several accelerators: the job sees the first only (one process seeing
    several GPUs is wrapped in DataParallel by the Trainer). GPUs are numbered in PCI bus order, as nvidia-smi
    and the picker number them; no CPU-only tuning for an accelerator job."""
    argv, env = job_command(config(device, ticked), tmp_path / "run.yaml")
    assert env[variable] == visible
    assert ("torch.distributed.run" in argv) == (launcher == "torchrun")
    if launcher == "torchrun":
        assert argv[argv.index("--nproc_per_node") + 1] == "3"
    assert (env.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID") == (device == "cuda")
    assert not set(TUNING) & set(env) and devices.BACKEND_AUTOLOAD not in env


def test_auto_on_a_multi_gpu_machine_uses_the_first_gpu(monkeypatch, tmp_path):
    fake_gpus(monkeypatch, 4)
    _, env = job_command(config("auto"), tmp_path / "run.yaml")
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert not set(TUNING) & set(env)


def test_untouched_devices_follow_the_processes_and_the_app_s_own_restriction(monkeypatch, tmp_path):
    fake_gpus(monkeypatch, 4)
    argv, env = job_command(config("cuda", nproc=2), tmp_path / "run.yaml")
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1" and "torch.distributed.run" in argv  # one device per process
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # the app was started restricted to GPUs 2 and 3
    assert job_command(config("cuda"), tmp_path / "run.yaml")[1]["CUDA_VISIBLE_DEVICES"] == "2"
    # eval and export are single processes too, and get the first device, whatever the train tab ticked
    assert job_command(config("cuda", "1,2"), tmp_path / "run.yaml", "eval")[1]["CUDA_VISIBLE_DEVICES"] == "2"


# -- CPU-only tuning: CPU jobs only -----------------------------------------------------------------------
@pytest.mark.parametrize("ticked, nproc", [("", 0), ("1", 0), ("", 2)])
def test_cpu_job_gets_the_cpu_tuning_and_no_device_variables(ticked, nproc, tmp_path):
    argv, env = job_command(config("cpu", ticked, nproc), tmp_path / "run.yaml")
    assert env["LD_PRELOAD"] == "/usr/lib/libtcmalloc_minimal.so.4" and "OMP_WAIT_POLICY" not in env
    assert not {"CUDA_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"} & set(env)
    assert ("torch.distributed.run" in argv) == (nproc == 2)


def test_cpu_tuning_decided_in_one_place(monkeypatch, tmp_path):
    """OpenMP's waits are left as they are (an exported policy reaches jobs through the inherited environment);
    CPU export on a GPU machine is a CPU job; the warm worker starts with the default device's tuning (none on a
    GPU machine)."""
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert "OMP_WAIT_POLICY" not in devices.cpu_tuning_env("cpu")
    monkeypatch.delenv("OMP_WAIT_POLICY")
    fake_gpus(monkeypatch, 2)
    cfg = config("auto")
    cfg.export.device = "cpu"
    assert "LD_PRELOAD" in job_command(cfg, tmp_path / "run.yaml", "export")[1]
    assert "LD_PRELOAD" not in job_command(cfg, tmp_path / "run.yaml", "train")[1]
    assert all(not devices.cpu_tuning_env(d) for d in ("cuda", "npu", "mps"))


def test_web_process_env(monkeypatch):
    """The web process numbers GPUs as the picker does and never preloads an allocator its children would inherit
    (nor sets OpenMP's waits: chat's thread count is governed, engine.core.cpu_threads)."""
    listed_gpus(monkeypatch, 0)
    env = devices.web_process_env()
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert "LD_PRELOAD" not in env and "OMP_WAIT_POLICY" not in env
    listed_gpus(monkeypatch, 1)
    assert devices.web_process_env() == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


# -- bf16 -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("major, native", [(7, False), (8, True), (9, True)])
def test_cuda_bf16_only_where_native(monkeypatch, major, native):
    """A T4 or V100 (compute capability 7.x) can run bf16 emulated, which torch counts by default: auto must
    pick fp16 there."""
    fake_gpus(monkeypatch, 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda _i: SimpleNamespace(major=major, minor=5))
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda _d: True, raising=False)
    assert devices.supports_bf16("cuda") is native
    assert devices.resolve_compute_type("auto", "cuda") == ("bf16" if native else "fp16")
    if not native:
        with pytest.raises(RuntimeError, match="no native bf16"):
            devices.resolve_compute_type("bf16", "cuda")


@pytest.mark.parametrize("chip_has_bf16", [False, True])  # 910A / 310P, 910B
def test_npu_bf16_as_torch_npu_says(monkeypatch, chip_has_bf16):
    monkeypatch.setattr(devices, "_torch_npu_available", lambda: True)
    monkeypatch.setattr(torch, "npu", SimpleNamespace(is_bf16_supported=lambda: chip_has_bf16), raising=False)
    assert devices.supports_bf16("npu") is chip_has_bf16
    assert devices.resolve_compute_type("auto", "npu") == ("bf16" if chip_has_bf16 else "fp16")
    monkeypatch.setattr(devices, "_torch_npu_available", lambda: False)
    assert devices.supports_bf16("npu") is False


# -- chat unload frees the right device's cache -----------------------------------------------------------
@pytest.mark.parametrize("device", ["cuda", "npu", "cpu"])
def test_unload_frees_the_cache_of_the_model_s_device(monkeypatch, device):
    from engine.serve.chat import ChatEngine

    freed = []
    fake_gpus(monkeypatch, 1)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: freed.append("cuda"))
    monkeypatch.setattr(devices, "_torch_npu_available", lambda: True)
    monkeypatch.setattr(torch, "npu", SimpleNamespace(empty_cache=lambda: freed.append("npu")), raising=False)
    engine = ChatEngine()
    engine.device = device
    engine._release()
    assert freed == ([] if device == "cpu" else [device]) and engine.device is None


# -- torch-npu installed, CANN broken ---------------------------------------------------------------------
@pytest.fixture
def broken_torch_npu(tmp_path, monkeypatch):
    """A torch-npu that torch autoloads (its entry point in the torch.backends group) and that fails as it does
    when CANN's libraries are missing."""
    site = tmp_path / "site"
    (site / "torch_npu").mkdir(parents=True)
    (site / "torch_npu" / "__init__.py").write_text(textwrap.dedent("""\
        raise ImportError("libascendcl.so: cannot open shared object file: No such file or directory")
        """))
    dist = site / "torch_npu-2.6.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: torch_npu\nVersion: 2.6.0\n")
    (dist / "entry_points.txt").write_text("[torch.backends]\ntorch_npu = torch_npu:_autoload\n")
    monkeypatch.syspath_prepend(str(site))
    return site


def _python(code: str, site, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=300,
                          check=False)


@pytest.mark.slow
def test_cpu_job_survives_a_broken_torch_npu(broken_torch_npu, tmp_path):
    """Autoloaded, the broken torch-npu makes ``import torch`` itself fail; a CPU job's environment switches the
    autoload off, and the failure, where it still happens, is one sentence naming CANN."""
    _, env = job_command(config("cpu"), tmp_path / "run.yaml")
    assert env[devices.BACKEND_AUTOLOAD] == "0"
    assert _python("import torch", broken_torch_npu).returncode != 0
    ok = _python("import torch; from engine.core.devices import pick_device; print(pick_device('auto'))",
                 broken_torch_npu, **env)
    assert ok.returncode == 0 and ok.stdout.strip() == "cpu", ok.stderr
    assert "CANN" in ok.stderr  # why the NPU is not used, said once
    failed = _python("import torch", broken_torch_npu)
    described = _python(textwrap.dedent("""\
        from engine.jobs.job import describe_error
        try:
            import torch
        except Exception as exc:
            print(describe_error(exc))
        """), broken_torch_npu)
    assert "RuntimeError" in failed.stderr
    sentence = described.stdout.strip()
    assert "CANN" in sentence and "libascendcl.so" in sentence and "\n" not in sentence


def test_describe_error_names_cann():
    from engine.jobs.job import describe_error

    try:
        try:
            raise ImportError("libhccl.so: cannot open shared object file")
        except ImportError as inner:
            raise RuntimeError("Failed to load the backend extension: torch_npu. You can disable extension "
                               "auto-loading with TORCH_DEVICE_BACKEND_AUTOLOAD=0.") from inner
    except RuntimeError as exc:
        text = describe_error(exc)
    assert text.startswith("torch-npu (the Ascend NPU backend) is installed but does not load") and "libhccl" in text
    assert describe_error(ValueError("x")) == "ValueError: x"
    npu_runtime = RuntimeError("call aclnnMatmul failed (torch_npu/csrc/framework/OpCommand.cpp:1)")
    assert describe_error(npu_runtime).startswith("RuntimeError: call aclnnMatmul")  # loaded, then failed


# -- the warm worker where it cannot work -----------------------------------------------------------------
def test_warm_worker_is_not_started_without_so_peercred(workdirs, monkeypatch):
    """macOS has no SO_PEERCRED: a worker there died at its first request and was started again at every Start.
    Now none is started, and launches start cold. Where it runs, it starts with a CPU job's environment on a CPU
    machine and none of the CPU tuning on a GPU machine."""
    import socket

    from engine.jobs import warm_worker

    started = []
    monkeypatch.setattr(warm_worker, "_started", None)
    monkeypatch.setattr(warm_worker.subprocess, "Popen",
                        lambda *_a, **kw: started.append(kw["env"]) or SimpleNamespace(poll=lambda: None))
    monkeypatch.delenv(warm_worker.ENV_SWITCH, raising=False)
    monkeypatch.delattr(socket, "SO_PEERCRED", raising=False)
    warm_worker.start()
    assert not started and not warm_worker.enabled()
    saves = workdirs["saves"]
    assert warm_worker.spawn(saves / "t", "train", saves / "c", {}, saves, saves / "log",
                             recorded=lambda *_a: None) is None
    monkeypatch.setattr(socket, "SO_PEERCRED", 17, raising=False)  # Linux
    listed_gpus(monkeypatch, 0)
    warm_worker.start()
    assert len(started) == 1 and "LD_PRELOAD" in started[0]
    monkeypatch.setattr(warm_worker, "_started", None)
    listed_gpus(monkeypatch, 2)
    warm_worker.start()
    assert len(started) == 2 and "LD_PRELOAD" not in started[1]
