"""tools/make_lt_dataset.py: a preset written to a folder, its frequency-group table, one-line errors."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_cli_tiny_preset(tmp_path):
    out = tmp_path / "lt"
    result = subprocess.run([sys.executable, str(REPO / "tools" / "make_lt_dataset.py"), "--preset", "tiny",
                             "--out", str(out), "--quiet", "--seed", "4"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()
            if line.split() and line.split()[0] in ("rare", "common", "frequent", "all")}
    assert {g: int(rows[g][1]) for g in ("rare", "common", "frequent", "all")} == \
        {"rare": 2, "common": 2, "frequent": 2, "all": 6}
    assert int(rows["all"][3]) == 8  # training images
    train = json.loads((out / "annotations" / "lvis_v1_train.json").read_text())
    assert len(train["images"]) == 8 and train["info"]["spec"]["seed"] == 4

    bad = subprocess.run([sys.executable, str(REPO / "tools" / "make_lt_dataset.py"), "--preset", "tiny",
                          "--out", str(tmp_path / "bad"), "--num-classes", "0", "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "num_classes" in bad.stderr
