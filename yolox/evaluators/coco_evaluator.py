"""COCO box AP (faster-coco-eval, a maintained C++ port of pycocotools) and the COCO evaluator."""
import copy
import gc
import itertools
import json
import math

import numpy as np
from faster_coco_eval import COCO, COCOeval_faster
from tabulate import tabulate

from .detection_gather import (broadcast_from_main, detections_to_coco, gather_detections, kept_detections, resolve_gt_json,
                               run_detector)

__all__ = ["COCO_METRIC_KEYS", "coco_bbox_eval", "load_gt", "build_results_api", "unavailable_metrics_note",
           "COCOEvaluator"]

COCO_METRIC_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")

# What a metric averages over; without any in the evaluated images it is NaN (pycocotools and the LVIS API
# print -1), and the printed summaries say why.
AVERAGED_OVER = {
    "AP": "ground truth",
    "AP50": "ground truth",
    "AP75": "ground truth",
    "APs": "small object (area < 32x32 px)",
    "APm": "medium object (area 32x32 to 96x96 px)",
    "APl": "large object (area > 96x96 px)",
    "APr": "object of a rare category (frequency 'r')",
    "APc": "object of a common category (frequency 'c')",
    "APf": "object of a frequent category (frequency 'f')",
}


def _quiet(*_args, **_kwargs):
    pass


def load_gt(gt_json):
    """A COCO/LVIS ground-truth json path, or an already loaded dict (returned as is)."""
    if isinstance(gt_json, dict):
        return gt_json
    with open(gt_json) as f:
        return json.load(f)


def build_results_api(coco_gt, results):
    """Wrap COCO-style box results as a faster-coco-eval ``COCO`` over the images of ``coco_gt``.

    Does what ``COCO.loadRes`` does for boxes (area = w * h, ids 1..N in list order, iscrowd 0) on copies,
    so the caller's dicts stay untouched, and skips the polygon that box evaluation never reads.
    """
    unknown = {r["image_id"] for r in results} - set(coco_gt.imgs)
    if unknown:
        raise ValueError(f"results for images not in the ground truth: {sorted(unknown)[:10]}")
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of small dicts: the cyclic collector would rescan them over and over
    try:
        anns = []
        for i, r in enumerate(results):
            x, y, w, h = map(float, r["bbox"])
            anns.append({"id": i + 1, "image_id": int(r["image_id"]), "category_id": int(r["category_id"]),
                         "bbox": [x, y, w, h], "area": w * h, "score": float(r["score"]), "iscrowd": 0})
    finally:
        if gc_was_enabled:
            gc.enable()
    coco_dt = COCO(print_function=_quiet)
    coco_dt.dataset = {"images": list(coco_gt.dataset["images"]),
                       "categories": copy.deepcopy(coco_gt.dataset.get("categories", [])),
                       "annotations": anns}
    coco_dt.createIndex()
    return coco_dt


def _mean_valid(values):
    """Mean of the entries > -1 (-1 marks 'no ground truth'); NaN when there is none."""
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else math.nan


def coco_bbox_eval(gt_json_path, results):
    """COCO box AP of ``results`` against the ground truth at ``gt_json_path``.

    Args:
        gt_json_path: COCO json path (str or Path), or its loaded dict.
        results: COCO-style list of ``{image_id, category_id, bbox [x, y, w, h], score}``; may be empty.

    Returns:
        dict with ``AP AP50 AP75 APs APm APl`` (fractions in [0, 1], maxDets 100; NaN where no ground
        truth falls in that range - pycocotools prints -1 there), ``per_category``
        (``{category_id: AP}``, NaN for categories without ground truth), ``per_category_AR``
        (``{category_id: AR@100}``) and ``summary``: the standard 12-line COCO summary as a string.
    """
    gt = load_gt(gt_json_path)
    coco_gt = COCO(gt, print_function=_quiet)
    coco_dt = build_results_api(coco_gt, results)
    evaluator = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=_quiet)
    evaluator.evaluate()
    evaluator.accumulate()
    lines = []
    evaluator.print_function = lines.append
    evaluator.summarize()

    p = evaluator.params
    precision = evaluator.eval["precision"][..., -1]  # [T, R, K, A] at maxDets 100
    recall = evaluator.eval["recall"][..., -1]  # [T, K, A]
    t50, t75 = (int(np.argmin(np.abs(p.iouThrs - t))) for t in (0.5, 0.75))
    area = {label: i for i, label in enumerate(p.areaRngLbl)}
    metrics = {
        "AP": _mean_valid(precision[..., area["all"]]),
        "AP50": _mean_valid(precision[t50, ..., area["all"]]),
        "AP75": _mean_valid(precision[t75, ..., area["all"]]),
        "APs": _mean_valid(precision[..., area["small"]]),
        "APm": _mean_valid(precision[..., area["medium"]]),
        "APl": _mean_valid(precision[..., area["large"]]),
    }
    metrics["per_category"] = {int(c): _mean_valid(precision[:, :, k, area["all"]]) for k, c in enumerate(p.catIds)}
    metrics["per_category_AR"] = {int(c): _mean_valid(recall[:, k, area["all"]]) for k, c in enumerate(p.catIds)}
    # faster-coco-eval appends AR@0.5 and AR@0.75; the first 12 lines are pycocotools' summary.
    metrics["summary"] = "\n".join(lines[:12])
    return metrics


