"""The fake hubs (tests/helpers/fake_hubs.py) against the REAL clients: huggingface_hub and modelscope download the demo
model from them in subprocesses, configured only through the environment (as the app and its jobs are)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.harness import free_port
from tests.helpers.fake_hubs import DEMO_REPO_ID, GATED_REPO_ID, hub_client_env

WEIGHTS = "model.safetensors"
MiB = 1 << 20

# One client call in a fresh interpreter; the last stdout line is JSON: {"path": ...} or {"error": ...}.
CLIENT = r"""
import json, sys, traceback
hub, repo, patterns = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
try:
    if hub == "hf":
        from huggingface_hub import snapshot_download
        path = snapshot_download(repo, allow_patterns=patterns)
    else:
        from modelscope import snapshot_download
        path = snapshot_download(repo, allow_patterns=patterns)
    print(json.dumps({"path": path}))
except Exception as exc:  # report the client's own exception types
    cause = exc.__cause__
    print(json.dumps({"error": type(exc).__name__, "mro": [c.__name__ for c in type(exc).__mro__],
                      "cause": type(cause).__name__ if cause else None, "message": str(exc)[:500]}))
"""


def run_client(hub: str, env: dict, repo: str = DEMO_REPO_ID, patterns=None, timeout: float = 180) -> dict:
    proc = subprocess.run([sys.executable, "-c", CLIENT, hub, repo, json.dumps(patterns)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    lines = proc.stdout.strip().splitlines()
    assert lines, f"client printed nothing (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1])


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(folder: Path) -> str:
    return cached_sha256(folder / WEIGHTS)


_SHA_CACHE: dict[tuple, str] = {}


def cached_sha256(path: Path) -> str:
    """sha256, hashed once per session per file (the 538 MB source: a second or two)."""
    key = (str(path), path.stat().st_size, path.stat().st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256(path)
    return _SHA_CACHE[key]


def source_files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): cached_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def root(tmp_path):
    """Where the clients' caches go: deleted after the test (each download is the 538 MB model)."""
    yield tmp_path / "caches"
    shutil.rmtree(tmp_path / "caches", ignore_errors=True)


@pytest.fixture
def hf(fake_hf_hub):
    fake_hf_hub.reset()
    yield fake_hf_hub
    fake_hf_hub.reset()


@pytest.fixture
def ms(fake_modelscope_hub):
    fake_modelscope_hub.reset()
    yield fake_modelscope_hub
    fake_modelscope_hub.reset()


@pytest.mark.slow
@pytest.mark.parametrize("which", ["hf", "modelscope"])
def test_snapshot_download_gives_the_source_files(which, hf, ms, demo_model_dir, root):
    hub = hf if which == "hf" else ms
    env = hub_client_env(root, hf=hf) if which == "hf" else hub_client_env(root, ms=ms)
    started = time.monotonic()
    result = run_client(which, env)
    assert "path" in result, result
    out = Path(result["path"])
    assert out.is_relative_to(root), f"{out} is not in this test's cache"  # the env's cache was used
    expected = source_files(demo_model_dir)
    assert source_files(out) == expected
    # every file came from our server over its plain download route (no Xet, no other host)
    assert sorted({r.file for r in hub.file_requests()}) == sorted(expected)
    assert not hub.range_requests()
    print(f"{which}: {sum(p.stat().st_size for p in demo_model_dir.iterdir()) / MiB:.0f} MiB in "
          f"{time.monotonic() - started:.1f} s")


@pytest.mark.slow
def test_hf_resumes_a_dropped_connection_with_range(hf, demo_model_dir, root):
    # huggingface_hub writes in 10 MiB steps: cut well past the first one
    hf.arm_drop(64 * MiB, file=WEIGHTS)
    result = run_client("hf", hub_client_env(root, hf=hf), patterns=[WEIGHTS])
    assert "path" in result, result
    assert sha256(Path(result["path"]) / WEIGHTS) == weights_sha256(demo_model_dir)
    [dropped] = hf.dropped_requests()
    assert dropped.sent == 64 * MiB
    [resumed] = hf.range_requests(WEIGHTS)
    offset = int(resumed.range.removeprefix("bytes=").rstrip("-"))
    assert 10 * MiB <= offset <= 64 * MiB and resumed.status == 206
    assert resumed.sent == (demo_model_dir / WEIGHTS).stat().st_size - offset  # the rest, not the whole file


