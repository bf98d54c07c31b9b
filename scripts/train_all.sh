#!/usr/bin/env bash
# Train one model on every dataset of the data root, one work dir per dataset.
#   scripts/train_all.sh MODEL [GPUS] [DATASETS...]
# MODEL is a config name (htc_cbswinb, cascade_r50, cascade_convnext, mask2former_swinl,
# or a *_tiny one): configs/<family>/<MODEL>.py. DATASETS default to every dataset of
# DATA_ROOT with a train split. GPUS=1 runs tools/train.py, more tools/dist_train.sh.
#
# Work dirs are WORK_ROOT/MODEL/<Dataset>. A finished training leaves a `done` file there
# (holding the final checkpoint's path) and is skipped next time; an unfinished one
# (a checkpoint but no `done`) is resumed. The first failure stops the loop.
#
# Environment: DATA_ROOT (data/vision), WORK_ROOT (work_dirs), PYTHON (python),
# TRAIN_ARGS (more tools/train.py arguments, e.g. "--max-iters 2000", or "--split
# train_val" to train on train and val together as the authors' final models), and
# dist_train.sh's NNODES, NODE_RANK, MASTER_ADDR, PORT.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/common.sh"

[[ $# -ge 1 ]] || die "usage: $0 MODEL [GPUS] [DATASETS...]"
MODEL=$1
shift
CONFIG="$(model_config "$MODEL")"
gpus_and_datasets "$@"

for DATASET in "${DATASETS[@]}"; do
    WORK_DIR="$WORK_ROOT/$MODEL/$DATASET"
    if [[ -f "$WORK_DIR/done" ]]; then
        echo "[train_all] $MODEL/$DATASET: done before ($(cat "$WORK_DIR/done")), skipped"
        continue
    fi
    ARGS=(--data-root "$DATA_ROOT" --dataset "$DATASET" --work-dir "$WORK_DIR")
    if [[ -f "$WORK_DIR/last_checkpoint" ]]; then
        ARGS+=(--resume)
    fi
    # TRAIN_ARGS holds several arguments: split into words on purpose.
    # shellcheck disable=SC2206
    ARGS+=(${TRAIN_ARGS:-})
    echo "[train_all] $MODEL/$DATASET: training on $GPUS GPU(s) in $WORK_DIR"
    STATUS=0
    if [[ $GPUS -gt 1 ]]; then
        bash "$ROOT/tools/dist_train.sh" "$CONFIG" "$GPUS" "${ARGS[@]}" || STATUS=$?
    else
        "$PYTHON" "$ROOT/tools/train.py" "$CONFIG" "${ARGS[@]}" || STATUS=$?
    fi
    [[ $STATUS -eq 0 ]] || die "$MODEL/$DATASET: training failed (exit $STATUS); logs in $WORK_DIR"
    [[ -f "$WORK_DIR/last_checkpoint" ]] || die "$MODEL/$DATASET: no checkpoint in $WORK_DIR"
    cp "$WORK_DIR/last_checkpoint" "$WORK_DIR/done"
done
echo "[train_all] $MODEL: ${#DATASETS[@]} dataset(s) trained"
