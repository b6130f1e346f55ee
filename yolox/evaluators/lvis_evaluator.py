"""LVIS box AP (federated protocol) and the LVIS evaluator.

The official ``lvis`` package (0.5.3) does not run on NumPy 2 and is slow; the default engine
(:mod:`yolox.evaluators.fast_lvis`) reproduces its numbers exactly, vectorised; faster-coco-eval's
``lvis_style`` mode stays available (``engine="faster_coco_eval"``). The tests compare all three.
The protocol: at most ``max_dets`` (300) detections per image, the best by score; per image only the
categories that are annotated (positive) or listed in ``neg_category_ids`` are evaluated; unmatched
detections of categories in ``not_exhaustive_category_ids`` are ignored; APr/APc/APf average the categories of each frequency group (rare <= 10 training images, common <= 100, else frequent).
"""
import csv
import math
import os
from collections import defaultdict

import numpy as np
from faster_coco_eval import COCO, COCOeval_faster
from tabulate import tabulate

from yolox.data.lvis_categories import frequency_group

from .coco_evaluator import COCOEvaluator, _mean_valid, _quiet, build_results_api, load_gt, unavailable_metrics_note
from .detection_gather import detections_to_coco, gather_detections, resolve_gt_json
from .fast_lvis import AREA_LABELS, IOU_THRESHOLDS, lvis_precision, summarize_precision
from .fixed_ap import (FIXED_AP_TOPK, POOLED_AP_KEYS, fixed_and_pooled_ap_eval, gather_topk_per_class,
                       run_detector_fixed_ap, uncapped_postprocess_fn)

__all__ = ["LVIS_METRIC_KEYS", "LVIS_ENGINES", "frequency_from_image_count", "lvis_eval_per_category",
           "lvis_bbox_eval", "write_per_category_csv", "metrics_table", "category_table", "LVISEvaluator"]

LVIS_METRIC_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
FREQUENCY_GROUPS = ("r", "c", "f")
PER_CATEGORY_CSV_COLUMNS = ("category_id", "name", "frequency", "image_count", "AP")


def frequency_from_image_count(image_count):
    """LVIS frequency group of a category seen in ``image_count`` training images."""
    return frequency_group(image_count)


def category_table(categories, class_image_counts):
    """Per category: (name, frequency, image_count). image_count comes from the json when present, else
    from ``class_image_counts``; frequency from the json when present, else from that image count."""
    table = {}
    for cat in categories:
        cid = int(cat["id"])
        count = cat.get("image_count")
        if count is None and class_image_counts is not None:
            count = class_image_counts.get(cid)
        freq = cat.get("frequency")
        if freq is None and count is not None:
            freq = frequency_from_image_count(int(count))
        if freq not in FREQUENCY_GROUPS:
            raise ValueError(f"category {cid} has no LVIS frequency ('r'/'c'/'f') and no image count to derive it "
                             "from: give the categories 'frequency' or 'image_count', or pass class_image_counts")
        table[cid] = (cat.get("name", str(cid)), freq, count)
    return table


def _limit_dets_per_image(results, max_dets):
    """The ``max_dets`` best-scoring results of each image (stable on ties), grouped by image in order of
    first appearance - the LVIS API's ``LVISResults.limit_dets_per_image``. Negative: no limit."""
    if max_dets < 0:
        return list(results)
    by_image = defaultdict(list)
    for r in results:
        by_image[r["image_id"]].append(r)
    kept = []
    for anns in by_image.values():
        if len(anns) > max_dets:
            anns = sorted(anns, key=lambda a: a["score"], reverse=True)[:max_dets]
        kept.extend(anns)
    return kept


LVIS_ENGINES = ("fast", "faster_coco_eval")


def _precision_faster_coco_eval(gt, results, max_dets):
    """faster-coco-eval's ``lvis_style`` precision ``[T, R, K, A]`` and its category ids ``[K]``."""
    coco_gt = COCO(gt, print_function=_quiet)
    coco_dt = build_results_api(coco_gt, _limit_dets_per_image(results, max_dets))
    evaluator = COCOeval_faster(coco_gt, coco_dt, "bbox", lvis_style=True, print_function=_quiet)
    # No limit (max_dets < 0): a cap no image can reach (faster-coco-eval would read -1 as "drop the last").
    evaluator.params.maxDets = [max_dets if max_dets >= 0 else max(len(results), 1)]
    evaluator.evaluate()
    evaluator.accumulate()
    # summarize_precision indexes areas and IoU thresholds by the official layout.
    assert list(evaluator.params.areaRngLbl) == list(AREA_LABELS)
    assert np.array_equal(evaluator.params.iouThrs, IOU_THRESHOLDS)
    return evaluator.eval["precision"][..., -1], [int(c) for c in evaluator.params.catIds]


