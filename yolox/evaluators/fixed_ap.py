"""LVIS AP^Fixed (Dave et al. 2021, "Evaluating Large-Vocabulary Object Detectors: The Devil is in the Details").

Standard LVIS AP keeps at most 300 detections per image, so it partly ranks detectors by how they share
that budget among the classes of an image. AP^Fixed lifts the per-image cap and instead keeps, for each
class, its ``topk`` best-scoring detections over the whole dataset (10,000 for LVIS v1 val); the kept
detections are then scored with the usual LVIS rules (federated ``neg_category_ids`` /
``not_exhaustive_category_ids``, APr/APc/APf) and no per-image limit (lvis-api ``max_dets=-1``).

The rules re-enacted from the reference (``achalddave/large-vocab-devil``, ``scripts/evaluate_ap_fixed.py``):

* the cut is per category over *all* of its detections, before the federated filter: a detection on an
  image where its category is not evaluated still takes one of the ``topk`` places;
* within a category, the best scores first; on equal scores the earlier detection in the results list
  wins (Python's stable sort). Our results list is the evaluator's: images by ascending id, each image's
  detections in post-processing order, so ties go to the lower image id, then the earlier row.

During inference (:class:`TopKPerClass`) each rank streams its detections through per-class bounded
buffers, so memory stays O(classes x topk) instead of holding every uncapped box of the split.

AP^Pool, the paper's second protocol (the reference's ``scripts/evaluate_ap_pooled.py`` with
``lvdevil/eval_wrapper.py``'s ``LVISPooledEval``), scores the *same* kept detections (per class its
``topk`` best, no per-image limit) and the same per-(image, category) LVIS matching, but ranks the
detections of all categories of a pool together: one precision-recall curve whose recall counts the
ground truth of every category in the pool. Pools: all categories (AP^Pool) and each frequency group
(``r``, ``c``, ``f``); AP averaged over IoU 0.50:0.95, area "all" only. Tied scores are ordered by
image id, then category id, then input order (the reference's concatenation order and stable sort). It
rewards scores that are comparable across classes (calibration), which AP^Fixed ignores.
"""
import math
from collections import defaultdict

import numpy as np
import torch.distributed as dist

from yolox.utils import get_rank, get_world_size

from .detection_gather import letterboxed_sizes, outputs_to_rows
from .fast_lvis import (IOU_THRESHOLDS, RECALL_THRESHOLDS, category_precision, GroundTruth, in_sorted, match_pairs,
                        outside_areas, parse_results, summarize_precision)

__all__ = ["FIXED_AP_TOPK", "POOLED_AP_KEYS", "topk_per_class", "TopKPerClass", "gather_topk_per_class",
           "federated_mask", "fixed_ap_eval_per_category", "fixed_ap_eval", "fixed_and_pooled_ap_eval",
           "pooled_ap_eval", "uncapped_postprocess_fn", "run_detector_fixed_ap"]

FIXED_AP_TOPK = 10000  # detections kept per class, LVIS v1 val (the reference's --dets-per-cat)
# AP^Pool's pools: all categories, then each frequency group (the reference's AP-pooled-{all,r,c,f}).
POOLED_AP_KEYS = ("AP", "APr", "APc", "APf")


def topk_per_class(results, topk=FIXED_AP_TOPK):
    """The reference's cut on COCO-style results: per category the ``topk`` best scores (stable: ties keep
    list order). Returns a new list (the same dicts), categories in order of first appearance, each by
    descending score. ``topk < 0`` keeps everything."""
    by_cat = defaultdict(list)
    for r in results:
        by_cat[r["category_id"]].append(r)
    kept = []
    for anns in by_cat.values():
        if topk >= 0 and len(anns) > topk:
            anns = sorted(anns, key=lambda a: a["score"], reverse=True)[:topk]
        kept.extend(anns)
    return kept


