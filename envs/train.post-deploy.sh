#!/usr/bin/env bash
# Run by Snakemake after creating the env (--sdm conda), from the repository root.
# torch is pinned and installed here so that pip never resolves a newer build.
set -euo pipefail
pip install torch==2.13.0
pip install --no-build-isolation deepspeed==0.19.8 torch==2.13.0
pip install --no-deps -e "${STANCE_REPO:-$PWD}"
