#!/usr/bin/env bash
# The README's test command: set up .venv if needed, then lint and run the test suite.
# The tests run in three processes (pytest-xdist), a test file in one process at a time, so that
# module fixtures (the SLURM cluster, the browser) start once. Many tests wait on FEFF, servers
# and schedulers, so more processes than cores keep the cores busy. On a 2-core machine: 1,510 s
# in one process, 827-900 s in two, 793-884 s in three.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/lint-imports
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider --numprocesses 3 --dist loadfile "$@"
