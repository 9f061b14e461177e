"""engine.core.download against the fake hubs (tests/helpers/fake_hubs.py): the REAL huggingface_hub and modelscope
clients download; only the servers are ours. A small repo (config, tokenizer files, a 24 MB safetensors file) keeps
these fast; the browser tests download the real demo model."""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from pathlib import Path

import pytest

from engine.core.download import DownloadError, _failure, ensure_model, follow_download
from engine.core.memory_estimate import model_info
from engine.jobs.job import fetch_model
from tests.helpers.fake_hubs import GATED_REPO_ID, FakeHFHub, FakeModelScopeHub, hub_client_env

REPO = "tuneboard-test/tiny-model"
WEIGHTS = "model.safetensors"
WEIGHTS_SIZE = 24 * 1024 * 1024  # over 10 MiB: huggingface_hub resumes a dropped body in 10 MiB steps
HUBS = ["huggingface", "modelscope"]
TINY_CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
               "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
               "vocab_size": 100}


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-repo")
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG))
    (folder / "tokenizer_config.json").write_text("{}")
    (folder / "generation_config.json").write_text("{}")
    (folder / WEIGHTS).write_bytes(os.urandom(WEIGHTS_SIZE))
    (folder / "pytorch_model.bin").write_bytes(b"pickle weights are never fetched")
    (folder / "original").mkdir()
    (folder / "original" / "params.json").write_text("{}")  # subfolders are other formats: not fetched
    return folder


@pytest.fixture(scope="module")
def hubs(tiny_repo, tmp_path_factory):
    repos = {REPO: tiny_repo, GATED_REPO_ID: tiny_repo}
    hf = FakeHFHub(repos, gated=[GATED_REPO_ID]).start()
    ms = FakeModelScopeHub(repos, gated=[GATED_REPO_ID], tls_dir=tmp_path_factory.mktemp("ms-tls")).start()
    yield {"huggingface": hf, "modelscope": ms}
    hf.stop()
    ms.stop()


@pytest.fixture
def env(hubs, tmp_path, monkeypatch):
    """This process talks to the fake hubs, with fresh caches and a fresh TuneBoard home."""
    for hub in hubs.values():
        hub.reset()
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "USE_MODELSCOPE_HUB", "USE_OPENMIND_HUB"):
        monkeypatch.delenv(name, raising=False)
    for name, value in hub_client_env(tmp_path / "caches", hubs["huggingface"], hubs["modelscope"]).items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("TUNEBOARD_HOME", str(tmp_path / "home"))
    return hubs


def _files(folder: str) -> set[str]:
    return {p.name for p in Path(folder).iterdir() if p.is_file()}


@pytest.mark.parametrize("hub", HUBS)
def test_download_reports_sane_progress_then_finds_it_offline(env, tiny_repo, hub):
    seen = []
    folder = ensure_model(REPO, hub, on_progress=seen.append)
    assert _files(folder) == {"config.json", "tokenizer_config.json", "generation_config.json", WEIGHTS}
    assert (Path(folder) / WEIGHTS).read_bytes() == (tiny_repo / WEIGHTS).read_bytes()
    total = sum((Path(folder) / name).stat().st_size for name in _files(folder))
    assert seen and all(p.total_bytes == total and p.files_total == 4 and p.model == REPO and p.hub == hub
                        for p in seen)
    done = [p.done_bytes for p in seen]
    assert done == sorted(done) and all(0 <= d <= total for d in done), done
    assert [p.files_done for p in seen] == sorted(p.files_done for p in seen)
    assert seen[-1].done_bytes == total and seen[-1].files_done == 4
    assert {p.file for p in seen} - {""} <= _files(folder)
    assert all(p.rate_bps >= 0 and (p.eta_s is None or p.eta_s >= 0) for p in seen)
    # Complete on disk: found again without a single request (Load model stays fast offline).
    env[hub].reset()
    t0 = time.monotonic()
    assert ensure_model(REPO, hub) == folder
    assert time.monotonic() - t0 < 0.5
    # The memory estimate now reads its config.json, still without a request (before: the catalogue's rough size).
    info = model_info(REPO, hub)
    assert info is not None and info.exact and (info.hidden_size, info.num_layers) == (64, 2)
    assert env[hub].requests == []


@pytest.mark.slow
@pytest.mark.parametrize("hub", HUBS)
def test_a_dropped_connection_resumes_with_range(env, tiny_repo, hub):
    env[hub].arm_drop(12 * 1024 * 1024, file=WEIGHTS)
    folder = ensure_model(REPO, hub)
    assert env[hub].dropped_requests()
    ranges = env[hub].range_requests(WEIGHTS)
    assert ranges and all(r.range != "bytes=0-" for r in ranges), ranges
    assert (Path(folder) / WEIGHTS).read_bytes() == (tiny_repo / WEIGHTS).read_bytes()