def _empty_arrays():
    return {"image_id": np.zeros(0, np.int64), "row": np.zeros(0, np.int64), "category_id": np.zeros(0, np.int64),
            "box": np.zeros((0, 4), np.float64), "score": np.zeros(0, np.float64)}


def _concat(parts):
    if not parts:
        return _empty_arrays()
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _select_topk(arrays, topk):
    """The ``topk`` best of each category (ties: lower image id, then earlier row), sorted by category,
    descending score, image id, row."""
    order = np.lexsort((arrays["row"], arrays["image_id"], -arrays["score"], arrays["category_id"]))
    cats = arrays["category_id"][order]
    if topk >= 0 and order.size:
        starts = np.flatnonzero(np.r_[True, cats[1:] != cats[:-1]])
        rank = np.arange(order.size) - np.repeat(starts, np.diff(np.r_[starts, order.size]))
        order = order[rank < topk]
    return {key: value[order] for key, value in arrays.items()}


class TopKPerClass:
    """Streaming per-class top-``topk`` of detections, for AP^Fixed over a split too large to keep whole.

    Feed it each image's detections once (:meth:`add`); a repeated image id is skipped (the first copy
    wins, as in :func:`~yolox.evaluators.detection_gather.run_detector`). Incoming rows go to a buffer,
    after a cheap drop of those scoring below their category's current ``topk``-th best; when the buffer
    outgrows the kept set (and ``prune_rows``), both are cut back to the ``topk`` best per category. Memory:
    O(categories x topk + prune_rows).

    Selection and ties are the reference's on the evaluator's results list (images by ascending id, rows
    in order): among equal scores the lower image id, then the earlier row, is kept.
    """

    def __init__(self, topk=FIXED_AP_TOPK, prune_rows=1 << 20):
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        self.topk = int(topk)
        self.prune_rows = int(prune_rows)
        self.seen = set()
        self._kept = _empty_arrays()
        self._pending = []
        self._pending_rows = 0
        self._threshold = {}  # category id -> score of its topk-th kept detection (categories that are full)

    def add(self, image_id, rows):
        """Add one image's detections: ``rows`` ``[K, 6]`` (category_id, x, y, w, h, score)."""
        image_id = int(image_id)
        if image_id in self.seen:
            return
        self.seen.add(image_id)
        rows = np.asarray(rows, np.float64).reshape(-1, 6)
        if rows.shape[0] == 0:
            return
        cats = rows[:, 0].astype(np.int64)
        index = np.arange(rows.shape[0], dtype=np.int64)
        if self._threshold:
            present = np.unique(cats)
            thr = np.array([self._threshold.get(int(c), -math.inf) for c in present])
            floor = thr[np.searchsorted(present, cats)]
            keep = rows[:, 5] >= floor  # ties survive: the prune decides them by image id and row
            rows, cats, index = rows[keep], cats[keep], index[keep]
            if rows.shape[0] == 0:
                return
        self._pending.append({"image_id": np.full(rows.shape[0], image_id, np.int64), "row": index,
                              "category_id": cats, "box": rows[:, 1:5].copy(), "score": rows[:, 5].copy()})
        self._pending_rows += rows.shape[0]
        if self._pending_rows >= max(self._kept["score"].size, self.prune_rows):
            self._prune()

    def _prune(self):
        if not self._pending:
            return  # the kept set is already cut and sorted
        self._kept = _select_topk(_concat([self._kept] + self._pending), self.topk)
        self._pending, self._pending_rows = [], 0
        cats = self._kept["category_id"]
        starts = np.flatnonzero(np.r_[True, cats[1:] != cats[:-1]]) if cats.size else np.zeros(0, np.int64)
        counts = np.diff(np.r_[starts, cats.size])
        full = starts[counts == self.topk]
        self._threshold = {int(cats[s]): float(self._kept["score"][s + self.topk - 1]) for s in full}

    def arrays(self):
        """The kept detections as arrays ``image_id row category_id box score``, sorted by category, then
        descending score, image id, row."""
        self._prune()
        return dict(self._kept)

    def state(self):
        """Picklable state (kept arrays and the seen image ids), for gathering across ranks."""
        return {"arrays": self.arrays(), "seen": np.array(sorted(self.seen), np.int64)}

    @classmethod
    def merge(cls, states, topk=FIXED_AP_TOPK):
        """One :class:`TopKPerClass` from the states of several ranks, in rank order. An image seen by
        several ranks (a DistributedSampler pads its last round) counts once: the lowest rank's copy."""
        merged = cls(topk)
        parts = []
        for state in states:
            arrays, seen = state["arrays"], state["seen"]
            owned = np.array(sorted(set(seen.tolist()) - merged.seen), np.int64)
            keep = np.isin(arrays["image_id"], owned)
            parts.append({key: value[keep] for key, value in arrays.items()})
            merged.seen.update(owned.tolist())
        merged._kept = _select_topk(_concat(parts), merged.topk)
        return merged

    def counts(self):
        """``{category_id: kept detections}``."""
        cats, counts = np.unique(self.arrays()["category_id"], return_counts=True)
        return dict(zip(cats.tolist(), counts.tolist()))

    def to_coco(self, gt=None):
        """COCO-style results of the kept detections, images by ascending id, rows in their original order
        (the order the reference's results list had). With the ground truth ``gt`` (loaded LVIS dict) only
        the detections that LVIS evaluates are returned (see :func:`federated_mask`): with no per-image
        limit the others cannot change the result, and the list is then far shorter."""
        a = self.arrays()
        order = np.lexsort((a["row"], a["image_id"]))
        if gt is not None:
            order = order[federated_mask(gt, a["image_id"][order], a["category_id"][order])]
        image_id, cats = a["image_id"][order].tolist(), a["category_id"][order].tolist()
        boxes, scores = a["box"][order].tolist(), a["score"][order].tolist()
        return [{"image_id": i, "category_id": c, "bbox": b, "score": s}
                for i, c, b, s in zip(image_id, cats, boxes, scores)]


