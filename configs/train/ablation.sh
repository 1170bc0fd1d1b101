#!/usr/bin/env bash
# The ablation of docs/model.md: every row trains with the same seed, tile, batch and
# step budget (STEPS), then is evaluated on the dev test slice of the data folder.
# Usage: configs/train/ablation.sh [STEPS] [RUNS_DIR]   (from the repository root)
# Env: RI (the rope-inspect command), THREADS (torch threads; 1 is faster than 2 when
# other jobs share a 2-core machine), EVAL_BG=1 (evaluate a row while the next trains).
set -euo pipefail
STEPS=${1:-500}
RUNS=${2:-runs/ablation}
BASE=configs/train/mvtec3d-rope-baseline.yaml
ALL=configs/train/mvtec3d-rope.yaml
RI=${RI:-rope-inspect}
THREADS=${THREADS:-2}
EVAL_BG=${EVAL_BG:-0}

row() {  # row NAME CONFIG [--set KEY=VALUE ...]
    local name=$1 config=$2
    shift 2
    if [ -f "$RUNS/$name/eval/report.json" ]; then
        return
    fi
    if [ ! -f "$RUNS/$name/metrics.json" ]; then
        $RI --log-format json train --config "$config" --out "$RUNS/$name" \
            --set optim.steps="$STEPS" --set threads="$THREADS" "$@"
    fi
    if [ "$EVAL_BG" = 1 ]; then
        $RI --log-format json eval --run "$RUNS/$name" --no-overlays &
    else
        $RI --log-format json eval --run "$RUNS/$name" --no-overlays
    fi
}

row baseline "$BASE"
row all "$ALL"
row mask-envelope "$BASE" --set synthesis.mask_constrained=envelope
row mask-strict "$BASE" --set synthesis.mask_constrained=strict
row aspp "$BASE" --set model.aspp=true
row skip "$BASE" --set model.skip_connections=true
row dual-attention "$BASE" --set model.dual_attention=true
row transformer "$BASE" --set model.transformer=true
wait
