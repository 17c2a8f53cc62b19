#!/usr/bin/env bash
# The paper's full-size configuration (configs/busi_paper_full.yaml: 64 base filters, batch 32, SGD,
# 100 epochs) for the Unified Focal and Dice losses on BUSI fold 0, on one CUDA GPU.
#
#   UNIFOCAL_DATA=/path/to/data bash scripts/gpu_full_size.sh [OUT]   (default OUT: results/busi_full_size)
#
# The two runs go one after the other on the GPU; the fold is the committed store's (results/busi/splits.json).
# Resumable: run it again after an interruption. Then: unifocal study report OUT --unit cases
set -euo pipefail
: "${UNIFOCAL_DATA:?set UNIFOCAL_DATA to the folder holding BUSI/}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$here/results/busi_full_size}"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this script is for a GPU')"
start=$(date +%s)
unifocal study compare --dataset "$UNIFOCAL_DATA/BUSI" --layout pairs --dataset-option 'include=^(benign|malignant)_' \
    --folds 5 --fold 0 --config "$here/configs/busi_paper_full.yaml" --scheme sgd --device cuda \
    --losses unified_focal,dice --splits-dir "$here/results/busi" --output "$out"
echo "full_size $(( $(date +%s) - start )) s ($(date -u +%FT%TZ), $(python -c 'import torch; print(torch.cuda.get_device_name())'))" >> "$out/times.txt"
unifocal study report "$out" --unit cases --format png
