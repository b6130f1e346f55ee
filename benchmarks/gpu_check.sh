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

DEVICE_PACKAGES="loguru tabulate pycocotools faster_coco_eval thop cv2 psutil"
source benchmarks/device_env.sh "$@"
OUT_DIR=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT_DIR"

timeout "${GPU_CHECK_TIMEOUT:-$LIMIT}" "$PY" benchmarks/gpu_check.py --out "$OUT_DIR" "$@" 2>&1 | tee "$OUT_DIR/gpu_check.log"
