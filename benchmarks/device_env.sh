# Sourced by the GPU scripts (gpu_check.sh, gpu_lt_standin.sh) from the repository root: the project from the
# working tree (PYTHONPATH=., nothing pip-installed), with the wheels in .whl/ (git-ignored; download command
# in docs/benchmarks.md, section 8) installed into /tmp/site for a machine that lacks them; LIMIT, the outer
# time limit in seconds (470 on the GPU, one call under 8 minutes; an hour for a CPU dry run, which a slow or
# busy CPU may need); and a line on torch, CUDA and the packages in $DEVICE_PACKAGES that are missing.
# Arguments: the calling script's own.
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
LIMIT=470
for arg in "$@"; do
    if [ "$arg" = "--cpu-dry-run" ]; then LIMIT=3600; fi
done
DEVICE_PACKAGES="$DEVICE_PACKAGES" "$PY" - <<'PY'
import importlib, os, torch
missing = [m for m in os.environ["DEVICE_PACKAGES"].split() if importlib.util.find_spec(m) is None]
print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}, missing packages: {missing or 'none'}")
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
