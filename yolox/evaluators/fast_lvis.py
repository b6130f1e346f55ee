"""Vectorised LVIS box evaluation that reproduces the official lvis-api (0.5.3) bit for bit.

The federated protocol makes most (image, category) pairs of a detector's output either irrelevant (the
category is neither annotated nor a negative of the image: dropped) or free of ground truth (every
detection is a false positive, or ignored when the category is not exhaustively annotated). Only the
pairs with ground truth need IoUs and greedy matching; those are few and are matched all together, one
detection rank at a time. The per-category cumulative precision/recall is then computed on score-sorted
arrays with numpy.

Every rule below is the official one, including its quirks (see ``lvis/eval.py``):

* ``max_dets`` per image: the best scores, ties in input order (``LVISResults.limit_dets_per_image``);
  it applies before any filtering. A detection's area is ``w * h``.
* Ground truth and detections with area not in (0, inf) are dropped (``LVIS.get_ann_ids``).
* Detection order: by descending score; ties by image id, then input order (two stable sorts).
* Matching per IoU threshold: a detection takes, among the unmatched ground truths with IoU >= threshold,
  the one of highest IoU, non-ignored ones first; on equal IoU the later one (json order) wins.
* Ignored ground truth (``ignore`` flag, or area outside the range, bounds inclusive) is not counted; a
  detection matched to it is ignored, as is an unmatched detection outside the area range or of a
  not-exhaustive category.
* Precision: ``tp / (tp + fp + eps)``, made non-increasing from the right, read at the first index where
  recall >= each of 101 recall thresholds (0 past the end); -1 where a category has no counted ground truth.
"""
import math
from itertools import chain
from operator import itemgetter

import numpy as np

__all__ = ["IOU_THRESHOLDS", "RECALL_THRESHOLDS", "AREA_RANGES", "AREA_LABELS", "box_iou_xywh",
           "lvis_precision", "summarize_precision", "GroundTruth", "category_precision", "in_sorted",
           "match_pairs", "outside_areas", "parse_results"]

# The official linspaces (np.arange would drift); thresholds are compared with == in the summary.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = ((0 ** 2, 1e5 ** 2), (0 ** 2, 32 ** 2), (32 ** 2, 96 ** 2), (96 ** 2, 1e5 ** 2))
AREA_LABELS = ("all", "small", "medium", "large")


def box_iou_xywh(dt, gt):
    """IoU of paired boxes, with pycocotools' ``bbIou`` float64 operations in the same order.

    Args:
        dt, gt: float64 arrays ``[..., 4]`` of ``[x, y, w, h]`` boxes, broadcastable.

    Returns:
        float64 array ``[...]``; 0 where the boxes do not overlap.
    """
    inter_w = np.minimum(dt[..., 2] + dt[..., 0], gt[..., 2] + gt[..., 0]) - np.maximum(dt[..., 0], gt[..., 0])
    inter_h = np.minimum(dt[..., 3] + dt[..., 1], gt[..., 3] + gt[..., 1]) - np.maximum(dt[..., 1], gt[..., 1])
    overlap = (inter_w > 0) & (inter_h > 0)
    inter = inter_w * inter_h
    union = dt[..., 2] * dt[..., 3] + gt[..., 2] * gt[..., 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(overlap, inter / np.where(overlap, union, 1.0), 0.0)


def in_sorted(values, sorted_set):
    """Boolean mask: which of ``values`` are in the sorted unique int array ``sorted_set``."""
    if sorted_set.size == 0:
        return np.zeros(values.shape, bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), sorted_set.size - 1)
    return sorted_set[pos] == values


def outside_areas(area):
    """``[len(area), A]`` bool: area outside each official range (bounds inclusive, as lvis-api)."""
    lo = np.array([r[0] for r in AREA_RANGES], np.float64)
    hi = np.array([r[1] for r in AREA_RANGES], np.float64)
    return (area[:, None] < lo) | (area[:, None] > hi)


def parse_results(results):
    """COCO-style result dicts -> (image_id int64 [N], category_id int64 [N], score f64 [N], box f64 [N, 4])."""
    n = len(results)
    image_id = np.fromiter(map(itemgetter("image_id"), results), np.int64, n)
    category_id = np.fromiter(map(itemgetter("category_id"), results), np.int64, n)
    score = np.fromiter(map(itemgetter("score"), results), np.float64, n)
    box = np.fromiter(chain.from_iterable(map(itemgetter("bbox"), results)), np.float64, 4 * n).reshape(n, 4)
    return image_id, category_id, score, box


