"""tools/quickstart.py: it says what it does before the slow first import, and its picture names rare classes."""
import json
import subprocess
import sys

import cv2

from cli_helpers import ROOT, load_tool

# Stops the quickstart at its first import of torch, after printing a marker.
STOP_AT_TORCH = """
import runpy, sys


class StopAtTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            print("<importing torch>", flush=True)
            raise SystemExit(0)


sys.meta_path.insert(0, StopAtTorch())
sys.argv = ["quickstart.py"]
runpy.run_path(sys.argv_path, run_name="__main__")
"""


def test_first_lines_come_before_torch_is_imported(tmp_path):
    code = STOP_AT_TORCH.replace("sys.argv_path", repr(str(ROOT / "tools" / "quickstart.py")))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "YOLOX_DATADIR": str(tmp_path)})
    lines = proc.stdout.splitlines()
    assert "<importing torch>" in lines, proc.stderr[-2000:]
    before = lines[: lines.index("<importing torch>")]
    assert any(line.startswith("YOLOX-LT quickstart:") for line in before)
    assert any(line.startswith("[1/4] dataset") for line in before)


def _ground_truth_as_detections(gt, score=0.9):
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": score}
            for a in gt["annotations"]]


def test_demo_picture_is_enlarged_and_names_rare_classes(tiny_lvis, tmp_path, monkeypatch):
    import yolox.utils

    quickstart = load_tool("quickstart")
    drawn_names = []
    draw = yolox.utils.vis

    def recording_vis(img, boxes, scores, cls_ids, conf, class_names, **kwargs):
        drawn_names.extend(class_names[int(c)] for c in cls_ids)
        return draw(img, boxes, scores, cls_ids, conf, class_names, **kwargs)

    monkeypatch.setattr(yolox.utils, "vis", recording_vis)
    gt = json.loads(tiny_lvis["val_json"].read_text())
    rare_ids = {c["id"] for c in gt["categories"] if c["frequency"] == "r"}
    assert rare_ids & {a["category_id"] for a in gt["annotations"]}  # the validation set has rare objects
    detections = _ground_truth_as_detections(gt)
    # a weak duplicate of each detection: below the demo's score threshold, not drawn
    detections += _ground_truth_as_detections(gt, score=quickstart.DEMO_CONF / 2)
    image_id, summary = quickstart.choose_demo_image(detections, gt)
    rare_in_image = [a for a in gt["annotations"] if a["image_id"] == image_id and a["category_id"] in rare_ids]
    in_image = [a for a in gt["annotations"] if a["image_id"] == image_id]
    assert rare_in_image and f"{len(rare_in_image)} rare objects, {len(rare_in_image)} detected" in summary

    path = quickstart.image_path(gt, image_id, tiny_lvis["val_json"])
    out = tmp_path / "demo.png"
    drawn, rare = quickstart.draw_demo(detections, gt, image_id, path, out)
    assert (drawn, rare) == (len(in_image), len(rare_in_image))
    names = {c["id"]: c["name"] for c in gt["categories"]}
    assert sorted(drawn_names) == sorted(names[a["category_id"]] + (" (rare)" if a in rare_in_image else "")
                                         for a in in_image)
    picture = cv2.imread(str(out))
    original = cv2.imread(str(path))
    assert min(picture.shape[:2]) >= quickstart.DEMO_MIN_SIDE > min(original.shape[:2])


def test_result_is_printed_beside_the_measured_range():
    quickstart = load_tool("quickstart")
    inside = {key: mean / 100 for key, (mean, _, _) in quickstart.MEASURED.items()}
    table = quickstart.format_against_range(inside)
    assert "outside" not in table
    for key, (mean, low, high) in quickstart.MEASURED.items():
        assert low <= mean <= high
        assert f"{mean:.1f}, {low:.1f}-{high:.1f}" in table
    low_ap = dict(inside, AP=(quickstart.MEASURED["AP"][1] - 1.0) / 100)
    table = quickstart.format_against_range(low_ap)
    assert table.count("<- outside") == 1 and "outside the measured range" in table


def test_measured_range_is_that_of_the_committed_runs():
    """MEASURED is the mean and range of the runs whose results are committed under
    benchmarks/results/quickstart_range*/ (benchmarks/quickstart_range.py writes them), rounded to 0.1."""
    import statistics

    quickstart = load_tool("quickstart")
    files = sorted(ROOT.glob("benchmarks/results/quickstart_range*/*.json"))
    runs = [json.loads(p.read_text())["metrics"] for p in files]
    assert f"{len(runs)} runs" in quickstart.MEASURED_RUNS
    for key, (mean, low, high) in quickstart.MEASURED.items():
        values = [run[key] for run in runs]
        assert (mean, low, high) == (round(statistics.mean(values), 1), round(min(values), 1), round(max(values), 1)), key
