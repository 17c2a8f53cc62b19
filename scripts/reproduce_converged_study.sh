#!/usr/bin/env bash
# The converged real-data studies of docs/results.md ("The study, converged"), on a CPU machine.
#
#   UNIFOCAL_DATA=/path/to/data bash scripts/reproduce_converged_study.sh [STAGE...]
#
# Results go to the committed results store results/<study>/ (override the root with RESULTS); each run
# folder keeps its small files in git (config.yaml, split.json, log.csv, metrics_per_case.csv,
# summary.json), never its checkpoints. Finished runs are never recomputed, an interrupted run restarts
# (or resumes where its checkpoint is still on disk), so the script can be run again in several sittings,
# on different machines. Stages, in the order they run by default:
#   busi_fold0   BUSI, the paper's seven losses, fold 0 (the learning curves)
#   busi         BUSI, the paper's seven losses, all 5 folds (started fold by fold)
#   sgd_recipe   BUSI, the paper's SGD recipe as printed, Unified Focal and Dice, fold 0, with diagnostics;
#                then the same with the U-Net paper's initialisation, and with instance normalisation
#   hippocampus  Hippocampus 3D, the paper's seven losses, fold 0
#   busi_delta   BUSI, the delta sweep of Table 2 (gamma = 0, lambda = 0.5), fold 0
#   busi_grouped BUSI, the paper's seven losses on leak-free folds (near-duplicates kept in one fold):
#                fold 0 with seeds 0, 1 and 2 (the noise floor) first, then folds 1-4 with seed 0, then
#                `unifocal study converge` on the runs that did not converge
#   busi_bf16    bf16 parity: Unified Focal and Dice on busi_grouped's fold 0 with seeds 0 and 1, under
#                bfloat16 autocast (--amp), beside the float32 networks of busi_grouped (not run by default)
# WORKERS (default 2) runs that many trainings side by side, one torch thread each.
set -euo pipefail
: "${UNIFOCAL_DATA:?set UNIFOCAL_DATA to the folder holding BUSI/ and MSD_Task04_Hippocampus/}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="${RESULTS:-$here/results}"
workers="${WORKERS:-2}"
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(busi_grouped busi_fold0 busi sgd_recipe hippocampus busi_delta)
mkdir -p "$root"

timed() {  # name, command...
    local name=$1; shift
    local start; start=$(date +%s)
    "$@"
    echo "$name $(( $(date +%s) - start )) s ($(date -u +%FT%TZ), $(nproc) cores)" >> "$root/times.txt"
}

busi_data=(--dataset "$UNIFOCAL_DATA/BUSI" --layout pairs --dataset-option 'include=^(benign|malignant)_' --folds 5)
busi=("${busi_data[@]}" --config "$here/configs/busi_converged.yaml" --scheme adam --workers "$workers")
hippocampus=(--dataset "$UNIFOCAL_DATA/MSD_Task04_Hippocampus" --config "$here/configs/hippocampus_converged.yaml"
             --folds 5 --scheme adam --workers "$workers")

settings() {  # study folder, report.yaml text: the report settings of a study, written once
    mkdir -p "$1"
    [ -f "$1/report.yaml" ] || printf '%s\n' "$2" > "$1/report.yaml"
}

for stage in "${stages[@]}"; do
    case "$stage" in
        busi_fold0|busi) settings "$root/busi" $'unit: folds\npaper: table3\nformats: [png]\ncomplete_folds: true' ;;
    esac
    case "$stage" in
        busi_fold0) timed busi_fold0 unifocal study compare "${busi[@]}" --losses paper --fold 0 --output "$root/busi" ;;
        busi) # the runs start fold by fold (a study cut short leaves complete folds to report), and a worker
              # freed at the end of a fold starts the next fold's first run
              timed busi unifocal study compare "${busi[@]}" --losses paper --output "$root/busi" ;;
        sgd_recipe) timed sgd_recipe unifocal study compare "${busi_data[@]}" --config "$here/configs/busi_sgd_recipe.yaml" \
                        --scheme sgd --losses unified_focal,dice --fold 0 --workers "$workers" \
                        --splits-dir "$root/busi" --output "$root/busi_sgd_recipe"
                    timed sgd_recipe_he unifocal study compare "${busi_data[@]}" --config "$here/configs/busi_sgd_recipe_he.yaml" \
                        --scheme sgd --losses unified_focal,dice --fold 0 --workers "$workers" \
                        --splits-dir "$root/busi" --output "$root/busi_sgd_recipe_he"
                    timed sgd_recipe_in unifocal study compare "${busi_data[@]}" --config "$here/configs/busi_sgd_recipe_in.yaml" \
                        --scheme sgd --losses unified_focal,dice --fold 0 --workers "$workers" \
                        --splits-dir "$root/busi" --output "$root/busi_sgd_recipe_in" ;;
        hippocampus) settings "$root/hippocampus" $'unit: cases\npaper: table5\nformats: [png]'
                     timed hippocampus unifocal study compare "${hippocampus[@]}" --losses paper --fold 0 \
                         --output "$root/hippocampus" ;;
        busi_delta) settings "$root/busi_delta" $'unit: cases\npaper: table2_delta\nformats: [png]\noverlays: false'
                    timed busi_delta unifocal study tune "${busi[@]}" --grid delta --fold 0 \
                        --splits-dir "$root/busi" --output "$root/busi_delta" ;;
        busi_grouped) settings "$root/busi_grouped" $'unit: folds\npaper: table3\nformats: [png]\ncomplete_folds: true'
                      # float32, as the committed store was trained (before bf16 became the configuration's default)
                      timed busi_grouped_fold0 unifocal study compare "${busi[@]}" --no-amp --losses paper --fold 0 \
                          --seeds 0,1,2 --output "$root/busi_grouped"
                      timed busi_grouped unifocal study compare "${busi[@]}" --no-amp --losses paper --seeds 0 \
                          --output "$root/busi_grouped"
                      # the runs the convergence criterion flags, continued under doubled limits (docs/study.md)
                      timed busi_grouped_converge unifocal study converge "$root/busi_grouped" --workers "$workers" ;;
        busi_bf16) settings "$root/busi_grouped_bf16" $'unit: cases\nformats: [png]\noverlays: false'
                   timed busi_bf16 unifocal study compare "${busi[@]}" --amp --losses unified_focal,dice --fold 0 \
                       --seeds 0,1 --splits-dir "$root/busi_grouped" --output "$root/busi_grouped_bf16" ;;
        *) echo "unknown stage $stage (busi_grouped, busi_fold0, busi, sgd_recipe, hippocampus, busi_delta, busi_bf16)" >&2
           exit 2 ;;
    esac
done
# the reports of the committed store (settings in each study's report.yaml)
for study in "$root"/*/; do
    [ -f "$study/report.yaml" ] || continue
    if grep -rlqs '"status": "finished"' --include=summary.json "$study"; then
        unifocal study report "$study"
    else
        echo "no finished run in $study yet: no report" >&2
    fi
done
true
