#!/usr/bin/env bash
# Set up a fresh machine and run the checks: ruff, then the whole test suite.
# The real MNIST files are read from $DIGITREC_DATA (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh "train,dev"
export DIGITREC_DATA="${DIGITREC_DATA:-$(cd .. && pwd)/shared/data}"
ruff check .
python -m pytest -q "$@"