def _cancel_when(predicate):
    cancel = threading.Event()

    def report(progress):
        if predicate(progress):
            cancel.set()

    return cancel, report


@pytest.mark.slow
@pytest.mark.parametrize("hub", HUBS)
def test_stop_cancels_and_the_next_try_continues(env, tiny_repo, hub):
    server = env[hub]
    server.throttle_bps = 8e6
    cancel, report = _cancel_when(lambda p: p.file == WEIGHTS and p.done_bytes > 5_000_000)
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as caught:
        ensure_model(REPO, hub, on_progress=report, cancel=cancel)
    assert caught.value.key == "download_cancelled" and caught.value.params["model"] == REPO
    assert time.monotonic() - t0 < 20
    server.reset()
    folder = ensure_model(REPO, hub)
    assert (Path(folder) / WEIGHTS).read_bytes() == (tiny_repo / WEIGHTS).read_bytes()
    # Files completed before the Stop are not fetched again...
    assert server.file_requests("config.json") == []
    if hub == "modelscope":  # ...and ModelScope continues the cut file from its .incomplete part
        assert server.range_requests(WEIGHTS), server.file_requests(WEIGHTS)


@pytest.mark.slow
@pytest.mark.parametrize("hub", HUBS)
def test_a_second_caller_joins_the_download(env, hub):
    env[hub].throttle_bps = 12e6
    results, joined = {}, []

    def second():
        time.sleep(0.5)  # the first holds the model's lock by now
        results["second"] = ensure_model(REPO, hub, on_progress=joined.append)

    thread = threading.Thread(target=second)
    thread.start()
    results["first"] = ensure_model(REPO, hub)
    thread.join(60)
    assert results["first"] == results["second"]
    assert len(env[hub].file_requests(WEIGHTS)) == 1  # one download, watched twice
    assert joined and joined[-1].model == REPO


@pytest.mark.slow
def test_a_download_in_another_process_is_joined(env):
    """A job downloading (another process) and Load model in the web process: one download."""
    import subprocess
    import sys

    from tests.helpers.runs import ROOT

    env["huggingface"].throttle_bps = 8e6
    code = f"from engine.core.download import ensure_model; print(ensure_model({REPO!r}, 'huggingface'))"
    other = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not env["huggingface"].file_requests(WEIGHTS):  # the other process is fetching the weights
            assert time.time() < deadline and other.poll() is None
            time.sleep(0.1)
        joined = []
        folder = ensure_model(REPO, "huggingface", on_progress=joined.append)
        assert other.wait(60) == 0 and other.stdout.read().strip() == folder
    finally:
        if other.poll() is None:
            other.kill()
    assert len(env["huggingface"].file_requests(WEIGHTS)) == 1
    assert joined and any(p.file == WEIGHTS and 0 < p.done_bytes < p.total_bytes for p in joined)


def test_the_run_monitor_shows_the_download_in_words():
    from engine.core.rundir import RUNNING
    from webui.run_monitor import progress_html, status_text
    from webui.runner import Snapshot

    download = {"model": REPO, "hub": "modelscope", "file": WEIGHTS, "done_bytes": 150_000_000,
                "total_bytes": 600_000_000, "rate_bps": 5_000_000, "eta_s": 90, "files_done": 3, "files_total": 6}
    snap = Snapshot(state=RUNNING, phase="downloading", download=download)
    bar = progress_html("en", snap)
    assert 'aria-valuenow="25"' in bar
    assert f"Downloading {REPO} from ModelScope · {WEIGHTS} (file 4 of 6) · 150.0 MB of 600.0 MB · 5.0 MB/s · " \
           "01:30 left" in bar
    assert "剩余 01:30" in progress_html("zh", snap) and "魔搭社区 ModelScope" in progress_html("zh", snap)
    assert "closing this page does not stop it" in status_text("en", "eval", snap)
    starting = Snapshot(state=RUNNING, phase="downloading", download={**download, "rate_bps": 0.0, "eta_s": None})
    assert "150.0 MB of 600.0 MB" in progress_html("en", starting) and "B/s" not in progress_html("en", starting)


@pytest.mark.slow
def test_follow_download_streams_progress_and_ends_with_the_model(env):
    env["huggingface"].throttle_bps = 20e6
    seen = list(follow_download(REPO, "huggingface"))
    assert seen and seen[-1].done_bytes == seen[-1].total_bytes
    assert list(follow_download(REPO, "huggingface")) == []  # on disk: nothing to show


