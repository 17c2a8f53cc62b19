#!/usr/bin/env bash
# The real-data studies of docs/results.md, exactly as run there (issue #5), on a CPU machine.
#
#   UNIFOCAL_DATA=/path/to/data bash scripts/reproduce_cpu_study.sh [OUT]   (default OUT: runs/paper_cpu)
#
# Stages: BUSI seven losses x 5 folds; BUSI delta grid (Table 2, 5 folds); BUSI gamma and lambda grids
# (Table 2, fold 0); Hippocampus seven losses (fold 0, 3 epochs, then 8 epochs).
# Each stage skips finished runs and resumes interrupted ones, so the script can be re-run
# after an interruption. Wall times are appended to OUT/times.txt. WORKERS (default 2) runs that many
# trainings side by side, one torch thread each.
set -euo pipefail
: "${UNIFOCAL_DATA:?set UNIFOCAL_DATA to the folder holding BUSI/ and MSD_Task04_Hippocampus/}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-runs/paper_cpu}"
workers="${WORKERS:-2}"
mkdir -p "$out"

stage() {  # name, command...
    local name=$1; shift
    local start; start=$(date +%s)
    "$@"
    echo "$name $(( $(date +%s) - start )) s ($(date -u +%FT%TZ))" >> "$out/times.txt"
}

busi=(--dataset "$UNIFOCAL_DATA/BUSI" --layout pairs --dataset-option 'include=^(benign|malignant)_'
      --config "$here/configs/busi_cpu.yaml" --folds 5 --epochs 3 --batch-size 8 --scheme adam
      --workers "$workers")

stage busi_compare unifocal study compare "${busi[@]}" --losses paper --output "$out/busi"
stage busi_delta unifocal study tune "${busi[@]}" --grid delta --splits-dir "$out/busi" \
    --output "$out/busi_delta"
stage busi_gamma_lambda unifocal study tune "${busi[@]}" --grid gamma,lambda --fold 0 --splits-dir "$out/busi" \
    --output "$out/busi_gamma_lambda"
hippocampus=(--dataset "$UNIFOCAL_DATA/MSD_Task04_Hippocampus" --config "$here/configs/hippocampus_cpu.yaml"
             --folds 5 --fold 0 --scheme adam --workers "$workers")

stage hippocampus_compare unifocal study compare "${hippocampus[@]}" --losses paper --epochs 3 \
    --output "$out/hippocampus"
stage hippocampus_8ep unifocal study compare "${hippocampus[@]}" --losses paper --epochs 8 \
    --splits-dir "$out/hippocampus" --output "$out/hippocampus_8ep"

unifocal study report "$out/busi" --unit folds --output "$out/busi/report"
unifocal study report "$out/busi" --unit cases --output "$out/busi/report_cases"
unifocal study report "$out/busi_delta" --unit folds
unifocal study report "$out/busi_gamma_lambda" --unit cases
unifocal study report "$out/hippocampus" --unit cases
unifocal study report "$out/hippocampus_8ep" --unit cases
