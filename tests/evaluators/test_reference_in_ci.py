"""The comparisons with the official lvis-api skip where the package is missing, but fail under continuous
integration (``CI`` set), so that a CI run cannot pass without them."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_TEST = "tests/evaluators/test_lvis_bbox_eval.py::test_matches_official_lvis_api_when_images_exceed_max_dets"


@pytest.mark.parametrize("ci", [False, True])
def test_reference_tests_fail_instead_of_skipping_under_ci(tmp_path, ci):
    shadow = tmp_path / "lvis"  # a package named lvis that cannot be imported: the reference is "missing"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('lvis hidden by the test')\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    if ci:
        env["CI"] = "true"
    proc = subprocess.run([sys.executable, "-m", "pytest", REFERENCE_TEST, "-q", "-p", "no:cacheprovider", "-rs"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if ci:
        assert proc.returncode == 1, proc.stdout[-3000:]
        assert "1 error" in proc.stdout and "CI is set: the reference tests must run" in proc.stdout
    else:
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert "1 skipped" in proc.stdout and "lvis hidden by the test" in proc.stdout