def test_not_found_names_model_and_hub(env):
    with pytest.raises(DownloadError) as caught:
        ensure_model("tuneboard-test/no-such-model", "huggingface")
    assert caught.value.key == "download_not_found"
    assert "tuneboard-test/no-such-model" in str(caught.value) and "Hugging Face" in str(caught.value)


def test_not_found_suggests_the_hubs_that_have_it(env):
    catalogue = pytest.importorskip("engine.core.catalogue")
    entry = next(m for m in catalogue.CATALOGUE if m.ids.get("huggingface") and m.ids.get("modelscope"))
    repo = entry.ids["huggingface"]
    with pytest.raises(DownloadError) as caught:
        ensure_model(repo, "huggingface")  # the fake hub does not have it
    assert caught.value.key == "download_not_found_elsewhere"
    assert "ModelScope" in caught.value.params["others"]


@pytest.mark.parametrize("hub", HUBS)
def test_gated_without_a_token(env, hub):
    with pytest.raises(DownloadError) as caught:
        ensure_model(GATED_REPO_ID, hub)
    assert caught.value.key == "download_gated", caught.value
    assert GATED_REPO_ID in str(caught.value)


def test_offline_mode(env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError) as caught:
        ensure_model(REPO, "huggingface")
    assert caught.value.key == "download_offline" and "HF_HUB_OFFLINE" in str(caught.value)
    assert env["huggingface"].requests == []
    # Downloaded before (by TuneBoard or by the hub's own tool): offline mode uses the client's cache.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    folder = ensure_model(REPO, "huggingface")
    for record in (Path(os.environ["TUNEBOARD_HOME"]) / "downloads").rglob("*.done.json"):
        record.unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    env["huggingface"].reset()
    assert ensure_model(REPO, "huggingface") == folder
    assert env["huggingface"].requests == []


@pytest.mark.slow
@pytest.mark.parametrize("hub", HUBS)
def test_no_network(env, hub, monkeypatch):
    dead = "http://127.0.0.1:9" if hub == "huggingface" else "127.0.0.1:9"
    monkeypatch.setenv("HF_ENDPOINT" if hub == "huggingface" else "MODELSCOPE_DOMAIN", dead)
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as caught:
        ensure_model(REPO, hub)
    assert caught.value.key == "download_no_network", caught.value
    assert time.monotonic() - t0 < 60


def test_the_dataset_check_does_not_download_unseen(env):
    """The web process's dataset check needs the tokenizer: a hub model not downloaded yet is refused with what to
    do, not fetched with no progress shown."""
    from engine.facade import training_tokenizer

    with pytest.raises(DownloadError) as caught:
        training_tokenizer(REPO, False, "huggingface")
    assert caught.value.key == "download_not_downloaded"
    assert env["huggingface"].requests == []


def test_not_a_hub_id_nor_a_folder(env):
    with pytest.raises(DownloadError) as caught:
        ensure_model("no-slash-here", "huggingface")
    assert caught.value.key == "download_bad_id"


def test_disk_full_is_named():
    error = _failure(RuntimeError("write failed"), REPO, "modelscope")
    assert error.key == "download_no_network"
    full = OSError(errno.ENOSPC, "No space left on device")
    wrapped = RuntimeError("download failed")
    wrapped.__cause__ = full
    error = _failure(wrapped, REPO, "modelscope")
    assert error.key == "download_disk_full" and "ModelScope" in str(error)


def test_errors_in_the_users_language(env):
    from webui.errors import error_text

    with pytest.raises(DownloadError) as caught:
        ensure_model(GATED_REPO_ID, "modelscope")
    zh = error_text("zh", caught.value)
    assert GATED_REPO_ID in zh and "ModelScope" in zh and "登录" in zh
    assert error_text("en", caught.value).startswith(GATED_REPO_ID)


class _RecordingRun:
    """What fetch_model needs of a RunDir: it records every status written."""

    def __init__(self) -> None:
        self.status = {"state": "running", "phase": "loading"}
        self.writes = []

    def read_status(self) -> dict:
        return dict(self.status)

    def write_status(self, state, **fields):
        self.status.update(fields, state=state)
        self.writes.append(dict(self.status))
        return self.status


class _NoStop:
    requested = False


@pytest.mark.slow
def test_a_job_reports_the_downloading_phase(env):
    from engine.core.config import RunConfig

    env["modelscope"].throttle_bps = 20e6
    cfg = RunConfig()
    cfg.model.model_name_or_path, cfg.model.hub = REPO, "modelscope"
    run = _RecordingRun()
    t0 = time.monotonic()
    folder = fetch_model(cfg, run, _NoStop())
    elapsed = time.monotonic() - t0
    downloading = [w for w in run.writes if w["phase"] == "downloading"]
    assert downloading and all(w["download"]["model"] == REPO for w in downloading)
    # About twice a second, besides one write as each of the 4 files starts and the first and last.
    assert len(downloading) <= 2 * elapsed + 4 + 3, (len(downloading), elapsed)
    assert run.status["phase"] == "loading" and run.status["download"] is None
    assert Path(folder, "config.json").is_file()


