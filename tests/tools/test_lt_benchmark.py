"""tools/lt_benchmark.py: the one-epoch smoke run on the tiny preset writes the table, the JSON and the
PNGs; the aggregation helpers compute what they claim."""
import csv
import json
import math

import pytest

from cli_helpers import load_tool


def test_mean_std_is_the_sample_std_and_ignores_nan():
    tool = load_tool("lt_benchmark")
    mean, std = tool.mean_std([1.0, 2.0, float("nan"), 6.0])
    assert mean == pytest.approx(3.0)
    assert std == pytest.approx(math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 2))
    assert tool.mean_std([4.0]) == (4.0, 0.0)
    assert all(math.isnan(v) for v in tool.mean_std([float("nan")]))


def test_group_means_average_classes_per_frequency_group():
    tool = load_tool("lt_benchmark")
    rows = [{"frequency": "r", "AP": 0.1}, {"frequency": "r", "AP": 0.3}, {"frequency": "c", "AP": 0.5},
            {"frequency": "f", "AP": float("nan")}, {"frequency": "f", "AP": 0.9}]
    metrics = tool.group_means(rows)
    assert metrics["APr"] == pytest.approx(0.2)
    assert metrics["APc"] == pytest.approx(0.5)
    assert metrics["APf"] == pytest.approx(0.9)
    assert metrics["AP"] == pytest.approx((0.1 + 0.3 + 0.5 + 0.9) / 4)


def test_summary_and_markdown_table_report_mean_and_std_in_percent():
    tool = load_tool("lt_benchmark")
    runs = [{"variant": v, "seed": s, "AP": ap, "APr": ap / 2, "APc": ap, "APf": 2 * ap}
            for v, s, ap in [("fl", 0, 0.10), ("fl", 1, 0.20), ("efl", 0, 0.30)]]
    summary = tool.summarize(runs, ["efl", "fl", "qfl"])
    assert list(summary) == ["efl", "fl"]  # variant order kept, variants without runs left out
    assert summary["fl"]["AP"]["mean"] == pytest.approx(15.0)
    assert summary["fl"]["AP"]["std"] == pytest.approx(math.sqrt(50.0))
    assert summary["fl"]["APf"]["values"] == pytest.approx([20.0, 40.0])
    lines = tool.markdown_table(summary).splitlines()
    assert lines[0] == "| loss | seeds | AP | APr | APc | APf |"
    assert lines[2] == "| efl | 1 | 30.0 ± 0.0 | 15.0 ± 0.0 | 30.0 ± 0.0 | 60.0 ± 0.0 |"
    assert lines[3] == "| fl | 2 | 15.0 ± 7.1 | 7.5 ± 3.5 | 15.0 ± 7.1 | 30.0 ± 14.1 |"
    # a frequency group without classes in the validation set is shown as n/a, not nan
    no_rare = tool.summarize([{"variant": "fl", "seed": 0, "AP": 0.1, "APr": float("nan"), "APc": 0.1, "APf": 0.1}],
                             ["fl"])
    assert tool.markdown_table(no_rare).splitlines()[2] == "| fl | 1 | 10.0 ± 0.0 | n/a | 10.0 ± 0.0 | 10.0 ± 0.0 |"


