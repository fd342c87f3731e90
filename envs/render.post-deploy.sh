#!/usr/bin/env bash
# Run by Snakemake after creating the env (--sdm conda), inside the activated env, from
# the workflow's working directory (the repository root).
set -euo pipefail
pip install --no-deps kubric-nightly==2023.12.27
pip install --no-deps -e "${STANCE_REPO:-$PWD}"
