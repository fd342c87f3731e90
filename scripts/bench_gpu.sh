#!/usr/bin/env bash
# Paper-scale figures on one CUDA GPU (docs/benchmarks.md, "Benchmarks on a GPU"): the STANCE transformer
# at CogVideoX1.5-5B geometry (random weights) for one training step, and Depth-Anything-V2
# Large at 518 px. Needs the project installed (`stance` on PATH or STANCE="python3 -m ...").
# Usage: bash scripts/bench_gpu.sh [train|depth|all]   (prints figures; OOM is reported)
set -uo pipefail
STANCE=${STANCE:-stance}
what=${1:-all}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if [[ $what == train || $what == all ]]; then
    big="--geometry 5b --frames 49 --size 512 --steps 3"
    $STANCE bench train $big --gradient-checkpointing
    $STANCE bench train $big
    $STANCE bench train $big --gradient-checkpointing --aux
    $STANCE bench train $big --aux
    $STANCE bench train $big --gradient-checkpointing --precision autocast
    $STANCE bench train --geometry 5b --frames 49 --size 768 --width 1360 --steps 2 \
        --gradient-checkpointing
    $STANCE bench train --geometry 5b --frames 49 --size 768 --width 1360 --steps 2 \
        --gradient-checkpointing --aux
    $STANCE bench train --aux --steps 20  # the tiny geometry of the embedded config
fi
if [[ $what == depth || $what == all ]]; then
    for batch in 1 8 32; do
        $STANCE bench depth --geometry large --input-size 518 --frames 64 --batch-size $batch
    done
fi
