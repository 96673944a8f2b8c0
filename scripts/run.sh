#!/usr/bin/env bash
# Set up a fresh machine, train the default model and evaluate it on the test set.
# Data comes from $DIGITREC_DATA if set, else it is downloaded to ~/.cache/digitrec/data.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh "train"
run="${RUN_DIR:-runs/baseline-$(date +%Y%m%d-%H%M%S)}"
digitrec data
digitrec train --model baseline --out "$run"
digitrec evaluate "$run"
