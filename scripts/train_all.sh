#!/usr/bin/env bash
# Train one model on every dataset of the data root, as the pipeline trains it.
#   scripts/train_all.sh MODEL [GPUS] [DATASETS...]
# MODEL is a config name (htc_cbswinb, cascade_r50, cascade_convnext, mask2former_swinl,
# or a *_tiny one): configs/<family>/<MODEL>.py. DATASETS default to every dataset of
# DATA_ROOT with a train split. GPUS=1 runs tools/train.py, more tools/dist_train.sh.
#
# This is `tools/run_pipeline.py --model-config configs/.../MODEL.py --stop-after train`:
# the same runs (the train-only model that gives the ensemble weights and, for the full
# configs, the train+val model that predicts), work dirs (WORK_ROOT/models/<model>/<train
# split>/<Dataset>) and records, so the pipeline later reuses them. A finished run with the
# same settings is skipped, an interrupted one resumed, one with other settings redone.
#
# Environment: DATA_ROOT (data/vision), WORK_ROOT (work_dirs/vision, the pipeline's work
# dir), PYTHON (python), TRAIN_ARGS (more tools/train.py arguments, e.g. "--max-iters
# 2000" or "--weights-dir weights"), and dist_train.sh's NNODES, NODE_RANK, MASTER_ADDR, PORT.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/common.sh"

[[ $# -ge 1 ]] || die "usage: $0 MODEL [GPUS] [DATASETS...]"
run_model_steps train "$@"
