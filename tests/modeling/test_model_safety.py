"""Model loading and chat under hostile conditions (issue 5).

* Weights stored as pickle files (which run code when unpickled) are refused
  everywhere user weights are loaded, with a message naming the folder and the
  file; the test pickles carry a real payload that creates a marker file.
* A model shipping its own Python code loads only with "trust remote code".
* A missing model path fails with a message naming it, in chat, training,
  evaluation and export.
* Unloading the model while an answer streams ends that answer cleanly, frees
  the model and leaves the app able to load again (engine and real app).
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import pytest

from engine.core.chat_settings import GenerationSettings
from engine.core.config import RunConfig
from engine.core.model_files import PARENTS_FILE, ModelLoadError, ModelUnloaded, adapter_chain, check_checkpoint
from engine.modeling.models import load_model, load_tokenizer, load_with_checkpoint
from engine.serve.chat import ChatEngine
from tests.helpers.runs import tiny_train_config
from webui.chat_answers import plain_text

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")
LONG_PROMPT = [{"role": "user", "content": "Write a long story about a cat who learns to sail across the sea."}]


class _Payload:
    """Unpickles into a call that creates ``marker``: what a hostile weights file would do on an unsafe load."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_pickle(path: Path, marker: Path) -> Path:
    """A hostile weights file: torch's zip format for .bin/.pt/.pth, a bare pickle for .pkl."""
    import torch

    payload = {"lora_A.weight": _Payload(marker)}
    if path.suffix in (".pkl", ".pickle"):
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    return path


@pytest.fixture(scope="module")
def marker(tmp_path_factory) -> Path:
    """Created only if some code unpickles one of our hostile files unsafely; no test may see it."""
    return tmp_path_factory.mktemp("pickle-marker") / "PWNED"


@pytest.fixture(autouse=True)
def _marker_never_created(request, marker):
    yield
    if "marker" in request.fixturenames or "hostile" in request.fixturenames:
        assert not marker.exists(), "a hostile pickle file was unpickled unsafely"


@pytest.fixture(scope="module")
def good_adapter(tmp_path_factory, demo_model_dir) -> Path:
    """A real LoRA adapter of the demo model (safetensors), saved the way training saves one."""
    from peft import get_peft_model

    from engine.modeling.finetuning import lora_config

    cfg = tiny_train_config()
    model = load_model(str(demo_model_dir))
    folder = tmp_path_factory.mktemp("good-adapter") / "adapter"
    get_peft_model(model, lora_config(cfg, "CAUSAL_LM")).save_pretrained(folder)
    assert (folder / "adapter_model.safetensors").is_file()
    return folder


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, demo_model_dir, good_adapter, marker) -> dict[str, Path]:
    """Folders whose weights exist only as hostile pickle files, plus an adapter whose parent is one."""
    base = tmp_path_factory.mktemp("hostile")
    found: dict[str, Path] = {}
    # An adapter checkpoint as the Trainer writes it, but with pickle weights instead of safetensors.
    adapter = base / "pickle-adapter"
    adapter.mkdir()
    shutil.copy(good_adapter / "adapter_config.json", adapter)
    for name in ("adapter_model.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"):
        write_pickle(adapter / name, marker)
    found["adapter"] = adapter
    for name in ("adapter_model.pt", "adapter_weights.pkl"):
        other = base / f"pickle-adapter-{Path(name).suffix[1:]}"
        other.mkdir()
        shutil.copy(good_adapter / "adapter_config.json", other)
        write_pickle(other / name, marker)
        found[name] = other
    # A whole model (full/freeze checkpoint, or a base model folder) with only pytorch_model.bin.
    full = base / "pickle-model"
    full.mkdir()
    for name in ("config.json", *TOKENIZER_FILES):
        if (demo_model_dir / name).is_file():
            shutil.copy(demo_model_dir / name, full)
    write_pickle(full / "pytorch_model.bin", marker)
    found["model"] = full
    # A good adapter trained on top of a pickle one.
    child = base / "child-of-pickle"
    shutil.copytree(good_adapter, child)
    (child / PARENTS_FILE).write_text(json.dumps([str(adapter)]))
    found["child"] = child
    return found


