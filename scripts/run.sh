#!/usr/bin/env bash
# Set up a fresh machine, train the default model and evaluate it on the test set.
# Data comes from $DIGITREC_DATA, else ../shared/data if it holds MNIST (as in CI),
# else it is downloaded to ~/.cache/digitrec/data.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh "train"
if [ -z "${DIGITREC_DATA:-}" ] && [ -d ../shared/data/mnist ]; then
  export DIGITREC_DATA="$(cd .. && pwd)/shared/data"
fi
run="${RUN_DIR:-runs/baseline-$(date +%Y%m%d-%H%M%S)}"
digitrec data
digitrec train --model baseline --out "$run"
digitrec evaluate "$run"
