# Shared by scripts/train_all.sh and scripts/test_all.sh (sourced; needs ROOT set).
DATA_ROOT=${DATA_ROOT:-data/vision}
WORK_ROOT=${WORK_ROOT:-work_dirs}
PYTHON=${PYTHON:-python}
export PYTHON

die() {
    echo "error: $*" >&2
    exit 1
}

# configs/<family>/<MODEL>.py, the family being MODEL without a _tiny suffix.
model_config() {
    local config="$ROOT/configs/${1%_tiny}/$1.py"
    [[ -f "$config" ]] || die "unknown model '$1': $config does not exist"
    echo "$config"
}

# The datasets under a data root: folders with a train split, sorted by name.
datasets_of() {
    local ann
    for ann in "$1"/*/train/_annotations.coco.json; do
        [[ -f "$ann" ]] && basename "$(dirname "$(dirname "$ann")")"
    done
    return 0
}