def lvis_eval_per_category(gt_json_path, results, max_dets=300, class_image_counts=None, engine="fast"):
    """LVIS box evaluation with per-category detail.

    Args:
        gt_json_path: LVIS json path (str or Path) or its loaded dict (its categories are not modified).
        results: COCO-style list of ``{image_id, category_id, bbox [x, y, w, h], score}``; may be empty.
        max_dets: detections kept per image (best scores first); -1: no limit (lvis-api's ``max_dets=-1``).
        class_image_counts: ``{category_id: training image count}`` for categories whose json entry lacks
            ``image_count``/``frequency``.
        engine: ``"fast"`` (default; :mod:`yolox.evaluators.fast_lvis`, the official lvis-api's numbers
            exactly, vectorised) or ``"faster_coco_eval"`` (its ``lvis_style`` mode).

    Returns:
        (metrics, per_category): ``metrics`` as in :func:`lvis_bbox_eval`; ``per_category`` a list, in
        category id order, of dicts with the keys of the per-category CSV
        (``category_id name frequency image_count AP``; AP NaN for categories without ground truth in
        the evaluated images, image_count None when unknown).
    """
    if engine not in LVIS_ENGINES:
        raise ValueError(f"engine must be one of {LVIS_ENGINES}, got {engine!r}")
    gt = dict(load_gt(gt_json_path))
    categories = category_table(gt.get("categories", []), class_image_counts)
    if engine == "fast":
        precision, cat_ids = lvis_precision(gt, results, max_dets)
        cat_ids = [int(c) for c in cat_ids]
    else:
        # Fill frequencies on copies: faster-coco-eval reads them from the categories to form r/c/f groups.
        gt["categories"] = [dict(c, frequency=categories[int(c["id"])][1]) for c in gt.get("categories", [])]
        precision, cat_ids = _precision_faster_coco_eval(gt, results, max_dets)

    freq_of = np.array([categories[c][1] for c in cat_ids])
    # lvis-api's averaging (the same slices, hence the same float sums); its -1 is NaN here.
    metrics = summarize_precision(precision, freq_of)
    return metrics, per_category_rows(precision, cat_ids, categories)


def per_category_rows(precision, cat_ids, categories):
    """One dict per category: category_id, name, frequency, image_count and its AP (IoU 0.50:0.95, all areas).

    Args:
        precision: [T, R, K, A] LVIS precision (-1 where undefined), K in ``cat_ids`` order.
        cat_ids: [K] category ids; categories: :func:`category_table`'s {id: (name, frequency, image_count)}.
    """
    rows = []
    for k, cid in enumerate(cat_ids):
        name, freq, count = categories[cid]
        rows.append({"category_id": cid, "name": name, "frequency": freq,
                     "image_count": None if count is None else int(count),
                     "AP": _mean_valid(precision[:, :, k, 0])})
    return rows


