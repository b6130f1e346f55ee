#!/usr/bin/env bash
# The user's commands on a GPU, end to end: train with --fp16 through torchrun
# (NCCL process group, EFL statistics and EMA under AMP), resume it, evaluate with --fp16, demo on the GPU.
#
#   bash benchmarks/gpu_cli_check.sh            # on a machine with a CUDA GPU, after gpu_check.sh (~1-2 minutes)
#   bash benchmarks/gpu_cli_check.sh cpu        # anywhere: the same steps on the CPU (gloo), to check the script
#
# Data: the 'quick' long-tailed dataset (tools/make_lt_dataset.py), trained for EPOCHS epochs (default 20, the
# quickstart's schedule, so the AP compares with its CPU range in docs/quickstart.md).
set -eo pipefail
cd "$(dirname "$0")/.."

DEVICE=${1:-cuda}
EPOCHS=${EPOCHS:-20}
PY=${PYTHON:-python3}
WORK=${WORK:-/tmp/gpu_cli_check}
EXP=exps/example/lt_proxy/yolox_nano_efl_quick.py
export PYTHONUNBUFFERED=1
rm -rf "$WORK"
mkdir -p "$WORK"

if [ "$DEVICE" = cuda ]; then
    FP16=(--fp16)
    DEMO_DEVICE=gpu
else
    FP16=()
    DEMO_DEVICE=cpu
fi
OPTS=(data_dir "$WORK/data" output_dir "$WORK/out" max_epoch "$EPOCHS" eval_interval "$EPOCHS" data_num_workers "${WORKERS:-8}")

step() { echo; echo "## $1"; }
step "dataset"
"$PY" tools/make_lt_dataset.py --preset quick --out "$WORK/data" --quiet

step "train: torchrun, 1 process, --device $DEVICE ${FP16[*]}"
start=$(date +%s)
"$PY" -m torch.distributed.run --standalone --nproc_per_node 1 tools/train.py -f "$EXP" -d 1 -b 16 \
    --device "$DEVICE" "${FP16[@]}" "${OPTS[@]}" 2>&1 | grep -v -E "^\s*$" | tail -n 25
echo "train wall time: $(( $(date +%s) - start )) s"

step "resume: --resume for one more epoch (model, optimizer, EMA, GradScaler and random states restored)"
"$PY" tools/train.py -f "$EXP" -d 1 -b 16 --device "$DEVICE" "${FP16[@]}" --resume "${OPTS[@]}" \
    max_epoch $((EPOCHS + 1)) eval_interval $((EPOCHS + 1)) 2>&1 | grep -v -E "^\s*$|│|├|╒|╘|╞" | tail -n 15

ckpt=$(ls "$WORK"/out/*/latest_ckpt.pth)
step "eval: $ckpt"
"$PY" tools/eval.py -f "$EXP" -c "$ckpt" -b 16 -d 1 --device "$DEVICE" "${FP16[@]}" "${OPTS[@]}" 2>&1 | tail -n 30

step "demo"
image=$(ls "$WORK"/data/val*/*.jpg | head -n 1)
"$PY" tools/demo.py image -f "$EXP" -c "$ckpt" --path "$image" --save_result --device "$DEMO_DEVICE" \
    "${FP16[@]}" --opts "${OPTS[@]}" 2>&1 | tail -n 5
ls "$WORK"/out/*/vis_res/*/*.jpg
echo "gpu_cli_check done"