def gather_topk_per_class(accumulator, distributed=None):
    """Rank 0's merge of every rank's :class:`TopKPerClass` (None on other ranks)."""
    if distributed is None:
        distributed = get_world_size() > 1
    if not (distributed and get_world_size() > 1):
        return accumulator
    gathered = [None] * get_world_size() if get_rank() == 0 else None
    dist.gather_object(accumulator.state(), gathered, dst=0)
    if get_rank() != 0:
        return None
    return TopKPerClass.merge(gathered, accumulator.topk)


def federated_mask(gt, image_id, category_id):
    """Bool mask of the detections LVIS evaluates: category annotated in the image or listed in its
    ``neg_category_ids``. Without a per-image limit, dropping the others leaves every LVIS number as is."""
    pairs = {(int(a["image_id"]), int(a["category_id"])) for a in gt.get("annotations", [])}
    for img in gt["images"]:
        pairs.update((int(img["id"]), int(c)) for c in img.get("neg_category_ids", ()))
    if not pairs:
        return np.zeros(len(image_id), bool)
    num = max(max(c for _, c in pairs), int(np.max(category_id, initial=0))) + 1
    keys = np.unique(np.array([i * num + c for i, c in pairs], np.int64))
    query = np.asarray(image_id, np.int64) * num + np.asarray(category_id, np.int64)
    return np.isin(query, keys)


def fixed_ap_eval_per_category(gt_json_path, results, topk=FIXED_AP_TOPK, class_image_counts=None, engine="fast"):
    """AP^Fixed of COCO-style ``results``: the reference's per-category top-``topk`` cut
    (:func:`topk_per_class`), then LVIS evaluation with no per-image limit.

    Returns ``(metrics, per_category)`` as :func:`~yolox.evaluators.lvis_evaluator.lvis_eval_per_category`.
    """
    from .lvis_evaluator import lvis_eval_per_category

    return lvis_eval_per_category(gt_json_path, topk_per_class(results, topk), -1, class_image_counts, engine)


