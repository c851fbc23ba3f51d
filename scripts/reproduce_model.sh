#!/usr/bin/env bash
# Regenerate docs/figures/model (Table 3, Fig. 8, Fig. 9, balanced set, model comparison) from the
# committed reference dataset, in a fresh embedded database that is stopped at the end. The model is
# the paper's protocol (--feature-set paper), whatever the default feature set of vtc-fw is.
#
# Usage: bash scripts/reproduce_model.sh [WORKDIR] [PORT]
#   WORKDIR  where the database, FEFF run directories and logs go (default: a new temporary folder)
#   PORT     the embedded server's port (default 27021, away from the default server's 27017)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(realpath -m "${1:-$(mktemp -d -t vtc-model-XXXX)}")
port=${2:-27021}
out=docs/figures/model
mkdir -p "$work"
db="$work/db.json"
printf '{"host": "127.0.0.1", "port": %s, "database": "vtc_report", "embedded_home": "%s/home"}\n' \
  "$port" "$work" > "$db"
if .venv/bin/vtc-fw db status --db-file "$db" --json | grep -q '"answering": true'; then
  echo "error: a server already answers on port $port (its data would be used, not a fresh" \
    "database): stop it or pass another PORT" >&2
  exit 1
fi
trap '.venv/bin/vtc-fw db stop --db-file "$db" || true' EXIT

step() { echo "== $(date +%H:%M:%S) $*"; }
step "database $db; logs and run directories in $work"
step "vtc-fw run --n 0 --feature-set paper: import the dataset, build, train, predict"
.venv/bin/vtc-fw run --n 0 --feature-set paper --db-file "$db" --run-dir "$work/runs" --json \
  | tee "$work/run.log"
step "vtc-fw report --out $out (the paper's protocol)"
.venv/bin/vtc-fw report --out "$out" --feature-set paper --db-file "$db"
step "scripts/compare_models.py (paired 10 x 5-fold CV)"
.venv/bin/python scripts/compare_models.py --db-file "$db" --n-iter 20 --jobs 2 --cv-repeats 10 \
  --json "$out/comparison.json" --markdown "$out/comparison.md"
step "done in $((SECONDS / 60)) min $((SECONDS % 60)) s: $out, the run's report and JSON in $work/run.log"
