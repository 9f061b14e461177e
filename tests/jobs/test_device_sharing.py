"""Chat's model and the jobs on one device (issue 17, items 1 and 10), on a CPU-only machine.

The device layer is faked where these tests need a GPU (engine.core.devices.available_device_types answers "cuda", the
hardware reading lists a GPU of a chosen size); the chat engine is a stand-in with ChatEngine's interface (loaded,
describe, unload): launch() and Load model are what is tested, and they only talk to it through that interface.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from engine.core.checkpointing_choice import choose_checkpointing
from engine.core.config import RunConfig
from engine.core.memory_estimate import GB
from engine.core.memory_fit import DeviceMemory
from engine.core.rundir import QUEUED, RUNNING, STOPPED, RunDir
from engine.jobs import device_queue
from tests.helpers.runs import tiny_train_config, wait_for_state
from webui import chat_tab, runner
from webui.locales import t

MODEL = "SmolLM2-135M-Instruct"


class FakeChat:
    """ChatEngine's interface as launch() uses it, with its model on ``device``."""

    def __init__(self, device: str, model: str = "Qwen2.5-7B-Instruct") -> None:
        self.device, self.model, self.unloads = device, model, 0

    @property
    def loaded(self) -> bool:
        return self.device is not None

    def describe(self) -> dict:
        return {"model": self.model if self.loaded else None, "device": self.device, "adapter": None}

    def unload(self) -> None:
        self.unloads += 1
        self.device = None


@pytest.fixture
def gpu_machine(monkeypatch):
    """A machine with CUDA GPUs as the web process sees them (as app.py sets it up: PCI bus order)."""
    import engine.core.devices

    monkeypatch.setattr(engine.core.devices, "available_device_types", lambda: ["cuda", "cpu"])
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@pytest.fixture
def device_held(workdirs, monkeypatch):
    """The device lock held by this test: a launched job waits in the queue (and is cancelled at the end)
    instead of starting, so launch() is exercised whole without a training process (nor a warm worker)."""
    monkeypatch.setenv("TUNEBOARD_WARM_WORKER", "0")
    fd = device_queue._try_lock()
    assert fd is not None, "another job holds the device"
    launched: list[RunDir] = []
    yield launched
    for run in launched:
        runner.stop(run)
        wait_for_state(run, 30, (STOPPED,))
    os.close(fd)


def _cfg(device: str = "auto", devices: str = "") -> RunConfig:
    cfg = tiny_train_config()
    cfg.model.device, cfg.distributed.devices = device, devices
    cfg.validate()
    return cfg


def _launch(name: str, cfg: RunConfig, chat, launched: list) -> RunDir:
    run = runner.run_dir_for(MODEL, "lora", name)
    runner.launch(run, cfg, chat=chat)
    launched.append(run)
    return run


# -- item 1: Start frees the chat model where the job needs its device ------------------------------------------

def test_start_unloads_chat_on_the_gpu_the_job_uses(gpu_machine, device_held):
    chat = FakeChat("cuda")
    run = _launch("share-same-gpu", _cfg(), chat, device_held)  # nothing ticked: the job takes GPU 0, as chat
    assert chat.unloads == 1
    status = run.read_status()
    assert status["state"] == QUEUED and status["chat_unloaded"] == {"model": "Qwen2.5-7B-Instruct", "device": "cuda"}
    # What Start's message adds, in every language.
    assert "Qwen2.5-7B-Instruct" in t("ko", "chat_unloaded_for_run", **status["chat_unloaded"])


def test_start_leaves_chat_on_another_gpu_or_device(gpu_machine, device_held):
    on_gpu0 = FakeChat("cuda")
    run = _launch("share-other-gpu", _cfg(devices="1"), on_gpu0, device_held)  # the job is on GPU 1 only
    assert on_gpu0.unloads == 0 and run.read_status()["chat_unloaded"] is None
    on_cpu = FakeChat("cpu")
    _launch("share-gpu-job-cpu-chat", _cfg(device="cuda"), on_cpu, device_held)
    assert on_cpu.unloads == 0


