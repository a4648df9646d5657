#!/bin/sh
# Make the virtual environment .venv and install MTMR Reader into it (editable):
#   sh scripts/setup.sh          the app
#   sh scripts/setup.sh test     the app and what the tests need
#
# torch==2.13.0 comes from:
# - PyTorch's CPU wheel index (the CPU-only build, about 200 MB) on Linux when no NVIDIA driver is
#   installed and pip has no package source configured (no index-url, extra-index-url, find-links or
#   no-index in pip's config files or PIP_* variables): the default index's Linux build would pull
#   the CUDA runtime packages, several GB;
# - wherever pip is configured to get it otherwise (a configured pip is left alone), and on macOS
#   (the regular wheel, MPS on Apple silicon) or a machine with an NVIDIA driver (the default
#   index's CUDA build). A torch 2.13.0 already in .venv (e.g. a CUDA build installed first) is kept.
#
# MTMR_VENV: another folder for the environment; MTMR_SETUP_DRY_RUN=1: print the pip commands, run none.
set -eu
cd "$(dirname "$0")/.."

TORCH="torch==2.13.0"
CPU_INDEX="https://download.pytorch.org/whl/cpu"
venv="${MTMR_VENV:-.venv}"
target="."
[ "${1:-}" = test ] && target=".[test]"

run() {
  if [ -n "${MTMR_SETUP_DRY_RUN:-}" ]; then echo "$*"; else "$@"; fi
}

[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
pip="$venv/bin/pip"

nvidia_driver() {
  [ -e /proc/driver/nvidia/version ] || command -v nvidia-smi >/dev/null 2>&1
}
pip_configured() {
  "$pip" config list 2>/dev/null | grep -Eq '\.(index-url|extra-index-url|find-links|no-index)='
}

if [ "$(uname -s)" = Linux ] && ! nvidia_driver && ! pip_configured; then
  echo "setup: no NVIDIA driver: torch's CPU-only build from PyTorch's CPU wheel index"
  run "$pip" install "$TORCH" --index-url "$CPU_INDEX"
fi
run "$pip" install "$TORCH" -e "$target"
