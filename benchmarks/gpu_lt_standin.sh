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

DEVICE_PACKAGES="loguru tabulate pycocotools faster_coco_eval cv2 tqdm"
source benchmarks/device_env.sh "$@"
OUT_DIR=${OUT:-/tmp/gpu_lt_standin_out}
mkdir -p "$OUT_DIR"

# The script's own budget (--budget-s, default 420 s) stops launching and stops a running variant; this
# outer limit only catches a hang of the script itself.
timeout "${GPU_LT_STANDIN_TIMEOUT:-$LIMIT}" "$PY" benchmarks/gpu_lt_standin.py --out "$OUT_DIR" "$@" 2>&1 \
    | tee "$OUT_DIR/gpu_lt_standin.log"