def test_payload_runs_code_when_unpickled_unsafely(tmp_path):
    """The hostile files are live: an unsafe load really runs their code (so the marker checks mean something)."""
    import torch

    for suffix in (".bin", ".pkl"):
        flag = tmp_path / f"ran{suffix}"
        path = write_pickle(tmp_path / f"weights{suffix}", flag)
        if suffix == ".pkl":
            pickle.loads(path.read_bytes())  # noqa: S301 - our own payload, to prove it is live
        else:
            torch.load(path, weights_only=False)  # noqa: S614 - same
        assert flag.exists()


def _refused(call, *names: str) -> ModelLoadError:
    with pytest.raises(ModelLoadError) as info:
        call()
    message = str(info.value)
    for name in names:
        assert name in message, f"{name!r} not named in: {message}"
    return info.value


@pytest.mark.parametrize("which,file", [("adapter", "adapter_model.bin"), ("adapter_model.pt", "adapter_model.pt"),
                                        ("adapter_weights.pkl", "adapter_weights.pkl"),
                                        ("model", "pytorch_model.bin")])
def test_check_checkpoint_refuses_pickle_weights(hostile, which, file):
    err = _refused(lambda: check_checkpoint(hostile[which]), str(hostile[which]), file, "safetensors")
    assert err.key == "pickle_weights"


def test_pickle_only_adapter_names_every_pickle_file(hostile):
    err = _refused(lambda: check_checkpoint(hostile["adapter"]))
    for name in ("adapter_model.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"):
        assert name in err.params["files"]


def test_trainer_checkpoint_with_safetensors_weights_is_accepted(good_adapter, tmp_path, marker):
    """A checkpoint-N folder carries the Trainer's own optimizer.pt etc. next to safetensors weights: fine,
    since only the safetensors are read."""
    ckpt = tmp_path / "checkpoint-4"
    shutil.copytree(good_adapter, ckpt)
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        write_pickle(ckpt / name, marker)
    assert check_checkpoint(ckpt) == "lora"
    assert adapter_chain(ckpt) == [str(ckpt)]


def test_model_loaders_refuse_pickle_weights(hostile, demo_model_dir):
    """Each engine entry point that reads user weights: evaluation/export (load_with_checkpoint), training
    (load_model of a base or full checkpoint, adapter_chain of the adapter it goes on from)."""
    demo = str(demo_model_dir)
    adapter, model, child = str(hostile["adapter"]), str(hostile["model"]), str(hostile["child"])
    _refused(lambda: load_with_checkpoint(demo, adapter), adapter, "adapter_model.bin")
    _refused(lambda: load_with_checkpoint(demo, model), model, "pytorch_model.bin")
    _refused(lambda: load_with_checkpoint(demo, child), adapter, "adapter_model.bin")
    _refused(lambda: load_with_checkpoint(model, ""), model, "pytorch_model.bin")
    _refused(lambda: load_model(model), model, "pytorch_model.bin")
    _refused(lambda: adapter_chain(adapter), adapter, "adapter_model.bin")
    _refused(lambda: adapter_chain(child), adapter, "adapter_model.bin")


def test_chat_refuses_pickle_weights_and_keeps_the_loaded_model(hostile, demo_model_dir):
    demo = str(demo_model_dir)
    eng = ChatEngine()
    _refused(lambda: eng.load(str(hostile["model"]), device="cpu"), str(hostile["model"]), "pytorch_model.bin")
    assert not eng.loaded
    eng.load(demo, device="cpu")
    _refused(lambda: eng.load(demo, str(hostile["adapter"]), device="cpu"), "adapter_model.bin")
    _refused(lambda: eng.load(demo, str(hostile["child"]), device="cpu"), str(hostile["adapter"]))
    _refused(lambda: eng.load(demo, str(hostile["model"]), device="cpu"), "pytorch_model.bin")
    # A refused checkpoint does not cost the base model that was already loaded.
    assert eng.loaded and eng.describe()["adapter"] is None
    eng.unload()


# ---------------------------------------------------------------- remote code

REMOTE_MODULE = '''
"""A harmless stand-in for model code shipped with a checkpoint: a renamed Llama."""
import os
from pathlib import Path

from transformers import LlamaConfig, LlamaForCausalLM

if os.environ.get("TUNEBOARD_REMOTE_MARKER"):
    Path(os.environ["TUNEBOARD_REMOTE_MARKER"]).write_text("imported")


class TinyConfig(LlamaConfig):
    model_type = "tuneboard_tiny"


class TinyForCausalLM(LlamaForCausalLM):
    config_class = TinyConfig
'''


