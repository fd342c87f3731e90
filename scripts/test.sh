#!/usr/bin/env bash
# The test command: quality gates, then the test suite (unit, real Blender renders, DAG
# invalidation on a temp copy of the repo). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/python ]] || { echo "run scripts/setup.sh first" >&2; exit 1; }
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff"; ruff check . && ruff format --check .
echo "== snakefmt"; snakefmt --check Snakefile rules/
echo "== snakemake --lint"; snakemake --lint >/dev/null
echo "== pytest"; pytest "$@"
