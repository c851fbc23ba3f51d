#!/usr/bin/env bash
# The README's test command: set up .venv if needed, then lint and run the test suite.
# The tests run in two processes, a test file in one process (module fixtures such as the SLURM
# cluster and the browser stay single): many wait on FEFF, servers and schedulers, so two
# processes keep both cores busy (a 2-core machine: 1,510 s in one process, 900 s in two).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/lint-imports
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider --numprocesses 2 --dist loadfile "$@"
