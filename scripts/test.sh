#!/usr/bin/env bash
# The test command: quality gates, then the test suite (unit, real Blender renders, DAG
# invalidation on a temp copy of the repo, real Slurm). Extra arguments go to pytest.
# `--fast` (first argument) skips the slow tiers: Blender renders, DAG copies, the real
# Slurm and the tests marked slow (real training runs, time limits, multi-process launches).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/python ]] || { echo "run scripts/setup.sh first" >&2; exit 1; }
export PATH="$PWD/.venv/bin:$PATH"

# one command per line: under `set -e` a failure on the left of `&&` does not stop the script
echo "== ruff"; ruff check .; ruff format --check .
echo "== snakefmt"; snakefmt --check Snakefile rules/
echo "== snakemake --lint"; snakemake --lint >/dev/null
if [[ ${1:-} == --fast ]]; then
  shift
  set -- -m "not blender and not dag and not slurm and not slow" "$@"
fi
echo "== pytest"; pytest "$@"
