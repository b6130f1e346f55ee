"""Time ``yolox.evaluators.lvis_bbox_eval`` against the official lvis-api on a simulated LVIS-v1-sized set.

    python benchmarks/bench_lvis_eval.py                       # 5000 images x 300 detections, 1203 classes
    python benchmarks/bench_lvis_eval.py --images 500 --dets 100

The ground truth imitates LVIS v1 val: 1203 categories (337 rare, 461 common, 405 frequent), about 12
boxes of 3-4 positive categories per image, a few negative and not-exhaustive categories per image. The
detections are jittered GT boxes plus random boxes of random categories up to ``--dets`` per image (most of
them fall on categories neither positive nor negative in the image, which the federated protocol skips).

Three evaluators: ``lvis_bbox_eval`` with its default engine (``fast``), the same with
``engine="faster_coco_eval"``, and the official lvis-api. Each runs in a fresh process (so its peak
memory is its own) and is timed from the json path and the loaded results list to the metrics. The
official ``lvis`` package (``pip install --no-deps lvis==0.5.3``) needs ``np.float``, put back here for it
only. Prints a table: images, dets/img, seconds, ratio (its seconds / the fast engine's), the process's
peak RSS (results json loading included), the peak RSS rise during the evaluation itself (sampled every
10 ms), and the largest metric difference from the fast engine.
"""
import argparse
import json
import math
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import threading
import time

import numpy as np
from tabulate import tabulate

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

METRIC_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
GROUP_SIZES = {"r": 337, "c": 461, "f": 405}  # LVIS v1


def simulate_gt(num_images, seed):
    rng = np.random.default_rng(seed)
    categories, freq = [], []
    for group, count in GROUP_SIZES.items():
        for _ in range(count):
            low, high = {"r": (1, 10), "c": (10, 100), "f": (100, 5000)}[group]
            cid = len(categories) + 1
            categories.append({"id": cid, "name": f"class_{cid}", "frequency": group,
                               "image_count": int(rng.integers(low, high))})
            freq.append(group)
    cat_ids = np.arange(1, len(categories) + 1)
    # Frequent categories appear far more often than rare ones, as in LVIS.
    weight = np.array([{"r": 0.05, "c": 1.0, "f": 12.0}[g] for g in freq])
    weight /= weight.sum()
    images, anns = [], []
    for img_id in range(1, num_images + 1):
        w, h = int(rng.integers(320, 641)), int(rng.integers(240, 481))
        positives = rng.choice(cat_ids, size=int(rng.integers(1, 7)), replace=False, p=weight)
        for cid in positives:
            for _ in range(int(rng.integers(1, 7))):
                bw, bh = rng.uniform(4, w * 0.6), rng.uniform(4, h * 0.6)
                x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
                anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": int(cid),
                             "bbox": [x, y, bw, bh], "area": bw * bh * rng.uniform(0.5, 1.0)})
        others = np.setdiff1d(cat_ids, positives)
        negatives = rng.choice(others, size=int(rng.integers(2, 12)), replace=False)
        not_exhaustive = [int(positives[0])] if rng.random() < 0.15 else []
        images.append({"id": img_id, "width": w, "height": h, "neg_category_ids": negatives.tolist(),
                       "not_exhaustive_category_ids": not_exhaustive})
    return {"images": images, "annotations": anns, "categories": categories}