def test_smoke_run_on_the_tiny_preset_writes_table_json_and_charts(tmp_path, capsys, monkeypatch):
    import matplotlib.image

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the training subprocesses: one thread each on a shared CPU
    tool = load_tool("lt_benchmark")
    out, data = tmp_path / "bench", tmp_path / "data"
    argv = ["--preset", "tiny", "--data-dir", str(data), "--variants", "sigmoid", "efl", "--seeds", "0",
            "--epochs", "1", "-b", "4", "--output", str(out), "--quiet",
            "input_size", "(64,64)", "test_size", "(64,64)", "multiscale_range", "0", "warmup_epochs", "1",
            "no_aug_epochs", "0", "data_num_workers", "0"]
    assert tool.main(argv) == 0
    printed = capsys.readouterr().out
    assert "| loss | seeds | AP | APr | APc | APf |" in printed

    # the dataset was generated (tiny preset: 6 classes, 8 + 4 images)
    train = json.loads((data / "annotations" / "lvis_v1_train.json").read_text())
    assert len(train["categories"]) == 6 and len(train["images"]) == 8

    report = json.loads((out / "results.json").read_text())
    assert [r["variant"] for r in report["runs"]] == ["sigmoid", "efl"]
    assert report["meta"]["num_classes"] == 6 and report["meta"]["seeds"] == [0]
    for run in report["runs"]:
        assert run["epochs"] == 1
        # the table's numbers are the per-category CSV's, averaged per group, independently recomputed here
        with open(out / "runs" / f"{run['variant']}_seed0" / "lvis_per_category_ap.csv") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 6
        for key, groups in (("AP", "rcf"), ("APr", "r"), ("APc", "c"), ("APf", "f")):
            values = [float(r["AP"]) for r in rows if r["frequency"] in groups and r["AP"] != "nan"]
            expected = 100 * sum(values) / len(values) if values else float("nan")
            got = report["summary"][run["variant"]][key]["mean"]
            assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)
    efl = report["runs"][1]["efl_stats"]
    assert report["runs"][0]["efl_stats"] is None  # sigmoid has no gradient statistics
    # gamma^j = gamma_b + s * (1 - g^j) with the EFL defaults gamma_b = 2, s = 4
    assert efl["gamma"] == pytest.approx([2.0 + 4.0 * (1.0 - g) for g in efl["pos_neg"]], abs=1e-5)
    assert sum(efl["neg_grad"]) > 0 and set(report["gamma_by_group"]) == {"efl"}
    for group in report["gamma_by_group"]["efl"].values():
        assert 0 <= group["g"] <= 1 and group["neg_over_pos_median"] > 0

    table = (out / "table.md").read_text().splitlines()
    assert table[0] == "| loss | seeds | AP | APr | APc | APf |"
    assert [line.split("|")[1].strip() for line in table[2:]] == ["sigmoid", "efl"]
    for name in ("ap_by_group.png", "gamma_vs_image_count.png"):
        image = matplotlib.image.imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert image[..., :3].std() > 0  # something was drawn

    # a second call reuses the finished runs instead of training again
    logs = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/stdout.txt")}
    assert tool.main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in logs} == logs


def test_lvis60_preset_spreads_class_shares_like_lvis():
    """The benchmark's proposed dataset: LVIS's r/c/f proportions, counts log-spaced in each group, every
    class in exactly its number of training images, the head in up to 30% of the images."""
    import numpy as np

    from synthetic_lt import group_sizes, log_spaced_image_counts, plan_lt_dataset, preset_spec
    from yolox.data.lvis_categories import frequency_group

    assert log_spaced_image_counts({"r": 3, "c": 0, "f": 2}, {"r": (1, 9), "c": (11, 80), "f": (100, 400)}) == (
        1, 3, 9, 100, 400)
    spec = preset_spec("lvis60")
    assert group_sizes(60) == {"r": 17, "c": 23, "f": 20}
    plan = plan_lt_dataset(spec)
    images_of = np.zeros(60, dtype=int)
    for labels in plan.train_objects:
        for k in set(labels):
            images_of[k] += 1
    assert images_of.tolist() == list(spec.train_image_counts)
    groups = [frequency_group(n, plan.rare_max, plan.common_max) for n in images_of]
    assert (plan.rare_max, plan.common_max) == (10, 80)
    assert [groups.count(g) for g in "rcf"] == [17, 23, 20]
    assert images_of.min() == 1 and images_of.max() == 240  # 0.125% .. 30% of the 800 training images
    assert max(len(labels) for labels in plan.train_objects) <= spec.max_objects_per_image
