"""The GPU stand-in for Table 1: the long-tail benchmark's loss variants on the 'gpu' dataset preset, on one GPU.

Run through ``benchmarks/gpu_lt_standin.sh`` (which sets PYTHONPATH and installs any wheels in ``.whl/``).

The CPU stand-in (docs/lt_benchmark.md) cannot show Table 1's ordering: each of its classes is positive on
~150x more of all anchors than on LVIS, so EFL's statistic g^j saturates at 1 and EFL is FL. The 'gpu' preset
(``synthetic_lt.LT_PRESETS["gpu"]``: 300 classes in LVIS's r/c/f shares, 6400 training images of 320 px with
few objects each, rare classes in 1-10 images) lowers those shares towards LVIS's. This script

1. generates the dataset with one process per CPU (the bytes of ``synthetic_lt.generate_lt_dataset``), or
   reuses it when ``--work-dir`` already holds the same spec;
2. trains the variants (default, in this order: fl, efl with the paper's per-class statistic, efl_released
   with the released code's, sigmoid = YOLOX + RFS), one after another, each a ``tools/train.py`` subprocess
   of the stand-in's experiment file (``exps/example/lt_proxy/yolox_nano_<variant>.py``) with the schedule below as
   trailing overrides (so the variants differ only in supervisor and loss, as in the CPU stand-in);
3. evaluates each at the end of its training (LVIS protocol) and writes the AP / APr / APc / APf table.

Time budget: ``--budget-s`` seconds from the start (generation included). A variant is launched only while
the budget is not spent and the time left is at least the longest finished variant's; a variant still
training when the budget ends is stopped; both are reported (status "skipped: ..." / "stopped at the budget").

Outputs in ``--out`` ($OUT, else /tmp/gpu_lt_standin_out): ``gpu_lt_standin.json`` (rewritten after every
variant), ``table.md``, and per variant ``runs/<variant>/`` (train_log.txt, lvis_per_category_ap.csv, the end of
the subprocess's output). Datasets and checkpoints stay in ``--work-dir`` (default /tmp/gpu_lt_standin_work).

``--cpu-dry-run``: the same steps on the CPU at a small scale of the preset (30 classes, 120 images of 64 px,
YOLOX-nano, 1 epoch, batch 8, two variants: efl and sigmoid) to check the script.
"""
import argparse
import importlib.util
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "benchmarks"):  # the project, and the benchmarks' common.py
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

PRESET = "gpu"
# Run order: the YOLOX* losses first (FL against the two EFL statistics is the comparison the stand-in exists
# for), YOLOX last (SimOTA assigns image by image: the slowest step at batch 64), so that a budget too short for
# all four loses the baseline that the CPU stand-in already has. The table lists them in Table 1's order.
VARIANTS = ("fl", "efl", "efl_released", "sigmoid")
TABLE_ORDER = ("sigmoid", "fl", "efl", "efl_released")
DRY_RUN_VARIANTS = ("efl", "sigmoid")  # the GPU run's order: YOLOX* first
EXP_PATTERN = "exps/example/lt_proxy/yolox_nano_{}.py"
METRICS = ("AP", "APr", "APc", "APf")
# The schedule every variant shares on the GPU, as experiment overrides on top of the stand-in's exp files
# (LTProxyExp: SGD lr 0.02/64 per image, EMA, YOLOX colour jitter, no mixup). YOLOX-S / YOLOX*-S (the stand-in
# is nano) at 320 px, 5 epochs of the 6400 images (1 warm-up, the last without mosaic) at batch 64 = 500
# iterations, lr 0.02; RFS at LVIS's t = 0.001 (repeats the classes in fewer than 6.4 of the 6400 images).
# Sized, not measured: docs/benchmarks.md section 8 has YOLOX*-S EFL at 84 ms per step at 640 px, batch 16, on
# an H200 (the same pixels per step as 320 px, batch 64) and YOLOX-nano at 0.09-0.10 s per iteration in the
# trainer, so 500 iterations at about 0.1-0.12 s take 50-60 s, plus start-up and evaluation: about 1.5 minutes
# per YOLOX* variant, more for YOLOX (SimOTA's per-image loop over 64 images), about 6 minutes for the four.
GPU_SCHEDULE = {
    "depth": 0.33, "width": 0.50, "depthwise": False,
    "input_size": (320, 320), "test_size": (320, 320), "multiscale_range": 0,
    "max_epoch": 5, "warmup_epochs": 1, "no_aug_epochs": 1,
    "basic_lr_per_img": 0.02 / 64,
    "repeat_thresh": 0.001,
    "print_interval": 20,
}
GPU_BATCH = 64
# The dry run: the same overrides at CPU sizes, with the stand-in's own nano model (faster on a CPU).
DRY_RUN_SCHEDULE = {**GPU_SCHEDULE, "width": 0.25, "depthwise": True, "input_size": (64, 64), "test_size": (64, 64),
                    "max_epoch": 1, "warmup_epochs": 1, "no_aug_epochs": 0, "repeat_thresh": 0.01, "print_interval": 5}