def fixed_ap_eval(gt_json_path, results, topk=FIXED_AP_TOPK, class_image_counts=None, engine="fast"):
    """AP^Fixed metrics (``AP AP50 AP75 APs APm APl APr APc APf``, fractions; NaN where nothing is evaluated)
    of COCO-style ``results``: per category its ``topk`` best detections over the dataset, no per-image
    limit, the LVIS rules otherwise."""
    return fixed_ap_eval_per_category(gt_json_path, results, topk, class_image_counts, engine)[0]


def _federated_outcomes(gt, results):
    """Each evaluated detection's LVIS outcome with no per-image limit: the matching of
    :func:`~yolox.evaluators.fast_lvis.lvis_precision` (``max_dets=-1``), kept per detection so that it can
    be accumulated per category (AP^Fixed) and per pool (AP^Pool) alike.

    Args:
        gt: loaded LVIS dict.
        results: COCO-style list of ``{image_id, category_id, bbox [x, y, w, h], score}``.

    Returns:
        (data, det): the ground truth's :class:`~yolox.evaluators.fast_lvis.GroundTruth` (``cat_ids`` [K],
        ``num_gt`` int [K, A] counted ground truths per category and area range), and ``det``, a dict over
        the N detections LVIS evaluates (positive or negative category of the image, area in (0, inf)):
        ``cat_index``, ``img_index``, ``index`` (position in ``results``) int64 [N], ``score`` float64 [N],
        ``tp`` and ``fp`` bool [N, T=10, A=4]; sorted by category, then descending score, image, position.
    """
    data = GroundTruth(gt)
    image_id, category_id, score, box = parse_results(results)
    unknown = ~in_sorted(image_id, data.img_ids)
    if unknown.any():
        raise ValueError(f"results for images not in the ground truth: {np.unique(image_id[unknown])[:10].tolist()}")
    area = box[:, 2] * box[:, 3]
    index = np.flatnonzero((area > 0) & (area < np.inf) & in_sorted(category_id, data.cat_ids))
    img_index = np.searchsorted(data.img_ids, image_id[index])
    cat_index = np.searchsorted(data.cat_ids, category_id[index])
    key = data.pair_key(img_index, cat_index)
    evaluated = in_sorted(key, data.evaluated_keys)
    index, img_index, cat_index, key = index[evaluated], img_index[evaluated], cat_index[evaluated], key[evaluated]
    order = np.lexsort((index, img_index, -score[index], cat_index))
    index, img_index, cat_index, key = index[order], img_index[order], cat_index[order], key[order]

    unmatched_ignored = outside_areas(area[index]) | in_sorted(key, data.not_exhaustive_keys)[:, None]  # [N, A]
    matched = np.zeros((index.size, IOU_THRESHOLDS.size, unmatched_ignored.shape[1]), bool)
    matched_ignored = np.zeros_like(matched)
    with_gt = np.flatnonzero(in_sorted(key, data.pair_keys))
    by_pair = with_gt[np.argsort(key[with_gt], kind="stable")]
    matched[by_pair], matched_ignored[by_pair] = match_pairs(data, key[by_pair], box[index[by_pair]])
    det = {"cat_index": cat_index, "img_index": img_index, "index": index, "score": score[index],
           "tp": matched & ~matched_ignored, "fp": ~matched & ~unmatched_ignored[:, None, :]}
    return data, det


