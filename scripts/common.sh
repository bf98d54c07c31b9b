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

# Sets GPUS (a leading number among the arguments, else 1) and DATASETS (the other
# arguments, else every dataset of DATA_ROOT).
gpus_and_datasets() {
    GPUS=1
    if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
        GPUS=$1
        shift
    fi
    [[ -d "$DATA_ROOT" ]] || die "$DATA_ROOT: data root does not exist (set DATA_ROOT)"
    DATASETS=("$@")
    [[ ${#DATASETS[@]} -gt 0 ]] || mapfile -t DATASETS < <(datasets_of "$DATA_ROOT")
    [[ ${#DATASETS[@]} -gt 0 ]] || die "no dataset with a train split under $DATA_ROOT"
}

# The datasets under a data root: folders with a train split, sorted by name.
datasets_of() {
    local ann
    for ann in "$1"/*/train/_annotations.coco.json; do
        [[ -f "$ann" ]] && basename "$(dirname "$(dirname "$ann")")"
    done
    return 0
}