def test_gpu_numbering_follows_the_web_process_restriction(gpu_machine, monkeypatch):
    """The app started with CUDA_VISIBLE_DEVICES=2,3: chat's cuda:0 is GPU 2, a job with nothing ticked too."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert device_queue.shares_accelerator("cuda", _cfg(), "train")
    assert device_queue.shares_accelerator("cuda", _cfg(devices="2"), "train")
    assert not device_queue.shares_accelerator("cuda", _cfg(devices="3"), "train")
    assert device_queue.shares_accelerator("cuda:1", _cfg(devices="3"), "train")
    # Another device order in the web process: the numbers cannot be compared, so the safe answer.
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "FASTEST_FIRST")
    assert device_queue.shares_accelerator("cuda", _cfg(devices="3"), "train")


def _ram(free_gb: float) -> list[DeviceMemory]:
    return [DeviceMemory("CPU", 0, "RAM", 64 * GB, (64 - free_gb) * GB)]


def test_on_the_cpu_chat_stays_unless_the_run_would_not_fit(device_held, monkeypatch):
    """The README's CPU workflow loads the demo in Chat, then trains: the chat model stays. Only when the estimate
    says the run does not fit in the memory left beside it is the chat model unloaded."""
    import engine.jobs.device_queue

    cfg = _cfg(device="cpu")
    monkeypatch.setattr(engine.jobs.device_queue, "device_memory", lambda *_a, **_k: _ram(32))
    chat = FakeChat("cpu", MODEL)
    _launch("share-cpu-fits", cfg, chat, device_held)
    assert chat.unloads == 0
    monkeypatch.setattr(engine.jobs.device_queue, "device_memory", lambda *_a, **_k: _ram(0.2))
    _launch("share-cpu-crowded", cfg, chat, device_held)
    assert chat.unloads == 1


# -- item 1: Load model waits for the device queue like any job ---------------------------------------------------

def _job_holding_the_device(name: str, cfg: RunConfig, state: str = RUNNING) -> RunDir:
    """A run recorded as the device queue records the job that holds the device (this process stands in for it)."""
    run = runner.run_dir_for(MODEL, "lora", name)
    run.path.mkdir(parents=True, exist_ok=True)
    cfg.save(run.config_path, "train")
    run.write_status(state, pid=os.getpid(), command="train", created_at=time.time())
    device_queue.queue_dir().mkdir(parents=True, exist_ok=True)
    device_queue.current_path().write_text(json.dumps({"run": str(run.path), "pid": os.getpid()}))
    return run


def _end(run: RunDir) -> None:
    """The stand-in job ends (and leaves no pid behind: the session's clean-up kills recorded pids)."""
    run.write_status(STOPPED, pid=None)
    device_queue.current_path().unlink(missing_ok=True)


def test_load_model_is_refused_in_words_while_a_job_holds_the_gpu(gpu_machine, workdirs):
    run = _job_holding_the_device("holds-gpu0", _cfg())
    try:
        message = chat_tab.load_refusal("en", "auto")
        assert message is not None and run.name in message and "cuda" in message
        assert run.name in chat_tab.load_refusal("zh", "cuda")
        assert chat_tab.load_refusal("en", "cpu") is None  # the CPU is not the job's device
    finally:
        _end(run)
    assert chat_tab.load_refusal("en", "auto") is None  # the job ended: Load goes ahead


def test_load_model_is_refused_while_a_job_waits_for_the_gpu(gpu_machine, workdirs):
    run = _job_holding_the_device("waits-gpu0", _cfg(), state=QUEUED)
    device_queue.current_path().unlink()
    ticket = device_queue.new_ticket(run)
    try:
        assert run.name in chat_tab.load_refusal("ja", "auto")
    finally:
        _end(run)
        ticket.path.unlink(missing_ok=True)


def test_load_model_goes_ahead_beside_a_job_on_another_gpu(gpu_machine, workdirs):
    run = _job_holding_the_device("holds-gpu1", _cfg(devices="1"))
    try:
        assert chat_tab.load_refusal("en", "auto") is None
    finally:
        _end(run)


# -- item 10: gradient checkpointing by device and memory estimate ------------------------------------------------

def _gpu(total_gb: float) -> list[DeviceMemory]:
    return [DeviceMemory("GPU", 0, "GPU", total_gb * GB, 0.0), *_ram(32)]


def _long_samples(**extra) -> RunConfig:
    cfg = _cfg(device="cuda")
    cfg.model.model_name_or_path = "Qwen2.5-7B-Instruct"  # the catalogue's shape: no download needed
    cfg.data.cutoff_len, cfg.train.per_device_train_batch_size = 4096, 4
    cfg.train.extra_args = json.dumps(extra) if extra else ""
    cfg.validate()
    return cfg


def test_checkpointing_turns_on_when_the_run_would_not_fit_the_gpu():
    choice = choose_checkpointing(_long_samples(), "cuda", _gpu(24))
    assert choice.enabled and choice.reason == "too_big" and choice.need > 24 * GB
    assert "gradient checkpointing on" in choice.log_line()


def test_checkpointing_stays_off_when_the_run_fits_with_room():
    cfg = _long_samples()
    cfg.data.cutoff_len, cfg.train.per_device_train_batch_size = 256, 1
    choice = choose_checkpointing(cfg, "cuda", _gpu(141))
    assert not choice.enabled and choice.reason == "fits"


def test_checkpointing_turns_on_when_tight():
    cfg = _long_samples()
    cfg.data.cutoff_len, cfg.train.per_device_train_batch_size = 256, 1
    need = choose_checkpointing(cfg, "cuda", _gpu(141)).need
    choice = choose_checkpointing(cfg, "cuda", _gpu(need / GB / 0.95))  # 95% of the device
    assert choice.enabled and choice.reason == "tight"


def test_checkpointing_is_on_where_the_gpu_memory_is_unknown():
    """No nvidia-smi reading: LlamaBoard's default (on) on an accelerator."""
    assert choose_checkpointing(_long_samples(), "cuda", _ram(32)).reason == "unknown"


def test_a_cpu_job_keeps_checkpointing_off():
    cfg = _long_samples()
    cfg.model.device = "cpu"
    choice = choose_checkpointing(cfg, "cpu", _ram(0.5))  # even where it would not fit
    assert not choice.enabled and choice.reason == "cpu"


def test_an_explicit_setting_wins():
    assert not choose_checkpointing(_long_samples(gradient_checkpointing=False), "cuda", _gpu(24)).enabled
    on = choose_checkpointing(_long_samples(gradient_checkpointing=True), "cpu", _ram(32))
    assert on.enabled and on.reason == "explicit"


def test_the_train_status_line_says_what_was_chosen():
    from webui.run_monitor import status_text

    choice = choose_checkpointing(_long_samples(), "cuda", _gpu(24)).to_status()
    snap = runner.Snapshot(state=RUNNING, phase="training", checkpointing=choice)
    for lang in ("en", "zh", "ja", "ko", "ru"):
        head = t(lang, "ckpt_auto_too_big", need="x", have="y", off="z").split("x")[0]
        assert head in status_text(lang, "train", snap)
    quiet = runner.Snapshot(state=RUNNING, phase="training", checkpointing={"enabled": False, "reason": "cpu"})
    assert status_text("en", "train", quiet) == t("en", "run_running")



def test_the_memory_panel_shows_the_run_start_will_make():
    """Where Start turns checkpointing on, the Train tab's estimate is of that run, and says so."""
    import html

    from webui.memory_panel import training_estimate_html

    shown = html.unescape(training_estimate_html("en", _long_samples(), _gpu(24)))
    assert "Start turns gradient checkpointing on by itself" in shown
    assert t("en", "mem_note_checkpointing") in shown  # the estimate above is with it
    small = _long_samples()
    small.data.cutoff_len, small.train.per_device_train_batch_size = 256, 1
    assert "gradient checkpointing on" not in html.unescape(training_estimate_html("en", small, _gpu(141)))

@pytest.mark.slow
def test_a_cpu_job_says_what_it_chose_and_an_explicit_setting_wins(workdirs, demo_model_dir):
    """A real run on the CPU with {"gradient_checkpointing": true}: the job trains with it (LoRA, lean activations,
    checkpointing together), says so in its log, and records the choice for the status line."""
    cfg = tiny_train_config(extra_args='{"gradient_checkpointing": true}')
    cfg.data.max_samples = 8
    cfg.validate()
    run = runner.run_dir_for(MODEL, "lora", "ckpt-explicit-cpu")
    runner.launch(run, cfg)
    status = wait_for_state(run, 300)
    assert status["state"] == "finished", run.log_tail(40)
    assert status["gradient_checkpointing"]["enabled"] and status["gradient_checkpointing"]["reason"] == "explicit"
    assert "gradient checkpointing on: as set in extra arguments" in run.log_tail(200)