def _per_category_precision(data, det):
    """lvis-api's precision ``[T, R, K, A]`` (-1: no counted ground truth) from :func:`_federated_outcomes`."""
    precision = -np.ones((IOU_THRESHOLDS.size, RECALL_THRESHOLDS.size) + data.num_gt.shape)
    cat_start = np.searchsorted(det["cat_index"], np.arange(data.cat_ids.size + 1))
    for k in np.flatnonzero((data.num_gt > 0).any(1)):
        s, e = cat_start[k], cat_start[k + 1]
        precision[:, :, k, :] = category_precision(det["tp"][s:e], det["fp"][s:e], data.num_gt[k])
    return precision


def _pooled_ap(data, det, in_pool):
    """AP (IoU 0.50:0.95, area "all") of the categories ``in_pool`` (bool [K]) ranked as one: their
    detections by descending score (ties: image, category, position), recall over all their counted
    ground truth. NaN when the pool has none."""
    num_gt = data.num_gt[in_pool, :1].sum(0)  # area "all"
    if num_gt[0] == 0:
        return math.nan
    sel = np.flatnonzero(in_pool[det["cat_index"]])
    sel = sel[np.lexsort((det["index"][sel], det["cat_index"][sel], det["img_index"][sel], -det["score"][sel]))]
    precision = category_precision(det["tp"][sel, :, :1], det["fp"][sel, :, :1], num_gt)  # [T, R, 1]
    return float(np.mean(precision))


def fixed_and_pooled_ap_eval(gt_json_path, results, topk=FIXED_AP_TOPK, class_image_counts=None):
    """AP^Fixed and AP^Pool of COCO-style ``results`` from one LVIS matching.

    Both keep, per category, its ``topk`` best detections over the dataset (:func:`topk_per_class`;
    ``topk < 0``: results already cut, used as given) and no per-image limit. AP^Fixed averages per-category
    APs (the LVIS summary); AP^Pool ranks the detections of all categories of a pool together (see the
    module docstring).

    Args:
        gt_json_path: LVIS json path or its loaded dict.
        results: COCO-style list of ``{image_id, category_id, bbox [x, y, w, h], score}``; may be empty.
        topk: detections kept per category.
        class_image_counts: ``{category_id: training image count}`` for categories whose json entry lacks
            ``image_count``/``frequency`` (they decide the r/c/f groups and pools).

    Returns:
        (fixed, per_category, pooled): ``fixed`` and ``per_category`` as
        :func:`~yolox.evaluators.lvis_evaluator.lvis_eval_per_category` (``max_dets=-1``); ``pooled`` a dict
        ``AP APr APc APf`` (fractions): all categories pooled, then each frequency group pooled; NaN for a
        pool without ground truth in the evaluated images.
    """
    from .coco_evaluator import load_gt
    from .lvis_evaluator import category_table, per_category_rows

    gt = load_gt(gt_json_path)
    categories = category_table(gt.get("categories", []), class_image_counts)
    if topk >= 0:
        results = topk_per_class(results, topk)
    data, det = _federated_outcomes(gt, results)
    precision = _per_category_precision(data, det)
    cat_ids = [int(c) for c in data.cat_ids]
    freq_of = np.array([categories[c][1] for c in cat_ids])
    fixed = summarize_precision(precision, freq_of)
    per_category = per_category_rows(precision, cat_ids, categories)
    pools = {"AP": np.ones(len(cat_ids), bool), "APr": freq_of == "r", "APc": freq_of == "c", "APf": freq_of == "f"}
    pooled = {key: _pooled_ap(data, det, pools[key]) for key in POOLED_AP_KEYS}
    return fixed, per_category, pooled


def pooled_ap_eval(gt_json_path, results, topk=FIXED_AP_TOPK, class_image_counts=None):
    """AP^Pool (``AP APr APc APf``, fractions; NaN for a pool without ground truth) of COCO-style
    ``results``: per category its ``topk`` best detections over the dataset, no per-image limit, the
    detections of all categories (then of each frequency group) ranked together with the LVIS rules."""
    return fixed_and_pooled_ap_eval(gt_json_path, results, topk, class_image_counts)[2]


