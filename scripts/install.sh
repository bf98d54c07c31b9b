#!/usr/bin/env bash
# Create .venv and install the pinned OpenMMLab stack plus this project (editable).
#
# mmcv 2.1.0 ships only as a source distribution. torch 2.14 headers need C++20 while
# mmcv's setup.py hard-codes -std=c++17, so the sdist is patched and built here once;
# the resulting wheel is kept in $WHEEL_CACHE so later installs take seconds.
# Idempotent: a stamp records the hash of the requirement files it installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
MMCV_VERSION="2.1.0"
WHEEL_CACHE="${WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vision-defect/wheels}"
STAMP="$VENV/.install-stamp"

stamp_value() {
    cat "$ROOT"/requirements/*.txt "$ROOT/setup.py" "$0" | sha256sum | cut -d' ' -f1
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_value)" ]]; then
    echo "[install] $VENV is up to date"
    exit 0
fi

[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip
"${PIP[@]}" install -q torch==2.14.1 torchvision==0.29.1
# After torch: torch's metadata pulls a setuptools >= 77, which lacks pkg_resources.
"${PIP[@]}" install -q -r "$ROOT/requirements/build.txt"

if ! "$VENV/bin/python" -c "import mmcv, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null; then
    mkdir -p "$WHEEL_CACHE"
    TORCH_TAG="$("$VENV/bin/python" -c 'import torch; print(torch.__version__.replace("+", "_"))')"
    CUDA_TAG="cpu"
    if command -v nvcc >/dev/null 2>&1 && "$VENV/bin/python" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
        CUDA_TAG="cuda"
    fi
    CACHED_DIR="$WHEEL_CACHE/mmcv-$MMCV_VERSION-torch$TORCH_TAG-$CUDA_TAG"
    if ! ls "$CACHED_DIR"/mmcv-*.whl >/dev/null 2>&1; then
        echo "[install] building mmcv $MMCV_VERSION with ops ($CUDA_TAG); about 11 minutes on 2 cores"
        BUILD="$(mktemp -d)"
        trap 'rm -rf "$BUILD"' EXIT
        "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation \
            -d "$BUILD" "mmcv==$MMCV_VERSION"
        tar -xzf "$BUILD"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD"
        sed -i 's/-std=c++17/-std=c++20/g' "$BUILD/mmcv-$MMCV_VERSION/setup.py"
        export MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}"
        [[ "$CUDA_TAG" == "cuda" ]] && export FORCE_CUDA=1
        "${PIP[@]}" wheel -q --no-deps --no-build-isolation -w "$BUILD/dist" "$BUILD/mmcv-$MMCV_VERSION"
        mkdir -p "$CACHED_DIR"
        mv "$BUILD"/dist/mmcv-*.whl "$CACHED_DIR/"
    fi
    "${PIP[@]}" install -q --no-deps "$CACHED_DIR"/mmcv-*.whl
    "${PIP[@]}" install -q "mmcv==$MMCV_VERSION" --no-build-isolation  # pulls mmcv's own deps
fi

"${PIP[@]}" install -q -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"
"$VENV/bin/python" -c "import mmcv.ops, mmdet, mmseg, timm; print('[install] mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'mmseg', mmseg.__version__, 'timm', timm.__version__)"
stamp_value > "$STAMP"
