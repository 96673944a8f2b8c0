#!/usr/bin/env bash
# Set up a fresh machine and run the checks: ruff, the whole test suite, the light install and
# the documentation's strict build (a broken link or a missing page fails).
# The real MNIST files are read from $DIGITREC_DATA (default ../shared/data); the browser test
# needs Debian's chromium and chromium-driver (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh "train,serve,dev,docs"
export DIGITREC_DATA="${DIGITREC_DATA:-$(cd .. && pwd)/shared/data}"
ruff check .
python -m pytest -q "$@"
bash scripts/check_light_install.sh
docs_site="$(mktemp -d)"
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "$docs_site"
rm -rf "$docs_site"
