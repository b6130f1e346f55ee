"""pip install -e .  (the package is ``yolox``; tools/ and exps/ are used from the checkout)."""
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
requirements = [
    line.split("#")[0].strip()
    for line in (here / "requirements.txt").read_text().splitlines()
    if line.split("#")[0].strip()
]

setup(
    name="yolox-lt",
    version="0.1.0",
    description="YOLOX with Equalized Focal Loss for long-tailed detection (LVIS v1)",
    long_description=(here / "README.md").read_text() if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["yolox", "yolox.*"]),
    package_data={"yolox.data": ["*.json"]},
    install_requires=requirements,
)
