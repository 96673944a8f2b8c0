#!/usr/bin/env bash
# Set up a fresh machine and run the checks: ruff, the whole test suite, and the light install.
# The real MNIST files are read from $DIGITREC_DATA (default ../shared/data); the browser test
# needs Debian's chromium and chromium-driver (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh "train,serve,dev"
export DIGITREC_DATA="${DIGITREC_DATA:-$(cd .. && pwd)/shared/data}"
ruff check .
python -m pytest -q "$@"
bash scripts/check_light_install.sh
