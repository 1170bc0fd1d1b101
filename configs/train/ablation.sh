#!/usr/bin/env bash
# The ablation of docs/model.md: every row trains with the same seed, tile, batch and
# step budget (STEPS), then is evaluated on the dev test slice of the data folder.
# Usage: configs/train/ablation.sh [STEPS] [RUNS_DIR]   (from the repository root)
set -euo pipefail
STEPS=${1:-700}
RUNS=${2:-runs/ablation}
BASE=configs/train/mvtec3d-rope-baseline.yaml
ALL=configs/train/mvtec3d-rope.yaml
RI=${RI:-rope-inspect}
THREADS=${THREADS:-2}

row() {  # row NAME CONFIG [--set KEY=VALUE ...]
    local name=$1 config=$2
    shift 2
    if [ ! -f "$RUNS/$name/eval/report.json" ]; then
        $RI --log-format json train --config "$config" --out "$RUNS/$name" \
            --set optim.steps="$STEPS" --set threads="$THREADS" "$@"
        $RI --log-format json eval --run "$RUNS/$name" --no-overlays
    fi
}

row baseline "$BASE"
row skip "$BASE" --set model.skip_connections=true
row dual-attention "$BASE" --set model.dual_attention=true
row transformer "$BASE" --set model.transformer=true
row aspp "$BASE" --set model.aspp=true
row mask-strict "$BASE" --set synthesis.mask_constrained=strict
row mask-envelope "$BASE" --set synthesis.mask_constrained=envelope
row all "$ALL"