def _limit_per_image(image_id, score, max_dets):
    """Bool mask of the ``max_dets`` best scores of each image, ties kept in input order."""
    if max_dets < 0:
        return np.ones(image_id.shape, bool)
    order = np.lexsort((-score, image_id))  # stable: equal scores stay in input order
    sorted_img = image_id[order]
    starts = np.flatnonzero(np.r_[True, sorted_img[1:] != sorted_img[:-1]])
    rank = np.arange(order.size) - np.repeat(starts, np.diff(np.r_[starts, order.size]))
    keep = np.zeros(order.size, bool)
    keep[order[rank < max_dets]] = True
    return keep


class GroundTruth:
    """The ground-truth arrays the evaluation needs, built once from an LVIS dict."""

    def __init__(self, gt):
        self.img_ids = np.unique(np.array([img["id"] for img in gt["images"]], np.int64))
        self.cat_ids = np.unique(np.array([c["id"] for c in gt.get("categories", [])], np.int64))
        num_cats = max(self.cat_ids.size, 1)
        self.num_cats = num_cats

        anns = gt.get("annotations", [])
        n = len(anns)
        img = np.fromiter(map(itemgetter("image_id"), anns), np.int64, n)
        cat = np.fromiter(map(itemgetter("category_id"), anns), np.int64, n)
        area = np.fromiter(map(itemgetter("area"), anns), np.float64, n)
        box = np.fromiter(chain.from_iterable(map(itemgetter("bbox"), anns)), np.float64, 4 * n).reshape(n, 4)
        ignore = np.fromiter((bool(a.get("ignore", 0)) for a in anns), bool, n)
        # lvis-api loads ground truth of known images and categories with 0 < area < inf only.
        keep = in_sorted(img, self.img_ids) & in_sorted(cat, self.cat_ids) & (area > 0) & (area < np.inf)
        img, cat, area, box, ignore = img[keep], cat[keep], area[keep], box[keep], ignore[keep]
        self.key = self.pair_key(np.searchsorted(self.img_ids, img), np.searchsorted(self.cat_ids, cat))
        self.cat_index = np.searchsorted(self.cat_ids, cat)
        self.box = box
        # [G, A]: not counted in area range a (bounds inclusive, as lvis-api).
        self.ignored = ignore[:, None] | outside_areas(area)

        # Pairs with ground truth, their boxes contiguous in json order.
        self.order = np.argsort(self.key, kind="stable")
        self.pair_keys, self.pair_start, self.pair_count = np.unique(self.key[self.order], return_index=True,
                                                                      return_counts=True)

        neg, nel = [], []
        for image in gt["images"]:
            i = np.searchsorted(self.img_ids, image["id"])
            for ids, out in ((image.get("neg_category_ids", ()), neg), (image.get("not_exhaustive_category_ids", ()),
                                                                        nel)):
                ids = np.asarray(ids, np.int64)
                ids = ids[in_sorted(ids, self.cat_ids)]
                out.append(self.pair_key(np.full(ids.size, i), np.searchsorted(self.cat_ids, ids)))
        neg = np.concatenate(neg) if neg else np.zeros(0, np.int64)
        self.evaluated_keys = np.union1d(self.pair_keys, neg)  # positive or negative categories of each image
        self.not_exhaustive_keys = np.unique(np.concatenate(nel)) if nel else np.zeros(0, np.int64)

        # [K, A]: counted ground truths per category and area range.
        self.num_gt = np.zeros((self.cat_ids.size, len(AREA_RANGES)), np.int64)
        np.add.at(self.num_gt, self.cat_index, ~self.ignored)

    def pair_key(self, img_index, cat_index):
        return img_index.astype(np.int64) * self.num_cats + cat_index


