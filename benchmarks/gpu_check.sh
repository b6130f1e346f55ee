#!/usr/bin/env bash
# The GPU check in one command; see benchmarks/gpu_check.py and docs/benchmarks.md (section 8).
#
#   bash benchmarks/gpu_check.sh                 # on a machine with a CUDA GPU (under 8 minutes: --budget-s 420, limit 470 s)
#   bash benchmarks/gpu_check.sh --cpu-dry-run   # anywhere: tiny sizes on the CPU, checks the script
#
# Runs the project from the working tree (PYTHONPATH=., nothing pip-installed). Python packages the machine
# lacks (e.g. loguru, pycocotools, faster-coco-eval, thop) can be placed as wheels in .whl/ (git-ignored;
# download command in docs/benchmarks.md); they are installed into /tmp/site here. Results go to $OUT when
# set, else /tmp/gpu_check_out. Extra arguments go to gpu_check.py.
set -eo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
export PYTHONPATH="$PWD"
if compgen -G ".whl/*.whl" >/dev/null; then
    # Wheels are built for one Python version (3.12 in the docs' command); on another the installed packages serve.
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl; then
        export PYTHONPATH="$PWD:/tmp/site"
    else
        echo "the wheels in .whl/ do not install for this Python; using its own packages"
    fi
fi
export PYTHONUNBUFFERED=1
# The outer time limit (seconds): 470 on the GPU, one call under 8 minutes; an hour for the CPU dry run,
# which a slow or busy CPU may need.
LIMIT=470
for arg in "$@"; do
    if [ "$arg" = "--cpu-dry-run" ]; then LIMIT=3600; fi
done
OUT_DIR=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT_DIR"

"$PY" - <<'PY'
import importlib, torch
missing = [m for m in ("loguru", "tabulate", "pycocotools", "faster_coco_eval", "thop", "cv2", "psutil")
           if importlib.util.find_spec(m) is None]
print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}, missing packages: {missing or 'none'}")
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true

timeout "${GPU_CHECK_TIMEOUT:-$LIMIT}" "$PY" benchmarks/gpu_check.py --out "$OUT_DIR" "$@" 2>&1 | tee "$OUT_DIR/gpu_check.log"
