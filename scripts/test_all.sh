#!/usr/bin/env bash
# Predict every dataset with one model, as the pipeline predicts: val with the train-only
# model (the ensemble weights) and the inference split with the final one, into
# WORK_ROOT/preds/<split>/<model>/<Dataset>.segm.json (detectors, with TTA) or .sem.json.
#   scripts/test_all.sh MODEL [GPUS] [DATASETS...]
# MODEL as for train_all.sh. This is `tools/run_pipeline.py --model-config ...
# --stop-after predict`: models not trained yet (scripts/train_all.sh) are trained first,
# predictions already made with the same model and settings are skipped. GPUS > 1
# predicts through tools/dist_test.sh.
#
# Environment: DATA_ROOT (data/vision), WORK_ROOT (work_dirs/vision), PYTHON (python),
# TRAIN_ARGS (as for train_all.sh), and dist_test.sh's NNODES, NODE_RANK, MASTER_ADDR, PORT.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/common.sh"

[[ $# -ge 1 ]] || die "usage: $0 MODEL [GPUS] [DATASETS...]"
run_model_steps predict "$@"
