#!/usr/bin/env bash
# Run by Snakemake after creating the env (--sdm conda), from the repository root.
set -euo pipefail
pip install torch==2.13.0  # pinned here so that pip never resolves a newer build
pip install --no-deps -e "${STANCE_REPO:-$PWD}"