def match_pairs(gt, det_key, det_box):
    """Greedy matching of the detections of (image, category) pairs that have ground truth.

    Args:
        gt: :class:`GroundTruth`.
        det_key: int64 ``[D]`` pair keys, every one in ``gt.pair_keys``; each pair's detections contiguous
            and in descending score order (ties in lvis-api's order).
        det_box: float64 ``[D, 4]``.

    Returns:
        (matched, matched_ignored): bool ``[D, T, A]``.
    """
    num_t, num_a = IOU_THRESHOLDS.size, len(AREA_RANGES)
    matched = np.zeros((det_key.size, num_t, num_a), bool)
    matched_ignored = np.zeros_like(matched)
    if det_key.size == 0:
        return matched, matched_ignored
    pair = np.searchsorted(gt.pair_keys, det_key)
    starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
    counts = np.diff(np.r_[starts, det_key.size])
    pairs = pair[starts]
    num_gt = gt.pair_count[pairs]
    # Pad each pair's ground truth to a power of two, and match the pairs of each padding together.
    padded = 1 << np.ceil(np.log2(num_gt)).astype(np.int64)
    thresholds = IOU_THRESHOLDS[None, :, None, None]
    for width in np.unique(padded):
        sel = np.flatnonzero(padded == width)
        sel = sel[np.argsort(-counts[sel], kind="stable")]  # the pairs with most detections first
        n_pairs, n_dets = sel.size, counts[sel]
        slot = np.arange(width)
        valid = slot[None, :] < num_gt[sel, None]  # [P, W]
        gt_rows = gt.order[gt.pair_start[pairs[sel], None] + np.minimum(slot[None, :], num_gt[sel, None] - 1)]
        gt_box = gt.box[gt_rows]  # [P, W, 4]
        gt_ignored = np.transpose(gt.ignored[gt_rows], (0, 2, 1))[:, None]  # [P, 1, A, W]
        taken = np.zeros((n_pairs, num_t, num_a, width), bool)
        for rank in range(int(n_dets[0])):
            active = int(np.searchsorted(-n_dets, -(rank + 1), side="right"))  # pairs with more than `rank` dets
            rows = starts[sel[:active]] + rank
            iou = np.where(valid[:active], box_iou_xywh(det_box[rows][:, None, :], gt_box[:active]), -1.0)
            iou = iou[:, None, None, :]  # [p, 1, 1, W]
            free = ~taken[:active] & (iou >= thresholds)  # [p, T, A, W]
            choice = np.zeros((active, num_t, num_a), np.int64)
            found_regular = np.zeros((active, num_t, num_a), bool)
            for want_ignored in (False, True):
                cand = free & (gt_ignored[:active] == want_ignored)
                value = np.where(cand, iou, -np.inf)[..., ::-1]
                last_best = width - 1 - np.argmax(value, axis=-1)  # highest IoU, the later one on ties
                has = cand.any(-1)
                if not want_ignored:
                    choice, found_regular = last_best, has
                else:
                    choice = np.where(found_regular, choice, last_best)
                    found_ignored = has & ~found_regular
            found = found_regular | found_ignored
            p_idx, t_idx, a_idx = np.nonzero(found)
            taken[p_idx, t_idx, a_idx, choice[p_idx, t_idx, a_idx]] = True
            matched[rows] = found
            matched_ignored[rows] = found_ignored
    return matched, matched_ignored


def category_precision(tp, fp, num_gt):
    """Interpolated precision at the recall thresholds of one category.

    Args:
        tp, fp: bool ``[n, T, A]`` in the category's detection order.
        num_gt: int ``[A]`` counted ground truths (> 0 where evaluated).

    Returns:
        float64 ``[T, R, A]``; -1 for area ranges with ``num_gt == 0``.
    """
    num_t, num_a, num_r = tp.shape[1], tp.shape[2], RECALL_THRESHOLDS.size
    out = -np.ones((num_t, num_r, num_a))
    if tp.shape[0] == 0:
        out[:, :, num_gt > 0] = 0.0
        return out
    tp_sum = np.cumsum(tp, axis=0, dtype=np.float64)
    fp_sum = np.cumsum(fp, axis=0, dtype=np.float64)
    precision = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1], axis=0)[::-1]  # max precision to the right
    n = tp.shape[0]
    for a in np.flatnonzero(num_gt > 0):
        recall = tp_sum[:, :, a] / num_gt[a]
        for t in range(num_t):
            idx = np.searchsorted(recall[:, t], RECALL_THRESHOLDS, side="left")
            inside = idx < n
            row = np.zeros(num_r)
            row[inside] = precision[idx[inside], t, a]
            out[t, :, a] = row
    return out


