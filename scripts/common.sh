# Shared by scripts/train_all.sh and scripts/test_all.sh (sourced; needs ROOT set).
DATA_ROOT=${DATA_ROOT:-data/vision}
WORK_ROOT=${WORK_ROOT:-work_dirs/vision}
PYTHON=${PYTHON:-python}
export PYTHON

die() {
    echo "error: $*" >&2
    exit 1
}

# configs/<family>/<MODEL>.py, the family being MODEL without a _tiny suffix.
model_config() {
    local config="configs/${1%_tiny}/$1.py"
    [[ -f "$ROOT/$config" ]] || die "unknown model '$1': $ROOT/$config does not exist"
    echo "$config"
}

# Runs tools/run_pipeline.py for one model (a config name), up to the step STOP (train or
# predict), on GPUS (a leading number among the remaining arguments, else 1) and DATASETS
# (the others, else every dataset of DATA_ROOT); TRAIN_ARGS go to every training run.
run_model_steps() {
    local stop=$1 config gpus=1
    config="$(model_config "$2")"
    shift 2
    if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
        gpus=$1
        shift
    fi
    [[ -d "$DATA_ROOT" ]] || die "$DATA_ROOT: data root does not exist (set DATA_ROOT)"
    local args=(--data-root "$DATA_ROOT" --work-dir "$WORK_ROOT" --model-config "$config"
                --gpus "$gpus" --stop-after "$stop")
    [[ $# -gt 0 ]] && args+=(--datasets "$@")
    # TRAIN_ARGS holds several arguments: split into words on purpose.
    # shellcheck disable=SC2206
    [[ -n "${TRAIN_ARGS:-}" ]] && args+=(--train-args ${TRAIN_ARGS})
    exec "$PYTHON" "$ROOT/tools/run_pipeline.py" "${args[@]}"
}