def uncapped_postprocess_fn(postprocess_fn):
    """The post-processing ``postprocess_fn`` without its per-image cap: a ``functools.partial`` of
    :func:`~yolox.utils.boxes.multilabel_postprocess` or :func:`~yolox.utils.boxes.level_topk_postprocess`
    (their ``max_det``) with ``max_det=None``; their pre-NMS top-k stays. None gives the multi-label
    default. Anything else raises: pass the uncapped function yourself."""
    from functools import partial

    from yolox.utils.boxes import level_topk_postprocess, multilabel_postprocess

    if postprocess_fn is None:
        return partial(multilabel_postprocess, max_det=None)
    func = postprocess_fn.func if isinstance(postprocess_fn, partial) else postprocess_fn
    if func not in (multilabel_postprocess, level_topk_postprocess):
        raise ValueError(f"AP^Fixed needs the post-processing without its per-image cap; {postprocess_fn!r} is not "
                         "multilabel_postprocess or level_topk_postprocess: pass fixed_ap_postprocess_fn")
    args = postprocess_fn.args if isinstance(postprocess_fn, partial) else ()
    keywords = dict(postprocess_fn.keywords) if isinstance(postprocess_fn, partial) else {}
    keywords["max_det"] = None
    return partial(func, *args, **keywords)


def run_detector_fixed_ap(model, dataloader, postprocess_fn, fixed_postprocess_fn, num_classes, confthre,
                          fixed_confthre, nmsthre, img_size, class_ids, topk=FIXED_AP_TOPK, half=False):
    """:func:`~yolox.evaluators.detection_gather.run_detector` that also streams, from the same forward
    passes, ``fixed_postprocess_fn``'s (uncapped, threshold ``fixed_confthre``) detections into a
    :class:`TopKPerClass`.

    Returns ``(per_image, stats, accumulator)``; ``stats['nms_s']`` times the standard post-processing
    only, ``stats['fixed_ap_s']`` the extra post-processing and top-k bookkeeping.
    """
    import time

    import torch
    from tqdm import tqdm

    from yolox.utils import is_main_process

    from .detection_gather import as_int_list

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = torch.float16 if half else (param.dtype if param is not None else torch.float32)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    per_image = {}
    accumulator = TopKPerClass(topk)
    forward_s = nms_s = fixed_s = 0.0
    with torch.no_grad():
        for imgs, _, info_imgs, ids in tqdm(dataloader, disable=not is_main_process(), desc="eval (+AP fixed)"):
            imgs = imgs.to(device=device, dtype=dtype)
            sync()
            t0 = time.perf_counter()
            outputs = model(imgs).float()
            sync()
            t1 = time.perf_counter()
            heights, widths = as_int_list(info_imgs[0]), as_int_list(info_imgs[1])
            kwargs = dict(input_hw=tuple(imgs.shape[-2:]), image_hw=letterboxed_sizes(heights, widths, img_size))
            standard = postprocess_fn(outputs, num_classes, confthre, nmsthre, **kwargs)
            sync()
            t2 = time.perf_counter()
            uncapped = fixed_postprocess_fn(outputs, num_classes, fixed_confthre, nmsthre, **kwargs)
            image_ids = as_int_list(ids)
            for img_id, rows in zip(image_ids, outputs_to_rows(uncapped, heights, widths, img_size, class_ids)):
                accumulator.add(img_id, rows)
            t3 = time.perf_counter()
            forward_s += t1 - t0
            nms_s += t2 - t1
            fixed_s += t3 - t2
            for img_id, rows in zip(image_ids, outputs_to_rows(standard, heights, widths, img_size, class_ids)):
                per_image.setdefault(img_id, rows)
    stats = {"images": len(per_image), "forward_s": forward_s, "nms_s": nms_s, "fixed_ap_s": fixed_s}
    return per_image, stats, accumulator
