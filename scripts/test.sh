#!/usr/bin/env bash
# Installs what the project and its tests need, then runs the whole test suite (CPU only).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements.txt -r requirements-dev.txt
# the optional packages (onnxsim, OpenVINO), so that their tests run rather than skip
python -m pip install -q -r requirements-optional.txt
# The official LVIS API is only the reference of an evaluator test; its own dependencies pull a second
# OpenCV build, and those it really needs (pycocotools, matplotlib) are installed above.
python -m pip install -q --no-deps lvis==0.5.3
python -m pip install -q --no-deps -e .
python -m pytest tests -q -p no:cacheprovider "$@"