@pytest.mark.slow
def test_modelscope_resumes_a_dropped_connection_with_range(ms, demo_model_dir, root):
    ms.arm_drop(64 * MiB, file=WEIGHTS)
    result = run_client("modelscope", hub_client_env(root, ms=ms), patterns=[WEIGHTS])
    assert "path" in result, result
    assert sha256(Path(result["path"]) / WEIGHTS) == weights_sha256(demo_model_dir)
    [resumed] = ms.range_requests(WEIGHTS)
    assert resumed.range == f"bytes={64 * MiB}-" and resumed.status == 206
    assert resumed.sent == (demo_model_dir / WEIGHTS).stat().st_size - 64 * MiB


@pytest.mark.slow
def test_modelscope_resumes_after_the_process_was_killed(ms, demo_model_dir, root):
    """A download cut off by the process ending (app restart, Stop) goes on from the partial file on disk."""
    env = hub_client_env(root, ms=ms)
    ms.throttle_bps = 40 * MiB
    proc = subprocess.Popen([sys.executable, "-c", CLIENT, "modelscope", DEMO_REPO_ID, json.dumps([WEIGHTS])],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while ms.bytes_served(WEIGHTS) < 30 * MiB:
            assert proc.poll() is None and time.monotonic() < deadline, "the first download did not get going"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    ms.throttle_bps = None
    result = run_client("modelscope", env, patterns=[WEIGHTS])
    assert "path" in result, result
    assert sha256(Path(result["path"]) / WEIGHTS) == weights_sha256(demo_model_dir)
    [resumed] = ms.range_requests(WEIGHTS)
    assert int(resumed.range.removeprefix("bytes=").rstrip("-")) >= 20 * MiB and resumed.status == 206


@pytest.mark.slow
def test_hf_not_found_and_gated_raise_the_clients_errors(hf, root):
    env = hub_client_env(root, hf=hf)
    missing = run_client("hf", env, repo="tuneboard-test/no-such-model")
    assert missing["error"] == "RepositoryNotFoundError", missing
    gated = run_client("hf", env, repo=GATED_REPO_ID, patterns=["config.json"])
    assert gated["error"] == "GatedRepoError", gated
    # a token the hub accepts opens it, through the client's own HF_TOKEN
    opened = run_client("hf", hub_client_env(root / "t", hf=hf, token=True), repo=GATED_REPO_ID,
                        patterns=["config.json"])
    assert (Path(opened["path"]) / "config.json").is_file(), opened


@pytest.mark.slow
def test_modelscope_not_found_and_gated_raise_the_clients_errors(ms, root):
    env = hub_client_env(root, ms=ms)
    missing = run_client("modelscope", env, repo="tuneboard-test/no-such-model")
    assert (missing["error"], missing["cause"]) == ("HTTPError", "NotExistError"), missing
    gated = run_client("modelscope", env, repo=GATED_REPO_ID, patterns=["config.json"])
    assert (gated["error"], gated["cause"]) == ("HTTPError", "AuthenticationError"), gated
    wrong = run_client("modelscope", dict(env, MODELSCOPE_API_TOKEN="not-the-token"), repo=GATED_REPO_ID,
                       patterns=["config.json"])
    assert (wrong["error"], wrong["cause"]) == ("HTTPError", "PermissionDeniedError"), wrong
    opened = run_client("modelscope", hub_client_env(root / "t", ms=ms, token=True), repo=GATED_REPO_ID,
                        patterns=["config.json"])
    assert (Path(opened["path"]) / "config.json").is_file(), opened


def test_hf_offline_mode_with_an_empty_cache(hf, root):
    result = run_client("hf", dict(hub_client_env(root, hf=hf), HF_HUB_OFFLINE="1"))
    assert result["error"] == "LocalEntryNotFoundError" and result["cause"] == "OfflineModeIsEnabled", result
    assert not hf.requests  # offline means not even asking


@pytest.mark.slow
def test_no_server_at_the_endpoint(hf, ms, root):
    port = free_port()  # nothing listens there: what "no network" looks like to each client
    hf_env = dict(hub_client_env(root, hf=hf), HF_ENDPOINT=f"http://127.0.0.1:{port}")
    result = run_client("hf", hf_env)
    assert result["error"] == "LocalEntryNotFoundError" and result["cause"] == "ConnectError", result
    ms_env = dict(hub_client_env(root, ms=ms), MODELSCOPE_DOMAIN=f"127.0.0.1:{port}")
    result = run_client("modelscope", ms_env)  # retries its listing for ~7 s first
    assert result["error"] == "NetworkError", result