DRY_RUN_BATCH = 8


def load_tool(name):
    """A module of ``tools/`` (e.g. lt_benchmark: its per-category CSV reader, group means, gamma statistics)."""
    spec = importlib.util.spec_from_file_location(f"tool_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- the dataset


def small_scale_spec(num_classes=30, train_images=120, val_images=30, image_size=64, frequent_max=None,
                     min_val_instances=2, seed=0):
    """The 'gpu' preset's design at another scale: LVIS's group shares of ``num_classes``
    (``synthetic_lt.group_sizes``), training image counts log-spaced over the frequency rule's ranges at
    ``train_images`` (``frequency_thresholds``: rare 1..rare_max, common ..common_max, frequent
    ..``frequent_max``, default 3 x common_max as the preset's 101-300), objects scaled with the image (16-96
    px at 320 px, at least 8-16 px). ``small_scale_spec(300, 6400, 400, 320, min_val_instances=4)`` is the
    preset itself. Returns an ``LTDatasetSpec``."""
    from synthetic_lt import LT_PRESETS, LTDatasetSpec, frequency_thresholds, group_sizes, log_spaced_image_counts

    preset = LT_PRESETS[PRESET]
    rare_max, common_max = frequency_thresholds(train_images)
    frequent_max = frequent_max or 3 * common_max
    counts = log_spaced_image_counts(group_sizes(num_classes), {"r": (1, rare_max), "c": (rare_max + 1, common_max),
                                                                "f": (common_max + 1, frequent_max)})
    scale = image_size / preset["image_size"]
    return LTDatasetSpec(num_classes=num_classes, num_train_images=train_images, num_val_images=val_images,
                         image_size=image_size, max_objects_per_image=preset["max_objects_per_image"],
                         min_object_size=max(8, round(preset["min_object_size"] * scale)),
                         max_object_size=max(16, round(preset["max_object_size"] * scale)),
                         min_val_instances_per_class=min_val_instances, train_image_counts=counts, seed=seed)


_PLAN = {}  # the plan and spec, inherited by the forked generation processes


def _one_thread():
    """Generation processes: one OpenCV thread each (one process per core already)."""
    import cv2

    cv2.setNumThreads(1)


def _render_one(task):
    """Draw, encode and write one image (as ``generate_lt_dataset`` does); returns its drawn objects."""
    import cv2
    import numpy as np

    from synthetic_lt.drawing import render_image
    from synthetic_lt.writing import SPLIT_CODES

    split, index, image_id, labels, path = task
    spec, plan = _PLAN["spec"], _PLAN["plan"]
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(SPLIT_CODES[split], index)))
    image, drawn = render_image(rng, labels, plan.categories, spec)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for image {image_id}")
    Path(path).write_bytes(encoded.tobytes())
    return drawn


