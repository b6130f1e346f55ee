#!/usr/bin/env bash
# The GPU stand-in for Table 1 in one command; see benchmarks/gpu_lt_standin.py and docs/lt_benchmark.md.
#
#   bash benchmarks/gpu_lt_standin.sh                 # on a machine with a CUDA GPU (one H200: about 7 minutes)
#   bash benchmarks/gpu_lt_standin.sh --cpu-dry-run   # anywhere: a small scale on the CPU, checks the script
#
# Runs the project from the working tree (PYTHONPATH=., nothing pip-installed). Python packages the machine
# lacks can be placed as wheels in .whl/ (git-ignored; download command in docs/benchmarks.md, section 8); they
# are installed into /tmp/site here. Results go to $OUT when set, else /tmp/gpu_lt_standin_out; the dataset and
# the checkpoints to /tmp/gpu_lt_standin_work. Extra arguments go to gpu_lt_standin.py.
set -eo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
export PYTHONPATH="$PWD"
if compgen -G ".whl/*.whl" >/dev/null; then
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
OUT_DIR=${OUT:-/tmp/gpu_lt_standin_out}
mkdir -p "$OUT_DIR"

"$PY" - <<'PY'
import importlib, torch
missing = [m for m in ("loguru", "tabulate", "pycocotools", "faster_coco_eval", "cv2", "tqdm")
           if importlib.util.find_spec(m) is None]
print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}, missing packages: {missing or 'none'}")
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true

# The script's own budget (--budget-s, default 420 s) stops launching and stops a running variant; this
# outer limit only catches a hang of the script itself.
timeout "${GPU_LT_STANDIN_TIMEOUT:-$LIMIT}" "$PY" benchmarks/gpu_lt_standin.py --out "$OUT_DIR" "$@" 2>&1 \
    | tee "$OUT_DIR/gpu_lt_standin.log"
