#!/usr/bin/env bash
# Create .venv (if missing) and install digitrec with the given extras, CPU PyTorch first.
# Usage: source scripts/setup.sh EXTRAS   (e.g. "train" or "train,dev")
# TORCH_SPEC chooses the PyTorch build (default torch==2.13.0); set it to "" to keep what is there.
set -euo pipefail
extras="${1:-train}"
python3 -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade pip
if ! python -c "import torch" 2>/dev/null && [ -n "${TORCH_SPEC-torch==2.13.0}" ]; then
  python -m pip install -q "${TORCH_SPEC-torch==2.13.0}"
fi
python -m pip install -q -e ".[${extras}]"