def generate_parallel(root, spec, processes):
    """``synthetic_lt.generate_lt_dataset(root, spec)`` with the images drawn by ``processes`` forked processes:
    the same files, byte for byte (every image has its own seeded generator; the json files are assembled in
    image order). Returns the same paths dict."""
    from synthetic_lt.planning import plan_lt_dataset
    from synthetic_lt.writing import _category_records, _image_record, _write_json

    root = Path(root)
    if spec.format != "lvis":
        raise ValueError("the GPU stand-in writes LVIS-format datasets")
    plan = plan_lt_dataset(spec)
    paths = {"root": root, "train_json": root / "annotations" / "lvis_v1_train.json",
             "val_json": root / "annotations" / "lvis_v1_val.json", "train_dir": root / "train2017",
             "val_dir": root / "val2017", "num_classes": spec.num_classes}
    for key in ("train_dir", "val_dir"):
        paths[key].mkdir(parents=True, exist_ok=True)
    paths["train_json"].parent.mkdir(parents=True, exist_ok=True)
    splits = {"train": (plan.train_objects, plan.train_negatives, 1),
              "val": (plan.val_objects, plan.val_negatives, spec.num_train_images + 1)}
    tasks = [(split, index, first_id + index, labels, str(paths[f"{split}_dir"] / f"{first_id + index:012d}.jpg"))
             for split, (objects, _, first_id) in splits.items() for index, labels in enumerate(objects)]
    _PLAN.update(spec=spec, plan=plan)
    try:
        if processes > 1 and "fork" in multiprocessing.get_all_start_methods():
            with multiprocessing.get_context("fork").Pool(processes, initializer=_one_thread) as pool:
                drawn_all = pool.map(_render_one, tasks, chunksize=max(1, len(tasks) // (8 * processes)))
        else:
            drawn_all = [_render_one(task) for task in tasks]
    finally:
        _PLAN.clear()
    records, next_ann_id, k = {}, 1, 0
    for split, (objects, negatives, first_id) in splits.items():
        images, annotations = [], []
        for index, negs in enumerate(negatives):
            image_id = first_id + index
            images.append(_image_record(image_id, split, spec, negs))
            for label, bbox, area, polygons in drawn_all[k]:
                annotations.append({"id": next_ann_id, "image_id": image_id, "category_id": label + 1, "bbox": bbox,
                                    "area": area, "segmentation": polygons})
                next_ann_id += 1
            k += 1
        records[split] = (images, annotations)
    categories = _category_records(plan, records["train"][1], spec)
    for split, (images, annotations) in records.items():
        info = {"description": f"YOLOX-LT synthetic long-tailed detection dataset, {split} split",
                "generator": "synthetic_lt", "version": "1.0", "spec": asdict(spec),
                "frequency_rule": {"rare_max_images": plan.rare_max, "common_max_images": plan.common_max},
                "min_val_instances_per_class": plan.min_val_instances}
        _write_json(paths[f"{split}_json"], {"info": info, "licenses": [], "images": images,
                                             "annotations": annotations, "categories": categories})
    return paths


def spec_of_dataset(root):
    """The spec recorded in a generated dataset's training json (a dict), None when there is none."""
    train_json = Path(root) / "annotations" / "lvis_v1_train.json"
    if not (train_json.is_file() and (Path(root) / "annotations" / "lvis_v1_val.json").is_file()):
        return None
    return json.loads(train_json.read_text()).get("info", {}).get("spec")


def prepare_dataset(root, spec, processes):
    """Generate ``spec`` into ``root`` unless it already holds that spec's dataset. Returns (seconds, reused)."""
    start = time.perf_counter()
    recorded = spec_of_dataset(root)
    if recorded is not None and recorded == json.loads(json.dumps(asdict(spec))):
        return time.perf_counter() - start, True
    generate_parallel(root, spec, processes)
    return time.perf_counter() - start, False


def dataset_summary(root):
    """Per frequency group (r, c, f, all): classes, training images per class, images and instances."""
    from synthetic_lt import group_summary

    root = Path(root)
    return group_summary(root / "annotations" / "lvis_v1_train.json", root / "annotations" / "lvis_v1_val.json")


def dataset_imbalance(root, exp_file, overrides):
    """``tools/lt_analysis.py imbalance`` on the generated dataset: median over each group's classes of the
    positive anchors of an epoch / all anchors of an epoch, here and estimated for LVIS v1 (the tool's rows:
    [group, this dataset, LVIS v1 (estimate), ratio], as strings)."""
    from types import SimpleNamespace

    tool = load_tool("lt_analysis")
    args = SimpleNamespace(exp_file=str(exp_file), data_dir=str(root), opts=[str(v) for v in overrides])
    return tool.imbalance(args)


# ----------------------------------------------------------------------------- the runs


def override_list(schedule):
    """``{key: value}`` -> ``["key", "value", ...]`` as ``tools/train.py`` takes them (tuples without spaces)."""
    out = []
    for key, value in schedule.items():
        out += [key, repr(value).replace(" ", "")]
    return out


def stop_process_group(proc, grace_s=10.0):
    """Stop the process group this script started for ``proc`` (the trainer and its loader workers): SIGTERM,
    up to ``grace_s`` seconds for ``proc`` to exit, then SIGKILL to whatever of the group is left."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_jobs(jobs, deadline, on_done=lambda record: None, clock=time.monotonic):
    """Run ``jobs`` (dicts with ``name``, ``cmd``, ``log``; optional ``cwd``, ``env``) one after another, each in
    its own process group, within the ``deadline`` (a ``clock()`` value). A job starts only if the deadline has
    not passed and the time left is at least the longest finished job's duration; one still running at the
    deadline is stopped. Returns per job ``{"name", "status", "seconds", "returncode"}``; status is "done",
    "failed (exit N)", "stopped at the budget" or "skipped: ..."; ``on_done`` gets each record as it is made."""
    records, durations = [], []
    for job in jobs:
        left = deadline - clock()
        longest = max(durations, default=0.0)
        if left <= 0 or left < longest:
            record = {"name": job["name"], "returncode": None, "seconds": 0.0,
                      "status": ("skipped: budget spent" if left <= 0 else
                                 f"skipped: {left:.0f} s left, a variant took {longest:.0f} s")}
        else:
            Path(job["log"]).parent.mkdir(parents=True, exist_ok=True)
            start = clock()
            with open(job["log"], "w") as log:
                proc = subprocess.Popen(job["cmd"], cwd=job.get("cwd"), env=job.get("env"), stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
                try:
                    returncode = proc.wait(timeout=None if math.isinf(deadline) else max(0.0, deadline - clock()))
                    status = "done" if returncode == 0 else f"failed (exit {returncode})"
                except subprocess.TimeoutExpired:
                    stop_process_group(proc)
                    returncode, status = proc.returncode, "stopped at the budget"
                except BaseException:  # interrupted (Ctrl-C, SIGTERM of an outer timeout): no orphaned training
                    stop_process_group(proc, grace_s=3.0)
                    raise
            seconds = clock() - start
            if status == "done":
                durations.append(seconds)
            record = {"name": job["name"], "returncode": returncode, "seconds": seconds, "status": status}
        records.append(record)
        on_done(record)
    return records


def read_run(bench, run_dir, exp_file, overrides):
    """AP / APr / APc / APf (fractions) and EFL's per-group statistics of a finished run directory."""
    from yolox.exp import get_exp

    per_category = bench.read_per_category_csv(run_dir / "lvis_per_category_ap.csv")
    result = {**bench.group_means(per_category), "classes": len(per_category)}
    exp = get_exp(str(exp_file))
    exp.merge([str(v) for v in overrides])
    stats = bench.learned_gammas(exp, run_dir / "latest_ckpt.pth")
    if stats:
        groups = bench.gamma_by_group([{"variant": "run", "per_category": per_category, "efl_stats": stats}])
        result["efl_by_group"] = groups.get("run")
    return result


def training_rate(train_log, batch):
    """Images/s of the training iterations from the trainer's progress lines ('iter_time: X s' per line, the
    mean of the last interval), as the mean over the lines after the first (warm-up); None if not found."""
    import re

    if not Path(train_log).is_file():
        return None
    times = [float(m.group(1)) for m in re.finditer(r"iter_time: ([0-9.]+)s", Path(train_log).read_text())]
    times = times[1:] or times
    return batch / (sum(times) / len(times)) if times else None


def copy_run_files(run_dir, out_dir, stdout_log, tail_bytes=20000):
    """The small files of a run into ``out_dir``: train_log.txt, lvis_per_category_ap.csv, the end of its output."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("train_log.txt", "lvis_per_category_ap.csv"):
        if (run_dir / name).is_file():
            (out_dir / name).write_bytes((run_dir / name).read_bytes())
    if Path(stdout_log).is_file():
        data = Path(stdout_log).read_bytes()
        (out_dir / "output_tail.txt").write_bytes(data[-tail_bytes:])


def format_table(rows):
    """The result table as Markdown, in :data:`TABLE_ORDER` (others after it): variant, AP / APr / APc / APf in %,
    seconds, training images/s, status."""
    rows = sorted(rows, key=lambda row: (TABLE_ORDER.index(row["variant"]) if row["variant"] in TABLE_ORDER
                                         else len(TABLE_ORDER)))
    lines = ["| variant | AP | APr | APc | APf | seconds | training images/s | status |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        cells = ["n/a" if row.get(k) is None or math.isnan(row[k]) else f"{100 * row[k]:.1f}" for k in METRICS]
        rate = row.get("train_images_per_s")
        lines.append(f"| {row['variant']} | " + " | ".join(cells) + f" | {row['seconds']:.0f} | "
                     + (f"{rate:.0f}" if rate else "n/a") + f" | {row['status']} |")
    return "\n".join(lines)


def threading_main():
    import threading

    return threading.current_thread() is threading.main_thread()


def machine_line(device):
    from common import machine_info

    return machine_info(device)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-dry-run", action="store_true", help="small scale on the CPU, to check the script")
    parser.add_argument("--out", default=os.environ.get("OUT") or "/tmp/gpu_lt_standin_out")
    parser.add_argument("--work-dir", default="/tmp/gpu_lt_standin_work", help="dataset and checkpoints")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="seconds from the start (generation included) after which no variant starts and a "
                             "running one is stopped (default 420, none in the dry run)")
    parser.add_argument("--variants", nargs="+", default=None, help=f"default: {' '.join(VARIANTS)}")
    parser.add_argument("--epochs", type=int, default=None, help="override the schedule's max_epoch")
    parser.add_argument("-b", "--batch", type=int, default=None, help=f"default {GPU_BATCH} (dry run {DRY_RUN_BATCH})")
    parser.add_argument("--workers", type=int, default=None,
                        help="data loader workers per run (default: the CPUs less two, at most 14; dry run 0)")
    parser.add_argument("--gen-processes", type=int, default=None, help="dataset generation processes (default: CPUs)")
    parser.add_argument("--train-images", type=int, default=None,
                        help="training images of the preset's design (default 6400, the preset; at least 3911 for "
                             "its 300 classes; more lowers every class's share of the anchors, and lengthens an "
                             "epoch alike)")
    parser.add_argument("--no-imbalance", dest="imbalance", action="store_false",
                        help="skip the dataset's positive-anchor shares vs LVIS (tools/lt_analysis.py imbalance, "
                             "about 10 s for the preset on one CPU core)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="more experiment overrides 'key value ...'")
    args = parser.parse_args(argv)
    if args.budget_s is None:  # a slow or busy CPU must not skip the variants of the dry run that checks them
        args.budget_s = float("inf") if args.cpu_dry_run else 420.0
    started = time.monotonic()
    if threading_main():
        # an outer `timeout` sends SIGTERM: exit through the exception path, which stops a running variant
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    deadline = started + args.budget_s

    import torch

    cpus = os.cpu_count() or 1
    if args.cpu_dry_run:
        device, spec, schedule = "cpu", small_scale_spec(), dict(DRY_RUN_SCHEDULE)
        batch, variants, workers = args.batch or DRY_RUN_BATCH, args.variants or list(DRY_RUN_VARIANTS), 0
    else:
        if not torch.cuda.is_available():
            sys.exit("no CUDA device: use --cpu-dry-run")
        from synthetic_lt import LT_PRESETS, preset_spec

        preset = LT_PRESETS[PRESET]
        spec = (preset_spec(PRESET) if args.train_images is None else
                small_scale_spec(preset["num_classes"], args.train_images, preset["num_val_images"],
                                 preset["image_size"], min_val_instances=preset["min_val_instances_per_class"]))
        device, schedule = "cuda", dict(GPU_SCHEDULE)
        batch, variants, workers = args.batch or GPU_BATCH, args.variants or list(VARIANTS), max(0, min(14, cpus - 2))
    if args.workers is not None:
        workers = args.workers
    if args.epochs is not None:
        schedule["max_epoch"] = args.epochs
    unknown = [v for v in variants if not (ROOT / EXP_PATTERN.format(v)).is_file()]
    if unknown:
        sys.exit(f"no exp file for the variant(s) {', '.join(unknown)} ({EXP_PATTERN})")
    if len(args.opts) % 2:
        sys.exit(f"overrides must be 'key value' pairs, got {args.opts}")

    out_dir, work_dir = Path(args.out), Path(args.work_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = work_dir / ("data_dry_run" if args.cpu_dry_run else f"data_{PRESET}_{spec.num_train_images}")
    runs_dir = work_dir / "runs"
    machine = machine_line(device)
    print(f"gpu_lt_standin: {machine} | variants {' '.join(variants)} | budget {args.budget_s:.0f} s", flush=True)

    report = {"machine": machine, "command": " ".join(["python", "benchmarks/gpu_lt_standin.py",
                                                       *(argv if argv is not None else sys.argv[1:])]),
              "dry_run": args.cpu_dry_run, "budget_s": args.budget_s, "device": device, "batch": batch,
              "workers": workers, "preset": None if args.cpu_dry_run or args.train_images else PRESET,
              "spec": asdict(spec),
              "schedule": {k: list(v) if isinstance(v, tuple) else v for k, v in schedule.items()},
              "overrides": list(args.opts), "variants": variants, "runs": []}

    def save():
        report["seconds"] = time.monotonic() - started
        (out_dir / "gpu_lt_standin.json").write_text(json.dumps(report, indent=1, default=str))

    gen_processes = args.gen_processes or cpus
    seconds, reused = prepare_dataset(data_dir, spec, gen_processes)
    summary = dataset_summary(data_dir)
    report["dataset"] = {"dir": str(data_dir), "seconds": seconds, "reused": reused, "processes": gen_processes,
                         "groups": summary}
    print(f"\n# dataset: {'reused' if reused else 'generated'} in {seconds:.1f} s ({gen_processes} processes), "
          f"{spec.num_classes} classes, {spec.num_train_images} training / {spec.num_val_images} validation "
          f"images of {spec.image_size[0]} px, in {data_dir}")
    from tabulate import tabulate

    print(tabulate([[r["group"], r["classes"], r["images_per_class"], r["train_images"], r["train_instances"],
                     r["val_instances"]] for r in summary],
                   headers=["group", "classes", "train images/class", "train images", "train instances",
                            "val instances"]))
    num_classes = next(r["classes"] for r in summary if r["group"] == "all")
    overrides = override_list(schedule) + ["data_num_workers", str(workers), "num_classes", str(num_classes),
                                           "eval_interval", str(schedule["max_epoch"])] + list(args.opts)
    if args.imbalance:
        print("\n# the dataset's positive-anchor shares (tools/lt_analysis.py imbalance, YOLOX* anchors and ATSS)")
        try:
            rows = dataset_imbalance(data_dir, ROOT / EXP_PATTERN.format("fl"), overrides)
            report["imbalance"] = [dict(zip(("group", "this_dataset", "lvis_estimate", "ratio"), row)) for row in rows]
        except Exception as e:  # noqa: BLE001 - a diagnostic: the runs go on without it
            report["imbalance_error"] = f"{type(e).__name__}: {str(e)[:200]}"
            print(f"imbalance failed: {report['imbalance_error']}")
    save()

    bench = load_tool("lt_benchmark")
    jobs = []
    for variant in variants:
        exp_file = ROOT / EXP_PATTERN.format(variant)
        run_overrides = ["data_dir", str(data_dir.resolve()), "output_dir", str(runs_dir.resolve()),
                         "exp_name", variant, "seed", "0"] + overrides
        cmd = [sys.executable, str(ROOT / "tools" / "train.py"), "-f", str(exp_file), "-b", str(batch), "-d", "1",
               "--device", device, "-l", "none"] + (["--fp16"] if device == "cuda" else []) + run_overrides
        jobs.append({"name": variant, "cmd": cmd, "log": str(runs_dir / variant / "stdout.txt"), "cwd": str(ROOT),
                     "exp_file": exp_file, "overrides": run_overrides})
    print(f"\n# training {len(jobs)} variant(s) one after another, batch {batch}, on {device}; the first run:\n"
          + " ".join(jobs[0]["cmd"][1:]).replace(str(ROOT) + "/", ""), flush=True)

    def on_done(record):
        job = next(j for j in jobs if j["name"] == record["name"])
        run_dir = runs_dir / record["name"]
        row = {"variant": record["name"], "status": record["status"], "seconds": record["seconds"],
               "returncode": record["returncode"], "command": " ".join(job["cmd"][1:])}
        if record["status"] == "done":
            try:
                row.update(read_run(bench, run_dir, job["exp_file"], job["overrides"]))
            except Exception as e:  # noqa: BLE001 - the table says what failed, the other variants go on
                row["status"] = f"done, unreadable result: {type(e).__name__}: {str(e)[:200]}"
            row["train_images_per_s"] = training_rate(run_dir / "train_log.txt", batch)
        copy_run_files(run_dir, out_dir / "runs" / record["name"], job["log"])
        report["runs"].append(row)
        save()
        metrics = "  ".join(f"{k} {100 * row[k]:.1f}" for k in METRICS if row.get(k) is not None)
        print(f"  {record['name']}: {record['status']} in {record['seconds']:.0f} s  {metrics}", flush=True)

    run_jobs(jobs, deadline, on_done)
    table = format_table(report["runs"])
    report["skipped"] = [r["variant"] for r in report["runs"] if r["status"].startswith("skipped")]
    (out_dir / "table.md").write_text(table + "\n")
    print(f"\n# GPU stand-in for Table 1 ({'dry run, ' if args.cpu_dry_run else ''}{spec.num_classes} classes, "
          f"{schedule['max_epoch']} epochs at {schedule['input_size'][0]} px, batch {batch}, one seed) | {machine}")
    print(table)
    for row in report["runs"]:
        for group, stats in (row.get("efl_by_group") or {}).items():
            print(f"  {row['variant']} {group}: mean gamma^j {stats['gamma']:.2f}, mean g^j {stats['g']:.3f}, "
                  f"median neg/pos gradient {stats['neg_over_pos_median']:.3g}")
    if report["skipped"]:
        print(f"skipped (budget): {', '.join(report['skipped'])}")
    if report.get("imbalance"):
        print("\n# positive anchors of a class per epoch / all anchors per epoch (median over the group's classes)")
        print(tabulate([[r["group"], r["this_dataset"], r["lvis_estimate"], r["ratio"]] for r in report["imbalance"]],
                       headers=["group", "this dataset", "LVIS v1 (estimate)", "ratio"], disable_numparse=True))
    save()
    print(f"\ngpu_lt_standin done in {report['seconds']:.0f} s; results in {out_dir}/gpu_lt_standin.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