def lvis_precision(gt, results, max_dets=300):
    """The official LVIS precision array of box ``results``.

    Args:
        gt: loaded LVIS dict (``images`` with ``neg_category_ids``/``not_exhaustive_category_ids``,
            ``annotations`` with ``bbox`` [x, y, w, h] and ``area`` in pixels, ``categories``).
        results: COCO-style list of ``{image_id, category_id, bbox [x, y, w, h], score}``; may be empty.
        max_dets: detections kept per image (best first); negative keeps all.

    Returns:
        (precision, cat_ids): float64 ``[T=10, R=101, K, A=4]`` (-1 where a category has no counted
        ground truth in an area range), and the sorted category ids ``[K]``.
    """
    data = GroundTruth(gt)
    num_t, num_a = IOU_THRESHOLDS.size, len(AREA_RANGES)
    num_k = data.cat_ids.size
    precision = -np.ones((num_t, RECALL_THRESHOLDS.size, num_k, num_a))

    image_id, category_id, score, box = parse_results(results)
    unknown = ~in_sorted(image_id, data.img_ids)
    if unknown.any():
        raise ValueError(f"results for images not in the ground truth: {np.unique(image_id[unknown])[:10].tolist()}")
    keep = _limit_per_image(image_id, score, max_dets)
    area = box[:, 2] * box[:, 3]
    keep &= (area > 0) & (area < np.inf) & in_sorted(category_id, data.cat_ids)
    index = np.flatnonzero(keep)
    img_index = np.searchsorted(data.img_ids, image_id[index])
    cat_index = np.searchsorted(data.cat_ids, category_id[index])
    key = data.pair_key(img_index, cat_index)
    evaluated = in_sorted(key, data.evaluated_keys)  # federated: positive or negative categories only
    index, img_index, cat_index, key = index[evaluated], img_index[evaluated], cat_index[evaluated], key[evaluated]

    # Category, then descending score, then image id, then input order: lvis-api's accumulation order.
    order = np.lexsort((index, img_index, -score[index], cat_index))
    index, cat_index, key = index[order], cat_index[order], key[order]
    area, box = area[index], box[index]

    # Unmatched detections are ignored outside the area range or in not-exhaustive categories.
    unmatched_ignored = outside_areas(area) | in_sorted(key, data.not_exhaustive_keys)[:, None]  # [N, A]
    matched = np.zeros((index.size, num_t, num_a), bool)
    matched_ignored = np.zeros_like(matched)
    with_gt = np.flatnonzero(in_sorted(key, data.pair_keys))
    by_pair = with_gt[np.argsort(key[with_gt], kind="stable")]  # each pair contiguous, score order kept
    matched[by_pair], matched_ignored[by_pair] = match_pairs(data, key[by_pair], box[by_pair])
    tp = matched & ~matched_ignored
    fp = ~matched & ~unmatched_ignored[:, None, :]

    cat_start = np.searchsorted(cat_index, np.arange(num_k + 1))
    for k in np.flatnonzero((data.num_gt > 0).any(1)):
        s, e = cat_start[k], cat_start[k + 1]
        precision[:, :, k, :] = category_precision(tp[s:e], fp[s:e], data.num_gt[k])
    return precision, data.cat_ids


def summarize_precision(precision, frequencies):
    """The nine LVIS metrics from a precision array, averaged as lvis-api's ``_summarize`` does.

    Args:
        precision: float64 ``[T, R, K, A]`` (-1: not evaluated).
        frequencies: ``[K]`` of 'r' / 'c' / 'f'.

    Returns:
        dict ``AP AP50 AP75 APs APm APl APr APc APf``; NaN where lvis-api reports -1.
    """

    def mean_valid(s):
        s = s[s > -1]
        return float(np.mean(s)) if s.size else math.nan

    area = {label: i for i, label in enumerate(AREA_LABELS)}
    frequencies = np.asarray(frequencies)
    metrics = {"AP": mean_valid(precision[..., area["all"]])}
    for name, thr in (("AP50", 0.50), ("AP75", 0.75)):
        metrics[name] = mean_valid(precision[np.flatnonzero(IOU_THRESHOLDS == thr), ..., area["all"]])
    for name, label in (("APs", "small"), ("APm", "medium"), ("APl", "large")):
        metrics[name] = mean_valid(precision[..., area[label]])
    for group in ("r", "c", "f"):
        metrics["AP" + group] = mean_valid(precision[:, :, frequencies == group, area["all"]])
    return metrics
