#!/usr/bin/env bash
# Run by Snakemake after creating the env (--sdm conda), from the repository root.
set -euo pipefail
pip install --no-deps -e "${STANCE_REPO:-$PWD}"