def unavailable_metrics_note(metrics, keys, shown_as="n/a"):
    """One line per metric of ``keys`` that is NaN in ``metrics``, saying that the summary shows it as
    ``shown_as`` and why; empty string when every metric has a value."""
    lines = [f"{key} = {shown_as}: the evaluated images have no {AVERAGED_OVER.get(key, 'ground truth')} to "
             "average over" for key in keys if math.isnan(metrics[key])]
    return "\n".join(lines)


def per_class_table(values_by_name, metric_name, num_pairs=3):
    """Upstream YOLOX's per-class table: ``num_pairs`` (class, value) column pairs, values in percent."""
    flat = list(itertools.chain(*[(name, "nan" if math.isnan(v) else f"{100 * v:.3f}")
                                  for name, v in values_by_name.items()]))
    rows = list(itertools.zip_longest(*[flat[i::2 * num_pairs] for i in range(2 * num_pairs)]))
    headers = ["class", metric_name] * num_pairs
    return tabulate(rows, headers=headers, tablefmt="pipe", floatfmt=".3f", numalign="left")


class COCOEvaluator:
    """COCO AP evaluation of a detector on a validation loader (upstream YOLOX's interface).

    Each rank runs its shard of the loader; detections are gathered on rank 0, which computes the metric;
    the returned tuple and ``last_metrics`` are broadcast so that every rank sees the same values.
    """

    def __init__(self, dataloader, img_size, confthre, nmsthre, num_classes, postprocess_fn=None,
                 per_class_AP=True, per_class_AR=True):
        self.dataloader = dataloader
        self.img_size = tuple(img_size)
        self.confthre = confthre
        self.nmsthre = nmsthre
        self.num_classes = num_classes
        self.postprocess_fn = postprocess_fn
        self.per_class_AP = per_class_AP
        self.per_class_AR = per_class_AR
        self.last_metrics = {}
        # image ids whose detections evaluate() keeps in kept_detections (rank 0), e.g. for a logger's pictures
        self.keep_image_ids = ()
        self.kept_detections = None

    def _postprocess_fn(self):
        if self.postprocess_fn is not None:
            return self.postprocess_fn
        from yolox.utils.boxes import postprocess

        return postprocess

    def _detections(self, model, distributed, half):
        dataset = self.dataloader.dataset
        per_image, stats = run_detector(model, self.dataloader, self._postprocess_fn(), self.num_classes,
                                        self.confthre, self.nmsthre, self.img_size, dataset.class_ids, half)
        return gather_detections(per_image, stats, distributed)

    @staticmethod
    def _speed_line(stats, batch_size):
        n = max(stats["images"], 1)
        fwd, nms = 1000 * stats["forward_s"] / n, 1000 * stats["nms_s"] / n
        return (f"Average forward time: {fwd:.2f} ms, Average NMS time: {nms:.2f} ms, "
                f"Average inference time: {fwd + nms:.2f} ms (batch size {batch_size}, {stats['images']} images)")

    def evaluate(self, model, distributed=False, half=False):
        """Returns ``(AP50:95, AP50, summary)`` (AP fractions; 0.0 stands for NaN, i.e. no ground truth)."""
        was_training = model.training
        model.eval()
        try:
            merged, stats = self._detections(model, distributed, half)
        finally:
            model.train(was_training)
        out = None
        if merged is not None:
            self.kept_detections = kept_detections(merged, self.keep_image_ids)
            out = self._score(merged, stats)
        metrics, summary = broadcast_from_main(out, distributed)
        self.last_metrics = metrics
        return _zero_nan(metrics["AP"]), _zero_nan(metrics["AP50"]), summary

    def _score(self, merged, stats):
        dataset = self.dataloader.dataset
        gt_path = resolve_gt_json(dataset)
        metrics = coco_bbox_eval(gt_path, detections_to_coco(merged))
        summary = [self._speed_line(stats, self.dataloader.batch_size), metrics.pop("summary")]
        # pycocotools prints -1.000 for an area range without ground truth, in its AP and AR lines alike
        note = unavailable_metrics_note(metrics, COCO_METRIC_KEYS, "-1.000 (so is its AR)")
        if note:
            summary.append(note)
        names = _category_names(dataset, metrics["per_category"])
        if self.per_class_AP:
            summary.append("per class AP:\n" + per_class_table(
                {names[c]: v for c, v in metrics["per_category"].items()}, "AP"))
        if self.per_class_AR:
            summary.append("per class AR:\n" + per_class_table(
                {names[c]: v for c, v in metrics["per_category_AR"].items()}, "AR"))
        return metrics, "\n".join(summary) + "\n"


def _zero_nan(value):
    return 0.0 if math.isnan(value) else float(value)


def _category_names(dataset, category_ids):
    """Category id -> name, from the dataset's contiguous ``class_names``/``class_ids`` (else the id)."""
    names = {int(c): str(c) for c in category_ids}
    class_ids = getattr(dataset, "class_ids", None)
    class_names = getattr(dataset, "class_names", None)
    if class_ids is not None and class_names is not None:
        for cid, name in zip(class_ids, class_names):
            names[int(cid)] = str(name)
    return names