@pytest.fixture(scope="module")
def remote_model(tmp_path_factory, demo_model_dir) -> Path:
    """A tiny random model whose config maps to its own module (auto_map), with the demo tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("remote") / "tiny-remote-model"
    vocab = json.loads((demo_model_dir / "config.json").read_text())["vocab_size"]
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="tuneboard_tiny", architectures=["TinyForCausalLM"],
                  auto_map={"AutoConfig": "tuneboard_tiny.TinyConfig",
                            "AutoModelForCausalLM": "tuneboard_tiny.TinyForCausalLM"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tuneboard_tiny.py").write_text(REMOTE_MODULE)
    for name in TOKENIZER_FILES:
        if (demo_model_dir / name).is_file():
            shutil.copy(demo_model_dir / name, folder)
    return folder


def test_remote_code_refused_without_trust(remote_model, tmp_path, monkeypatch):
    flag = tmp_path / "imported"
    monkeypatch.setenv("TUNEBOARD_REMOTE_MARKER", str(flag))
    path = str(remote_model)
    for call in (lambda: load_tokenizer(path), lambda: load_model(path),
                 lambda: ChatEngine().load(path, device="cpu")):
        err = _refused(call, path, "Trust remote code")
        assert err.key == "remote_code"
    assert not flag.exists(), "the model's own module was imported without trust"
    assert not any("tuneboard_tiny" in name for name in sys.modules)


def test_unknown_architecture_is_named(remote_model, tmp_path):
    """A custom model type without auto_map: transformers cannot build it; the message names the folder."""
    folder = tmp_path / "unknown-arch"
    shutil.copytree(remote_model, folder)
    config = json.loads((folder / "config.json").read_text())
    del config["auto_map"]
    (folder / "config.json").write_text(json.dumps(config))
    err = _refused(lambda: load_model(str(folder)), str(folder))
    assert err.key == "unknown_model"


def test_remote_code_loads_and_chats_with_trust(remote_model, tmp_path):
    """With the flag the refusal is gone: the module is imported (in a child process with its own module
    cache, so this session stays clean) and the model chats."""
    flag = tmp_path / "imported"
    script = (
        "import sys\n"
        "from engine.serve.chat import ChatEngine\nfrom engine.core.chat_settings import GenerationSettings\n"
        "eng = ChatEngine()\n"
        f"eng.load({str(remote_model)!r}, device='cpu', trust_remote_code=True)\n"
        "print('CLASS', type(eng.model).__name__)\n"
        "out = list(eng.stream([{'role': 'user', 'content': 'Hi'}], GenerationSettings(max_new_tokens=4, "
        "temperature=0)))\n"
        "print('TOKENS', len(out))\n"
    )
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), TUNEBOARD_REMOTE_MARKER=str(flag),
               PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CLASS TinyForCausalLM" in proc.stdout
    assert flag.read_text() == "imported"


# ---------------------------------------------------------------- missing paths

@pytest.fixture(scope="module")
def bad_paths(tmp_path_factory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("bad-paths")
    (base / "no-config").mkdir()
    (base / "no-config" / "model.safetensors").write_bytes(b"")
    return {"missing": str(base / "no-such-model"), "no_config": str(base / "no-config")}


def test_chat_missing_model_path(bad_paths):
    eng = ChatEngine()
    err = _refused(lambda: eng.load(bad_paths["missing"], device="cpu"), bad_paths["missing"], "does not exist")
    assert err.key == "model_missing"
    err = _refused(lambda: eng.load(bad_paths["no_config"], device="cpu"), bad_paths["no_config"], "config.json")
    assert err.key == "no_config"
    err = _refused(lambda: eng.load(bad_paths["missing"], bad_paths["missing"] + "-ckpt", device="cpu"),
                   bad_paths["missing"] + "-ckpt")
    assert err.key == "checkpoint_missing"


def _engine_run(tmp_path: Path, command: str, model: str, trust: bool = False) -> dict:
    """Run ``python -m engine <command>`` the way the runner starts it; returns its final status."""
    if command == "train":
        cfg = tiny_train_config()
    else:
        cfg = RunConfig()
        cfg.data.datasets, cfg.data.max_samples = ["identity"], 4
        cfg.eval.max_new_tokens = 4
        cfg.export.export_dir = str(tmp_path / "exported")
    cfg.model.model_name_or_path = model
    cfg.model.trust_remote_code = trust
    run_dir = tmp_path / f"{command}-run"
    run_dir.mkdir()
    getattr(cfg, command).output_dir = str(run_dir)
    cfg.save(run_dir / "run.yaml", command)
    proc = subprocess.run([sys.executable, "-m", "engine", command, str(run_dir / "run.yaml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    status = json.loads((run_dir / "status.json").read_text())
    status["returncode"], status["output"] = proc.returncode, proc.stdout + proc.stderr
    return status


@pytest.mark.parametrize("command,case", [("train", "missing"), ("eval", "missing"), ("export", "missing"),
                                          ("eval", "no_config"), ("train", "pickle"), ("eval", "pickle"),
                                          ("export", "pickle"), ("train", "remote")])
def test_engine_jobs_fail_naming_the_model(command, case, tmp_path, bad_paths, hostile, remote_model):
    model = {"pickle": str(hostile["model"]), "remote": str(remote_model)}.get(case) or bad_paths[case]
    status = _engine_run(tmp_path, command, model)
    assert status["state"] == "failed" and status["returncode"] != 0, status["output"][-2000:]
    assert model in status["error"], status["error"]
    expected = {"missing": "does not exist", "no_config": "config.json", "pickle": "pytorch_model.bin",
                "remote": "Trust remote code"}[case]
    assert expected in status["error"], status["error"]


def test_resume_never_unpickles_checkpoint_state_unsafely(tmp_path, demo_model_dir, marker):
    """Resuming reads optimizer.pt / scheduler.pt / rng_state.pth with torch.load: transformers 5 passes
    weights_only=True, so a hostile file there makes the run fail without running its code."""
    from peft import get_peft_model
    from transformers import TrainerState

    from engine.modeling.finetuning import lora_config

    cfg = tiny_train_config(resume=True)
    run_dir = tmp_path / "resumed-run"
    ckpt = run_dir / "checkpoint-4"
    get_peft_model(load_model(str(demo_model_dir)), lora_config(cfg, "CAUSAL_LM")).save_pretrained(ckpt)
    TrainerState(global_step=4, max_steps=6, num_train_epochs=1, logging_steps=2, save_steps=4,
                 train_batch_size=4).save_to_json(str(ckpt / "trainer_state.json"))
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        write_pickle(ckpt / name, marker)
    cfg.train.output_dir = str(run_dir)
    cfg.save(run_dir / "run.yaml", "train")
    proc = subprocess.run([sys.executable, "-m", "engine", "train", str(run_dir / "run.yaml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    status = json.loads((run_dir / "status.json").read_text())
    output = proc.stdout + proc.stderr
    assert "resuming from checkpoint-4" in output, output[-3000:]
    assert status["state"] == "failed", output[-3000:]
    assert "checkpoint-4" in status["error"] and "not plain tensors" in status["error"], status["error"]
    assert not marker.exists()


# ---------------------------------------------------------------- unload while streaming

def _reader(eng: ChatEngine, got: list, errors: list, messages=None, max_new_tokens: int = 400):
    try:
        for text in eng.stream(messages or LONG_PROMPT, GenerationSettings(max_new_tokens=max_new_tokens,
                                                                            temperature=0)):
            got.append(text)
    except BaseException as exc:  # noqa: BLE001 - inspected by the test
        errors.append(exc)


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_unload_mid_answer_ends_stream_and_frees_model(demo_model_dir):
    eng = ChatEngine()
    eng.load(str(demo_model_dir), device="cpu")
    model_ref = weakref.ref(eng.model)
    got, errors, queued_got, queued_errors = [], [], [], []
    first = threading.Thread(target=_reader, args=(eng, got, errors))
    first.start()
    _wait_for(lambda: len(got) >= 3, 120, "the first tokens")
    # A second user's answer waits its turn behind the first.
    second = threading.Thread(target=_reader, args=(eng, queued_got, queued_errors))
    second.start()
    time.sleep(0.2)
    t0 = time.time()
    eng.unload()
    unload_s = time.time() - t0
    gc.collect()
    assert model_ref() is None, "the model is still referenced after unload"
    first.join(60)
    second.join(60)
    assert not first.is_alive() and not second.is_alive()
    # The interrupted answer keeps its text and then says why it ended; the waiting one is told no model is loaded.
    assert got and got[-1].strip(), "the partial answer was lost"
    assert len(errors) == 1 and isinstance(errors[0], ModelUnloaded), errors
    assert queued_got == [] and len(queued_errors) == 1, queued_errors
    assert isinstance(queued_errors[0], ModelLoadError) and queued_errors[0].key == "no_model"
    assert unload_s < 30, f"unload took {unload_s:.1f} s"
    # And the engine works again.
    eng.load(str(demo_model_dir), device="cpu")
    answer = list(eng.stream([{"role": "user", "content": "Hi"}], GenerationSettings(max_new_tokens=8,
                                                                                    temperature=0)))
    assert answer and answer[-1].strip()
    eng.unload()


def test_unload_does_not_wait_for_a_reader_that_went_away(demo_model_dir):
    """A browser tab closed mid-answer leaves its stream unread (not closed): unload must not hang on it."""
    eng = ChatEngine()
    eng.load(str(demo_model_dir), device="cpu")
    model_ref = weakref.ref(eng.model)
    stream = eng.stream(LONG_PROMPT, GenerationSettings(max_new_tokens=400, temperature=0))
    assert next(stream) and next(stream)  # read two pieces, then stop reading
    unloader = threading.Thread(target=eng.unload, daemon=True)
    unloader.start()
    unloader.join(60)
    assert not unloader.is_alive(), "unload hung behind an abandoned stream"
    gc.collect()
    assert model_ref() is None and not eng.loaded
    stream.close()  # the reader's side ends quietly


# ---------------------------------------------------------------- the same through the real app

def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_app_unload_mid_answer(app_server, demo_model_dir):
    from gradio_client import Client

    from engine.core.demo_model import DEMO_MODEL_ID
    from webui.locales import t

    log_start = app_server.log.stat().st_size
    student, teacher = Client(app_server.url, verbose=False), Client(app_server.url, verbose=False)
    rss_empty = _rss_mb(app_server.proc.pid)
    status = teacher.predict("en", DEMO_MODEL_ID, None, "auto", "cpu", False, api_name="/chat_load")
    assert "cpu" in status, status
    rss_loaded = _rss_mb(app_server.proc.pid)
    job = student.submit(lang_="en", text=LONG_PROMPT[0]["content"], history=[], system_text="", max_tokens=400,
                         temp=0.0, api_name="/chat_submit")
    _wait_for(lambda: len(job.outputs()) >= 4, 120, "streamed output")
    rss_answering = _rss_mb(app_server.proc.pid)  # weights paged in and in use
    assert teacher.predict("en", api_name="/chat_unload") == t("en", "model_unloaded")
    history = job.result(timeout=120)[0]
    rss_unloaded = _rss_mb(app_server.proc.pid)
    answer = plain_text(history[-1]["content"])
    note = t("en", "answer_cut_unloaded")
    assert answer.endswith(note) and answer[: -len(note)].strip(), answer  # partial text kept, then the note
    assert history[0]["role"] == "user" and len(history) == 2
    print(f"\napp RSS: {rss_empty:.0f} MB before load, {rss_loaded:.0f} MB loaded, {rss_answering:.0f} MB "
          f"answering, {rss_unloaded:.0f} MB after unload")
    weights_mb = (demo_model_dir / "model.safetensors").stat().st_size / 2**20  # fp32 on disk
    if ", bf16" in status:  # a CPU where chat measured bf16 faster (engine/serve/bf16_decoding.py): half in memory
        weights_mb /= 2
    assert rss_unloaded < rss_answering - weights_mb / 2, "the model memory was not released"
    # Loading again works and answers.
    status = teacher.predict("en", DEMO_MODEL_ID, None, "auto", "cpu", False, api_name="/chat_load")
    assert "cpu" in status, status
    history = student.predict(lang_="en", text="Hi", history=[], system_text="", max_tokens=8, temp=0.0,
                              api_name="/chat_submit")[0]
    assert plain_text(history[-1]["content"]).strip()
    teacher.predict("en", api_name="/chat_unload")
    with open(app_server.log, "rb") as fh:
        fh.seek(log_start)
        server_log = fh.read().decode("utf-8", "replace")
    assert "Traceback" not in server_log, server_log[-3000:]
