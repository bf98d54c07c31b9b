#!/usr/bin/env bash
# Predict every dataset with its trained model: OUT_DIR/<Dataset>.segm.json and
# .bbox.json (detectors) or OUT_DIR/<Dataset>.sem.json (the semantic model).
#   scripts/test_all.sh MODEL CKPT_ROOT OUT_DIR [GPUS] [DATASETS...]
# MODEL as for train_all.sh; CKPT_ROOT holds one work dir per dataset (train_all.sh's
# WORK_ROOT/MODEL), whose latest checkpoint (MMEngine's last_checkpoint) is tested.
# The first failure stops the loop.
#
# Environment: DATA_ROOT (data/vision), SPLIT (inference), PYTHON (python),
# TEST_ARGS (more tools/test.py arguments, e.g. "--tta"), and dist_test.sh's
# NNODES, NODE_RANK, MASTER_ADDR, PORT.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/common.sh"

[[ $# -ge 3 ]] || die "usage: $0 MODEL CKPT_ROOT OUT_DIR [GPUS] [DATASETS...]"
MODEL=$1
CKPT_ROOT=$2
OUT_DIR=$3
shift 3
CONFIG="$(model_config "$MODEL")"
gpus_and_datasets "$@"

for DATASET in "${DATASETS[@]}"; do
    POINTER="$CKPT_ROOT/$DATASET/last_checkpoint"
    [[ -f "$POINTER" ]] || die "$MODEL/$DATASET: no trained model ($POINTER missing)"
    CHECKPOINT="$(cat "$POINTER")"
    ARGS=(--data-root "$DATA_ROOT" --dataset "$DATASET" --split "${SPLIT:-inference}"
          --out-dir "$OUT_DIR" --work-dir "$CKPT_ROOT/$DATASET")
    # TEST_ARGS holds several arguments: split into words on purpose.
    # shellcheck disable=SC2206
    ARGS+=(${TEST_ARGS:-})
    echo "[test_all] $MODEL/$DATASET: testing $CHECKPOINT on $GPUS GPU(s)"
    STATUS=0
    if [[ $GPUS -gt 1 ]]; then
        bash "$ROOT/tools/dist_test.sh" "$CONFIG" "$CHECKPOINT" "$GPUS" "${ARGS[@]}" || STATUS=$?
    else
        "$PYTHON" "$ROOT/tools/test.py" "$CONFIG" "$CHECKPOINT" "${ARGS[@]}" || STATUS=$?
    fi
    [[ $STATUS -eq 0 ]] || die "$MODEL/$DATASET: testing failed (exit $STATUS)"
done
echo "[test_all] $MODEL: ${#DATASETS[@]} dataset(s) written to $OUT_DIR"
