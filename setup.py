"""pip install .  /  pip install -e .  (the package is ``yolox``; its dataset generator is ``synthetic_lt``).

The wheel also ships the command-line tools as ``yolox.tools`` (from ``tools/``) and the default experiments
as ``yolox.exp.default`` (from ``exps/default/``), so that an install runs them as upstream YOLOX does:

    python -m yolox.tools.train -n yolox-s -d 1 -b 8
    python -m yolox.tools.eval -n yolox-s -c yolox_s.pth
    python -m yolox.tools.quickstart        # the quick long-tail job, data and outputs in the current folder

It ships the synthetic long-tailed dataset generator of tools/make_lt_dataset.py, quickstart.py and
lt_benchmark.py as the top-level package ``synthetic_lt``.

Optional extra ``export``: onnxsim (simplifies tools/export_onnx.py's graph) and OpenVINO (runs the export
in tools/onnx_inference.py --runtime openvino): ``pip install '.[export]'`` or
``pip install -r requirements-optional.txt``.
"""
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent


def read_requirements(name):
    return [
        line.split("#")[0].strip()
        for line in (here / name).read_text().splitlines()
        if line.split("#")[0].strip()
    ]


# Packages whose files come from outside yolox/: a wheel installs tools/*.py as yolox/tools/*.py,
# exps/default/*.py as yolox/exp/default/*.py and the long-tail stand-in's exps (exps/example/lt_proxy/, the
# quickstart's among them) as yolox/exp/lt_standin/*.py. (In a checkout yolox/tools/__init__.py points the package at
# tools/ instead; that file is not shipped.)
PACKAGE_DIRS = {
    "yolox.tools": "tools",
    "yolox.exp.default": "exps/default",
    "yolox.exp.lt_standin": "exps/example/lt_proxy",
}
# The detector, and the dataset generator the tools use (a top-level package of its own).
PACKAGES = ["yolox", "yolox.*", "synthetic_lt", "synthetic_lt.*"]

setup(
    name="yolox-lt",
    version="0.1.0",
    description="YOLOX with Equalized Focal Loss for long-tailed detection (LVIS v1)",
    long_description=(here / "README.md").read_text() if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=sorted(set(find_packages(include=PACKAGES)) | set(PACKAGE_DIRS)),
    package_dir=PACKAGE_DIRS,
    package_data={"yolox.data": ["*.json"]},
    install_requires=read_requirements("requirements.txt"),
    extras_require={
        "export": [r for r in read_requirements("requirements-optional.txt") if not r.startswith(("wandb", "mlflow"))],
        "loggers": [r for r in read_requirements("requirements-optional.txt") if r.startswith(("wandb", "mlflow"))],
    },
)