@pytest.mark.slow
def test_stop_ends_a_jobs_download(env, tmp_path):
    """A training job downloads in its own process (status.json: phase downloading, with the progress); Stop (its
    stop file and SIGTERM, as the Stop button sends them) ends it as stopped, its files kept for the next try."""
    import subprocess
    import sys

    from engine.core.rundir import RunDir
    from tests.helpers.runs import ROOT, tiny_train_config, wait_for_state
    from webui import runner

    env["modelscope"].throttle_bps = 3e6  # 24 MB: about 8 s
    cfg = tiny_train_config()
    cfg.model.model_name_or_path, cfg.model.hub = REPO, "modelscope"
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    cfg.save(run.config_path, "train")
    with open(run.log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "engine", "train", str(run.config_path)], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            status = run.read_status()
            if status.get("phase") == "downloading" and (status.get("download") or {}).get("file") == WEIGHTS:
                break
            assert proc.poll() is None, run.log_tail()
            time.sleep(0.2)
        else:
            raise AssertionError(f"no downloading phase: {run.read_status()}\n{run.log_tail()}")
        assert status["download"]["model"] == REPO and status["download"]["total_bytes"] > WEIGHTS_SIZE
        assert runner.stop(run)
        t0 = time.monotonic()
        status = wait_for_state(run, 30)
        assert status["state"] == "stopped", (status, run.log_tail())
        assert time.monotonic() - t0 < 15
        assert f"downloading {REPO} from ModelScope: {WEIGHTS}" in run.log_tail()
        assert list(Path(os.environ["MODELSCOPE_CACHE"]).rglob(WEIGHTS + ".incomplete"))  # resumed next time
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.mark.slow
def test_a_jobs_download_failure_is_worded_in_the_users_language(env, tmp_path):
    """A job that cannot download fails with the engine's sentence in status.json and, beside it, the message key
    and params, so the run monitor words it in the UI's language (not the English text of the job)."""
    from tests.helpers.runs import run_cold_job, tiny_train_config
    from webui import runner
    from webui.run_monitor import status_text

    cfg = tiny_train_config()
    cfg.model.model_name_or_path, cfg.model.hub = "tuneboard-test/no-such-model", "modelscope"
    run, status = run_cold_job(cfg, tmp_path / "run", timeout=180)
    assert status["state"] == "failed" and "does not exist on ModelScope" in status["error"], status
    assert status["error_record"]["key"] == "download_not_found", status
    zh = status_text("zh", "train", runner.snapshot(run))
    assert "魔搭社区 ModelScope 上不存在 tuneboard-test/no-such-model" in zh and "does not exist" not in zh, zh
    assert "does not exist on ModelScope" in status_text("en", "train", runner.snapshot(run))


@pytest.mark.slow
def test_a_job_forked_by_the_warm_worker_downloads_too(hubs, workdirs, tmp_path, monkeypatch):
    """The warm worker's forks (the usual way Start runs a job) download as a cold job does. Only ModelScope's
    variables are set: the worker refuses a job whose HF_* variables differ from its own (read at import)."""
    from engine.jobs import warm_worker
    from tests.helpers.runs import tiny_train_config, wait_for_state
    from webui import runner

    ms = hubs["modelscope"]
    ms.reset()
    for name, value in {**ms.env(tmp_path / "caches"), "TUNEBOARD_HOME": str(tmp_path / "home")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MODELSCOPE_ENDPOINT", raising=False)
    warm_worker.start()
    deadline = time.time() + 180
    while not warm_worker.socket_path().exists():
        assert time.time() < deadline, "no warm worker"
        time.sleep(0.2)
    ms.throttle_bps = 3e6
    cfg = tiny_train_config()
    cfg.model.model_name_or_path, cfg.model.hub = REPO, "modelscope"
    run = runner.launch(runner.run_dir_for("tiny-model", "lora", f"warm-download-{time.time_ns()}"), cfg)
    try:
        assert run.read_status()["warm"] is True
        deadline = time.time() + 120
        while (run.read_status().get("download") or {}).get("file") != WEIGHTS:
            assert time.time() < deadline and run.read_status().get("state") in ("queued", "running"), \
                (run.read_status(), run.log_tail())
            time.sleep(0.2)
        assert run.read_status()["phase"] == "downloading"
        runner.stop(run)
        assert wait_for_state(run, 30)["state"] == "stopped", run.log_tail()
    finally:
        ms.reset()
        if run.read_status().get("state") in ("queued", "running"):
            runner.stop(run)
