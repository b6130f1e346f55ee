"""The GPU stand-in (benchmarks/gpu_lt_standin.py): the 'gpu' preset's design, the parallel generator's bytes,
the time budget of the runs, and its CPU dry run end to end (table, JSON, generated data)."""
import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_standin():
    spec = importlib.util.spec_from_file_location("gpu_lt_standin_under_test",
                                                  ROOT / "benchmarks" / "gpu_lt_standin.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the generation processes find its functions by module name
    spec.loader.exec_module(module)
    return module


def test_the_gpu_preset_is_the_scaled_design_and_plans_lvis_like_groups():
    from synthetic_lt import plan_lt_dataset, preset_spec

    standin = load_standin()
    spec = preset_spec("gpu")
    assert spec == standin.small_scale_spec(300, 6400, 400, 320, min_val_instances=4)
    plan = plan_lt_dataset(spec)
    assert (plan.rare_max, plan.common_max) == (10, 100)
    counts = [c["image_count"] for c in plan.categories]
    groups = ["r" if n <= 10 else "c" if n <= 100 else "f" for n in counts]
    assert len(counts) == 300 and {g: groups.count(g) for g in "rcf"} == {"r": 84, "c": 115, "f": 101}
    assert min(counts) == 1 and max(counts) == 300
    # every class in exactly its number of training images
    images_of = [sum(k in set(objects) for objects in plan.train_objects) for k in range(300)]
    assert images_of == counts
    # rare classes in few images, most images without one: 84 classes in 1-10 images, 327 of the 6400 images
    rare = {k for k, g in enumerate(groups) if g == "r"}
    with_rare = sum(bool(rare & set(objects)) for objects in plan.train_objects)
    assert with_rare == sum(counts[k] for k in rare) == 327
    assert len(plan.train_objects) == 6400 and all(1 <= len(o) <= 6 for o in plan.train_objects)


def test_the_small_scale_keeps_lvis_group_shares_and_the_frequency_rule():
    from synthetic_lt import frequency_thresholds, group_sizes

    standin = load_standin()
    spec = standin.small_scale_spec()  # the dry run's: 30 classes, 120 images of 64 px
    rare_max, common_max = frequency_thresholds(120)
    assert (rare_max, common_max) == (2, 12)
    counts = spec.train_image_counts
    sizes = group_sizes(30)
    assert sizes == {"r": 8, "c": 12, "f": 10}
    assert all(1 <= n <= 2 for n in counts[:8]) and all(3 <= n <= 12 for n in counts[8:20])
    assert all(13 <= n <= 36 for n in counts[20:]) and (counts[20], counts[-1]) == (13, 36)
    assert (spec.num_classes, spec.image_size, spec.min_object_size, spec.max_object_size) == (30, (64, 64), 8, 19)


def test_parallel_generation_writes_the_bytes_of_generate_lt_dataset(tmp_path):
    from synthetic_lt import generate_lt_dataset

    standin = load_standin()
    spec = standin.small_scale_spec(num_classes=12, train_images=40, val_images=8, image_size=64)
    generate_lt_dataset(tmp_path / "serial", spec, progress=False)
    standin.generate_parallel(tmp_path / "parallel", spec, processes=2)
    files = sorted(p.relative_to(tmp_path / "serial") for p in (tmp_path / "serial").rglob("*") if p.is_file())
    assert len(files) == 2 + 40 + 8
    assert files == sorted(p.relative_to(tmp_path / "parallel") for p in (tmp_path / "parallel").rglob("*")
                           if p.is_file())
    for rel in files:
        assert (tmp_path / "serial" / rel).read_bytes() == (tmp_path / "parallel" / rel).read_bytes(), rel
    # the same spec is reused, another one regenerated
    seconds, reused = standin.prepare_dataset(tmp_path / "parallel", spec, processes=1)
    assert reused
    other = standin.small_scale_spec(num_classes=12, train_images=40, val_images=8, image_size=64, seed=1)
    assert standin.prepare_dataset(tmp_path / "parallel", other, processes=1)[1] is False
    assert standin.spec_of_dataset(tmp_path / "parallel")["seed"] == 1


def test_the_schedule_is_shared_by_every_variant_and_only_the_loss_differs():
    from yolox.exp import get_exp

    standin = load_standin()
    overrides = standin.override_list(standin.GPU_SCHEDULE) + ["num_classes", "300"]
    exps = {}
    for variant in standin.VARIANTS:
        exp = get_exp(str(ROOT / standin.EXP_PATTERN.format(variant)))
        exp.merge(overrides)
        exps[variant] = exp
        assert (exp.depth, exp.width, exp.depthwise) == (0.33, 0.50, False)  # YOLOX-S / YOLOX*-S
        assert (exp.input_size, exp.test_size, exp.max_epoch, exp.warmup_epochs, exp.no_aug_epochs) == (
            (320, 320), (320, 320), 5, 1, 1)
        assert exp.repeat_thresh == 0.001 and exp.basic_lr_per_img * standin.GPU_BATCH == pytest.approx(0.02)
    keys = set(vars(exps["fl"])) | set(vars(exps["efl"])) | set(vars(exps["efl_released"]))
    differing = {k for k in keys if len({repr(getattr(exps[v], k, None)) for v in ("fl", "efl", "efl_released")}) > 1}
    assert differing == {"cls_loss", "efl_stats_layout", "exp_name"}
    shared = ("basic_lr_per_img", "ema_decay", "max_epoch", "warmup_epochs", "no_aug_epochs", "input_size",
              "repeat_thresh", "mosaic_scale", "enable_mixup", "hsv_gains", "depth", "width")
    assert all(getattr(exps["sigmoid"], k) == getattr(exps["fl"], k) for k in shared)
    assert exps["sigmoid"].assigner == "simota" and exps["fl"].assigner == "atss"


def test_run_jobs_stops_a_run_at_the_budget_with_its_children_and_skips_the_rest(tmp_path):
    standin = load_standin()
    pid_file = tmp_path / "grandchild.pid"
    jobs = [
        {"name": "quick", "cmd": [sys.executable, "-c", "print('ok')"], "log": str(tmp_path / "quick.txt")},
        {"name": "fails", "cmd": [sys.executable, "-c", "raise SystemExit(3)"], "log": str(tmp_path / "fails.txt")},
        # a run with a child of its own (as the trainer's loader workers): both are stopped
        {"name": "long", "cmd": ["bash", "-c", f"sleep 120 & echo $! > {pid_file}; wait"],
         "log": str(tmp_path / "long.txt")},
        {"name": "after", "cmd": [sys.executable, "-c", "print('never')"], "log": str(tmp_path / "after.txt")},
    ]
    seen = []
    start = time.monotonic()
    records = standin.run_jobs(jobs, start + 4.0, on_done=seen.append)
    assert time.monotonic() - start < 40
    assert [r["status"] for r in records] == ["done", "failed (exit 3)", "stopped at the budget",
                                              "skipped: budget spent"]
    assert seen == records and (tmp_path / "quick.txt").read_text() == "ok\n"
    assert records[2]["returncode"] < 0 and not (tmp_path / "after.txt").exists()
    grandchild = Path(f"/proc/{pid_file.read_text().strip()}/stat")
    for _ in range(50):  # the group's SIGTERM: gone, or a zombie waiting for its reaper
        if not grandchild.exists() or grandchild.read_text().split(")")[-1].split()[0] == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail("the run's child survived the budget")


def test_run_jobs_does_not_start_a_run_that_the_time_left_cannot_hold(tmp_path):
    standin = load_standin()
    jobs = [{"name": n, "cmd": [sys.executable, "-c", "import time; time.sleep(2)"], "log": str(tmp_path / n)}
            for n in ("first", "second")]
    start = time.monotonic()
    records = standin.run_jobs(jobs, start + 3.6)  # the first takes > 2 s and leaves < 1.6 s
    assert records[0]["status"] == "done" and records[0]["seconds"] >= 2.0
    assert records[1]["status"].startswith("skipped: ") and "left, a variant took 2 s" in records[1]["status"]


def test_training_rate_is_the_batch_over_the_logged_iteration_time(tmp_path):
    standin = load_standin()
    log = tmp_path / "train_log.txt"
    log.write_text("epoch: 1/5, iter: 20/100, total_loss: 9.0, iter_time: 0.500s, data_time: 0.010s, lr: 1e-3\n"
                   "epoch: 1/5, iter: 40/100, total_loss: 8.0, iter_time: 0.100s, data_time: 0.010s, lr: 2e-3\n"
                   "epoch: 1/5, iter: 60/100, total_loss: 7.0, iter_time: 0.060s, data_time: 0.010s, lr: 3e-3\n")
    assert standin.training_rate(log, 64) == pytest.approx(64 / 0.08)  # the first line (warm-up) left out
    assert standin.training_rate(tmp_path / "missing.txt", 64) is None


def run_dry(tmp_path, *extra, timeout=900):
    env = dict(os.environ, OUT=str(tmp_path / "out"), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", "benchmarks/gpu_lt_standin.sh", "--cpu-dry-run", "--work-dir",
                           str(tmp_path / "work"), *extra], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads((tmp_path / "out" / "gpu_lt_standin.json").read_text())


def test_dry_run_trains_the_variants_and_writes_the_table_and_json(tmp_path):
    proc, report = run_dry(tmp_path)
    standin = load_standin()
    # the generated data: the small scale's 30 classes in LVIS's group shares, each in its planned images
    train = json.loads((tmp_path / "work" / "data_dry_run" / "annotations" / "lvis_v1_train.json").read_text())
    spec = standin.small_scale_spec()
    assert len(train["categories"]) == 30 and len(train["images"]) == 120
    assert [c["image_count"] for c in train["categories"]] == list(spec.train_image_counts)
    frequency = [c["frequency"] for c in train["categories"]]
    assert {g: frequency.count(g) for g in "rcf"} == {"r": 8, "c": 12, "f": 10}
    groups = {r["group"]: r for r in report["dataset"]["groups"]}
    assert {g: groups[g]["classes"] for g in ("r", "c", "f", "all")} == {"r": 8, "c": 12, "f": 10, "all": 30}
    assert report["spec"]["num_classes"] == 30 and report["dry_run"] is True

    # the runs: both variants trained, evaluated, and their numbers are their per-category CSV's group means
    assert report["variants"] == ["efl", "sigmoid"] and report["skipped"] == []  # YOLOX* first, as on the GPU
    assert [r["variant"] for r in report["runs"]] == ["efl", "sigmoid"]
    for run in report["runs"]:
        assert run["status"] == "done" and run["seconds"] > 0 and run["classes"] == 30
        with open(tmp_path / "out" / "runs" / run["variant"] / "lvis_per_category_ap.csv") as f:
            rows = list(csv.DictReader(f))
        for key, members in (("AP", "rcf"), ("APr", "r"), ("APc", "c"), ("APf", "f")):
            values = [float(r["AP"]) for r in rows if r["frequency"] in members and r["AP"] != "nan"]
            expected = sum(values) / len(values) if values else float("nan")
            assert run[key] == pytest.approx(expected, nan_ok=True) and 0 <= run[key] <= 1
        assert (tmp_path / "out" / "runs" / run["variant"] / "train_log.txt").is_file()
        assert run["train_images_per_s"] > 0
        assert "--device cpu" in run["command"] and "depth 0.33" in run["command"]
    efl = report["runs"][0]
    assert set(efl["efl_by_group"]) == {"r", "c", "f"} and "efl_by_group" not in report["runs"][1]
    assert all(2.0 - 1e-6 <= g["gamma"] <= 6.0 + 1e-6 for g in efl["efl_by_group"].values())
    assert [r["group"] for r in report["imbalance"]] == ["rare", "common", "frequent"]
    assert report["schedule"]["max_epoch"] == 1 and report["batch"] == 8

    table = (tmp_path / "out" / "table.md").read_text().splitlines()
    assert table[0] == "| variant | AP | APr | APc | APf | seconds | training images/s | status |"
    assert [line.split("|")[1].strip() for line in table[2:]] == ["sigmoid", "efl"]  # Table 1's order
    assert all(line.rstrip().endswith("| done |") for line in table[2:])
    log = (tmp_path / "out" / "gpu_lt_standin.log").read_text()
    assert "# GPU stand-in for Table 1 (dry run" in log and "| sigmoid |" in log and "gpu_lt_standin done" in log


def test_dry_run_over_its_budget_skips_every_variant_and_still_reports(tmp_path):
    proc, report = run_dry(tmp_path, "--budget-s", "0", "--variants", "fl", "efl_released", timeout=300)
    assert [(r["variant"], r["status"]) for r in report["runs"]] == [("fl", "skipped: budget spent"),
                                                                     ("efl_released", "skipped: budget spent")]
    assert report["skipped"] == ["fl", "efl_released"]
    assert all(r.get("AP") is None for r in report["runs"])
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| fl | n/a | n/a | n/a | n/a | 0 | n/a | skipped: budget spent |" in table
    assert "skipped (budget): fl, efl_released" in proc.stdout
    assert not math.isnan(report["seconds"])