def write_per_category_csv(path, per_category):
    """Write ``per_category`` rows (see :func:`lvis_eval_per_category`) as CSV; NaN AP is written 'nan'."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(PER_CATEGORY_CSV_COLUMNS)
        for row in per_category:
            count = "" if row["image_count"] is None else row["image_count"]
            writer.writerow([row["category_id"], row["name"], row["frequency"], count, f"{row['AP']:.6f}"])


def lvis_bbox_eval(gt_json_path, results, max_dets=300, per_category_csv=None, class_image_counts=None,
                   engine="fast"):
    """LVIS box AP of ``results`` (federated protocol, up to ``max_dets`` detections per image).

    Args:
        gt_json_path: LVIS json path (str or Path) or its loaded dict.
        results: COCO-style list of ``{image_id, category_id, bbox [x, y, w, h], score}``; may be empty.
        max_dets: detections kept per image (LVIS: 300); -1: no limit.
        per_category_csv: optional path; writes ``category_id,name,frequency,image_count,AP`` per category.
        class_image_counts: ``{category_id: training image count}``, used where the json's categories lack
            ``image_count`` (and ``frequency``).
        engine: ``"fast"`` (default, exact lvis-api numbers, vectorised) or ``"faster_coco_eval"``.

    Returns:
        dict with exactly the keys ``AP AP50 AP75 APs APm APl APr APc APf``, fractions in [0, 1]. A value
        is NaN when nothing was evaluated for it (e.g. APr when no rare category has ground truth in the
        evaluated images; the LVIS API reports -1 there). Empty ``results`` give 0.0 for the others.
        Per-category APs: :func:`lvis_eval_per_category`.
    """
    metrics, per_category = lvis_eval_per_category(gt_json_path, results, max_dets, class_image_counts,
                                                   engine)
    if per_category_csv is not None:
        write_per_category_csv(per_category_csv, per_category)
    return metrics


def metrics_table(metrics, keys=LVIS_METRIC_KEYS):
    """One-row tabulate table of ``metrics`` in percent; a metric with nothing to average over (NaN) shows
    ``n/a``, explained in a line below the table."""
    row = ["n/a" if math.isnan(metrics[k]) else f"{100 * metrics[k]:.2f}" for k in keys]
    table = tabulate([row], headers=list(keys), tablefmt="pipe", stralign="right", disable_numparse=True)
    note = unavailable_metrics_note(metrics, keys, "n/a")
    return table + "\n" + note if note else table


class LVISEvaluator(COCOEvaluator):
    """LVIS evaluation of a detector on a validation loader (same interface as :class:`COCOEvaluator`).

    ``evaluate`` returns ``(AP, AP50, summary)``; ``last_metrics`` holds the nine LVIS metrics plus
    ``per_category`` (``{category_id: AP}``). With ``output_dir`` set, rank 0 writes
    ``<output_dir>/lvis_per_category_ap.csv``. ``class_image_counts`` (``{category_id: training image
    count}``) fills the CSV's image_count where the ground-truth json has none.

    ``fixed_ap=True`` adds AP^Fixed (:mod:`yolox.evaluators.fixed_ap`) from the same forward passes: the
    uncapped post-processing (``fixed_ap_postprocess_fn``, by default the evaluator's own with
    ``max_det=None``) at score threshold ``fixed_ap_conf`` (0: none) feeds per-class top-``fixed_ap_topk``
    buffers; the kept detections are scored with no per-image limit. The returned ``(AP, AP50)`` stay the
    standard ones; ``last_metrics['fixed_ap']`` holds the nine AP^Fixed metrics (and ``per_category``),
    the summary prints both tables, and ``output_dir`` also gets ``lvis_per_category_ap_fixed.csv``.

    ``pooled_ap=True`` adds AP^Pool from the same pass and the same matching (it turns the pass on by
    itself): the kept detections of all classes ranked together, and of each frequency group;
    ``last_metrics['pooled_ap']`` holds ``AP APr APc APf`` (pooled over all classes, then per group) and the
    summary prints them in a table of their own.
    """

    csv_name = "lvis_per_category_ap.csv"
    fixed_csv_name = "lvis_per_category_ap_fixed.csv"

    def __init__(self, dataloader, img_size, confthre, nmsthre, num_classes, postprocess_fn=None, max_dets=300,
                 output_dir=None, class_image_counts=None, fixed_ap=False, fixed_ap_topk=FIXED_AP_TOPK,
                 fixed_ap_conf=0.0, fixed_ap_postprocess_fn=None, pooled_ap=False):
        super().__init__(dataloader, img_size, confthre, nmsthre, num_classes, postprocess_fn,
                         per_class_AP=False, per_class_AR=False)
        self.max_dets = max_dets
        self.output_dir = output_dir
        self.class_image_counts = class_image_counts
        self._gt = None  # the json is large (LVIS v1 val: ~200 MB); load it once per evaluator
        self.configure_fixed_ap(fixed_ap, fixed_ap_topk, fixed_ap_conf, fixed_ap_postprocess_fn, pooled_ap)

    def configure_fixed_ap(self, enabled=True, topk=FIXED_AP_TOPK, conf=0.0, postprocess_fn=None, pooled=False):
        """Turn the AP^Fixed report (``enabled``) and the AP^Pool report (``pooled``) on or off (see the class
        docstring); either runs the per-class top-``topk`` pass. Checks the post-processing at once."""
        if topk < 1:
            raise ValueError(f"fixed_ap_topk must be >= 1, got {topk}")
        self.fixed_ap = bool(enabled)
        self.pooled_ap = bool(pooled)
        self.fixed_ap_topk = int(topk)
        self.fixed_ap_conf = float(conf)
        self.fixed_ap_postprocess_fn = postprocess_fn
        if self._topk_pass and postprocess_fn is None:
            self.fixed_ap_postprocess_fn = uncapped_postprocess_fn(self._postprocess_fn())
        self._fixed = None

    @property
    def _topk_pass(self):
        """Whether evaluation runs the per-class top-k pass (AP^Fixed or AP^Pool asked for)."""
        return self.fixed_ap or self.pooled_ap

    def _postprocess_fn(self):
        if self.postprocess_fn is not None:
            return self.postprocess_fn
        from functools import partial

        from yolox.utils.boxes import multilabel_postprocess

        return partial(multilabel_postprocess, max_det=self.max_dets)

    def _detections(self, model, distributed, half):
        if not self._topk_pass:
            return super()._detections(model, distributed, half)
        dataset = self.dataloader.dataset
        per_image, stats, accumulator = run_detector_fixed_ap(
            model, self.dataloader, self._postprocess_fn(), self.fixed_ap_postprocess_fn, self.num_classes,
            self.confthre, self.fixed_ap_conf, self.nmsthre, self.img_size, dataset.class_ids,
            self.fixed_ap_topk, half)
        self._fixed = gather_topk_per_class(accumulator, distributed)
        fixed_s = stats.pop("fixed_ap_s")
        merged, total = gather_detections(per_image, stats, distributed)
        if total is not None:
            total["fixed_ap_s"] = fixed_s  # rank 0's
        return merged, total

    def _score(self, merged, stats):
        dataset = self.dataloader.dataset
        if self._gt is None:
            self._gt = load_gt(resolve_gt_json(dataset))
        metrics, per_category = lvis_eval_per_category(self._gt, detections_to_coco(merged), self.max_dets,
                                                       self.class_image_counts)
        summary = [self._speed_line(stats, self.dataloader.batch_size), metrics_table(metrics)]
        if self.output_dir is not None:
            path = os.path.join(self.output_dir, self.csv_name)
            write_per_category_csv(path, per_category)
            summary.append(f"per-category AP written to {path}")
        metrics["per_category"] = {row["category_id"]: row["AP"] for row in per_category}
        if self._topk_pass:
            fixed, pooled, lines = self._score_fixed(stats)
            if self.fixed_ap:
                metrics["fixed_ap"] = fixed
            if self.pooled_ap:
                metrics["pooled_ap"] = pooled
            summary += lines
        return metrics, "\n".join(summary) + "\n"

    def _score_fixed(self, stats):
        """AP^Fixed and AP^Pool of the kept detections, one matching for both: (fixed metrics with
        ``per_category``, pooled metrics, summary lines of the reports asked for)."""
        accumulator, self._fixed = self._fixed, None
        counts = accumulator.counts()
        results = accumulator.to_coco(self._gt)  # only what LVIS evaluates: same numbers, far fewer dicts
        fixed, per_category, pooled = fixed_and_pooled_ap_eval(self._gt, results, -1, self.class_image_counts)
        k = self.fixed_ap_topk
        full = sum(1 for c in counts.values() if c >= k)
        n_cats = len(self._gt.get("categories", []))
        lines = [f"per-class top-k pass: per class its {k} best detections over the split, no per-image limit, "
                 f"score threshold {self.fixed_ap_conf:g}; {full} of {n_cats} classes reached {k} (extra "
                 f"post-processing {stats.get('fixed_ap_s', 0.0):.1f} s)"]
        if self.fixed_ap:
            lines += ["AP^Fixed (Dave et al. 2021): the mean of per-class APs", metrics_table(fixed)]
            if self.output_dir is not None:
                path = os.path.join(self.output_dir, self.fixed_csv_name)
                write_per_category_csv(path, per_category)
                lines.append(f"per-category AP^Fixed written to {path}")
        if self.pooled_ap:
            lines += ["AP^Pool (Dave et al. 2021): the same detections ranked together across classes, one AP "
                      "(IoU 0.50:0.95) over all classes, then over the classes of each frequency group",
                      metrics_table(pooled, POOLED_AP_KEYS)]
        fixed["per_category"] = {row["category_id"]: row["AP"] for row in per_category}
        fixed["classes_at_topk"] = full
        pooled["classes_at_topk"] = full
        return fixed, pooled, lines