def simulate_detections(gt, dets_per_image, seed):
    rng = np.random.default_rng(seed)
    by_image = {}
    for a in gt["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    num_cats = len(gt["categories"])
    results = []
    for img in gt["images"]:
        w, h = img["width"], img["height"]
        dets = []
        for a in by_image.get(img["id"], []):
            x, y, bw, bh = a["bbox"]
            d = rng.normal(0, 0.1, 4) * [bw, bh, bw, bh]
            dets.append((a["category_id"], [x + d[0], y + d[1], max(bw + d[2], 1), max(bh + d[3], 1)]))
        pool = img["neg_category_ids"] + [a["category_id"] for a in by_image.get(img["id"], [])]
        while len(dets) < dets_per_image:
            bw, bh = rng.uniform(4, w * 0.6), rng.uniform(4, h * 0.6)
            cid = int(rng.choice(pool)) if rng.random() < 0.1 else int(rng.integers(1, num_cats + 1))
            dets.append((cid, [rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh]))
        for cid, box in dets[:dets_per_image]:
            results.append({"image_id": img["id"], "category_id": cid, "bbox": [float(v) for v in box],
                            "score": float(rng.random())})
    return results


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _current_rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


class _RSSSampler(threading.Thread):
    """Samples this process's resident memory every 10 ms: the peak *during* the evaluation, which
    ``ru_maxrss`` hides when loading the results json peaked higher (Linux only; else NaN)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self._done = math.nan, threading.Event()

    def run(self):
        if not os.path.exists("/proc/self/statm"):
            return
        self.peak = _current_rss_mb()
        while not self._done.wait(0.01):
            self.peak = max(self.peak, _current_rss_mb())

    def stop(self):
        self._done.set()
        self.join()
        return self.peak


def _import_ours(engine):
    from yolox.evaluators import lvis_bbox_eval

    return lambda gt_path, results: lvis_bbox_eval(gt_path, results, max_dets=300, engine=engine)


def _import_official():
    for name, alias in (("float", float), ("int", int), ("bool", bool)):
        if name not in np.__dict__:
            setattr(np, name, alias)
    import logging

    import lvis

    logging.getLogger("lvis").setLevel(logging.ERROR)
    return lambda gt_path, results: _run_official(lvis, gt_path, results)


def _run_official(lvis, gt_path, results):
    LVIS, LVISEval, LVISResults = lvis.LVIS, lvis.LVISEval, lvis.LVISResults
    gt = LVIS(gt_path)
    ev = LVISEval(gt, LVISResults(gt, results, max_dets=300), iou_type="bbox")
    ev.run()
    return {k: float(ev.results[k]) for k in METRIC_KEYS}


def _worker(which, gt_path, results_path, queue):
    # Imports are not timed.
    evaluate = _import_official() if which == "official" else _import_ours(which)
    with open(results_path) as f:
        results = json.load(f)
    start_rss = _current_rss_mb() if os.path.exists("/proc/self/statm") else math.nan
    sampler = _RSSSampler()
    sampler.start()
    t0 = time.perf_counter()
    metrics = evaluate(gt_path, results)
    seconds = time.perf_counter() - t0
    eval_peak = sampler.stop()
    metrics = {k: (math.nan if v == -1 else float(v)) for k, v in metrics.items()}
    queue.put({"seconds": seconds, "peak_mb": _peak_rss_mb(), "start_mb": start_rss, "eval_peak_mb": eval_peak,
               "metrics": metrics})


def run_in_fresh_process(which, gt_path, results_path):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(which, gt_path, results_path, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--dets", type=int, default=300, help="detections per image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-official", action="store_true", help="do not run the official lvis-api")
    parser.add_argument("--skip-faster-coco-eval", action="store_true", help="do not run faster-coco-eval")
    args = parser.parse_args()

    gt = simulate_gt(args.images, args.seed)
    results = simulate_detections(gt, args.dets, args.seed + 1)
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, results_path = os.path.join(tmp, "gt.json"), os.path.join(tmp, "results.json")
        with open(gt_path, "w") as f:
            json.dump(gt, f)
        with open(results_path, "w") as f:
            json.dump(results, f)
        del results
        runs = {"lvis_bbox_eval (fast)": run_in_fresh_process("fast", gt_path, results_path)}
        if not args.skip_faster_coco_eval:
            runs["faster-coco-eval lvis_style"] = run_in_fresh_process("faster_coco_eval", gt_path, results_path)
        if not args.skip_official:
            runs["official lvis-api"] = run_in_fresh_process("official", gt_path, results_path)

    ours = runs["lvis_bbox_eval (fast)"]
    rows = []
    for name, run in runs.items():
        diff = max((abs(run["metrics"][k] - ours["metrics"][k]) for k in METRIC_KEYS
                    if not (math.isnan(run["metrics"][k]) and math.isnan(ours["metrics"][k]))), default=0.0)
        rows.append([name, args.images, args.dets, f"{run['seconds']:.2f}", f"{run['seconds'] / ours['seconds']:.2f}",
                     f"{run['peak_mb']:.0f}", f"{run['eval_peak_mb'] - run['start_mb']:.0f}", f"{diff:.2e}"])
    print(tabulate(rows, headers=["evaluator", "images", "dets/img", "seconds", "ratio (vs lvis_bbox_eval)",
                                  "process peak RSS MB", "RSS rise during eval MB",
                                  "max |metric diff|"], tablefmt="pipe"))
    print(tabulate([[f"{100 * ours['metrics'][k]:.2f}" for k in METRIC_KEYS]], headers=list(METRIC_KEYS),
                   tablefmt="pipe"))


if __name__ == "__main__":
    main()
