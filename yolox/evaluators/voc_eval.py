"""PASCAL VOC detection AP: the devkit's protocol as py-faster-rcnn and upstream YOLOX compute it.

Per class, detections are taken in decreasing score order; each is matched to the ground-truth box of its
image with the highest IoU (inclusive pixel coordinates: widths are ``x2 - x1 + 1``). IoU above the
threshold (strictly) with a box not yet matched is a true positive, with a box already matched a false
positive, with a ``difficult`` box neither; IoU at or below the threshold is a false positive. Recall
counts the non-difficult boxes only. AP is the VOC2007 11-point interpolated precision
(``use_07_metric``, recall thresholds ``np.arange(0, 1.1, 0.1)`` as the reference code draws them) or
the area under the monotone precision envelope (VOC2010 and later).

Since a detection's best box and its IoU do not depend on the threshold, they are computed once and every
threshold (0.5:0.95 for mAP50:95) costs one vectorised pass (:func:`voc_class_ap`).
"""
import os
import pickle

import numpy as np

from yolox.data.datasets.voc import parse_voc_objects, parse_voc_xml

__all__ = ["IOU_THRESHOLDS", "parse_rec", "voc_ap", "voc_class_ap", "voc_eval"]

# mAP50:95: IoU 0.50, 0.55, ..., 0.95
IOU_THRESHOLDS = tuple(float(t) for t in np.linspace(0.5, 0.95, 10))


def parse_rec(filename):
    """The objects of the VOC annotation file ``filename``: dicts with ``name``, ``bbox`` ([xmin, ymin, xmax,
    ymax] as written, 1-based inclusive pixels), ``difficult``, ``truncated`` and ``pose``
    (:func:`yolox.data.datasets.voc.parse_voc_objects`); a ``DatasetError`` names a missing or malformed file."""
    return parse_voc_objects(parse_voc_xml(filename), os.fspath(filename))


def voc_ap(rec, prec, use_07_metric=False):
    """AP from a recall / precision curve (arrays in detection order).

    ``use_07_metric``: the mean over the recall thresholds 0, 0.1, ..., 1 of the best precision at recall
    >= the threshold (0 where none); else the area under the precision envelope (the running maximum of
    precision from the right), summed where recall changes.
    """
    rec = np.asarray(rec, dtype=np.float64)
    prec = np.asarray(prec, dtype=np.float64)
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):  # the reference thresholds, 0.30000000000000004 included
            above = rec >= t
            ap += (prec[above].max() if above.any() else 0.0) / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _inclusive_iou_matrix(boxes, gts):
    """IoU [D, K] of boxes [D, 4] with boxes [K, 4], pixel-inclusive."""
    iw = np.minimum(boxes[:, None, 2], gts[None, :, 2]) - np.maximum(boxes[:, None, 0], gts[None, :, 0]) + 1.0
    ih = np.minimum(boxes[:, None, 3], gts[None, :, 3]) - np.maximum(boxes[:, None, 1], gts[None, :, 1]) + 1.0
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    area = (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0)
    gt_area = (gts[:, 2] - gts[:, 0] + 1.0) * (gts[:, 3] - gts[:, 1] + 1.0)
    return inter / (area[:, None] + gt_area[None, :] - inter)


def voc_class_ap(image_ids, scores, boxes, ground_truth, iou_thresholds=(0.5,), use_07_metric=False):
    """VOC AP of one class's detections at each IoU threshold.

    Args:
        image_ids: the image of each detection (any hashable keys of ``ground_truth``), length D.
        scores: [D] confidences; ties keep the given order (stable sort).
        boxes: [D, 4] (x1, y1, x2, y2) in the ground truth's coordinates (VOC: 1-based inclusive pixels).
        ground_truth: {image key: (boxes [K, 4], difficult [K] bool)} of this class over every evaluated
            image (images without a box of the class may be left out).
        iou_thresholds: thresholds t; a match needs IoU > t.
        use_07_metric: VOC2007's 11-point AP, else the area AP (see :func:`voc_ap`).

    Returns:
        list, one ``(rec, prec, ap)`` per threshold: recall and precision [D] in decreasing score order and
        AP (a float). Without a non-difficult ground-truth box recall is undefined: rec is NaN and ap NaN.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(image_ids) != len(scores) or len(scores) != len(boxes):
        raise ValueError(f"got {len(image_ids)} image ids, {len(scores)} scores and {len(boxes)} boxes")
    order = np.argsort(-scores, kind="stable")
    boxes = boxes[order]
    image_ids = [image_ids[i] for i in order]

    # every ground-truth box gets a global number; per detection: its best box (global number) and that IoU
    offsets, gt_difficult, npos = {}, [], 0
    for key, (gt_boxes, difficult) in ground_truth.items():
        difficult = np.asarray(difficult, dtype=bool).reshape(-1)
        offsets[key] = len(gt_difficult)
        gt_difficult.extend(difficult.tolist())
        npos += int((~difficult).sum())
    gt_difficult = np.asarray(gt_difficult, dtype=bool)
    best_iou = np.full(len(boxes), -np.inf)
    best_gt = np.zeros(len(boxes), dtype=np.int64)
    by_image = {}
    for d, key in enumerate(image_ids):
        by_image.setdefault(key, []).append(d)
    for key, rows in by_image.items():
        if key not in ground_truth:
            continue
        gt_boxes = np.asarray(ground_truth[key][0], dtype=np.float64).reshape(-1, 4)
        if len(gt_boxes) == 0:
            continue
        rows = np.asarray(rows)
        iou = _inclusive_iou_matrix(boxes[rows], gt_boxes)
        best_gt[rows] = offsets[key] + iou.argmax(1)
        best_iou[rows] = iou.max(1)

    results = []
    for t in iou_thresholds:
        hit = best_iou > t
        counted = hit & ~gt_difficult[best_gt] if len(gt_difficult) else np.zeros(len(boxes), dtype=bool)
        # among the detections hitting one box, the first in score order is the true positive
        tp = np.zeros(len(boxes))
        hits = np.flatnonzero(counted)
        _, first = np.unique(best_gt[hits], return_index=True)
        tp[hits[first]] = 1.0
        fp = (~hit | (counted & (tp == 0))).astype(np.float64)
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        if npos == 0:
            results.append((np.full(len(tp), np.nan), prec, float("nan")))
            continue
        rec = tp / float(npos)
        results.append((rec, prec, voc_ap(rec, prec, use_07_metric)))
    return results


def _load_records(annopath, imagesetfile, cachedir):
    """{image name: parse_rec(...)} of the images listed in ``imagesetfile``, cached under ``cachedir``."""
    with open(imagesetfile, "r", encoding="utf-8") as f:
        imagenames = [line.strip().split()[0] for line in f if line.strip()]
    annopath = str(annopath)
    cachefile = None
    if cachedir is not None:
        os.makedirs(cachedir, exist_ok=True)
        stem = os.path.splitext(os.path.basename(str(imagesetfile)))[0]
        cachefile = os.path.join(str(cachedir), f"annots_{stem}.pkl")
        try:
            with open(cachefile, "rb") as f:
                cached = pickle.load(f)
            # reused only for the same images and annotation files (another split never reads a stale cache)
            if cached.get("imagenames") == imagenames and cached.get("annopath") == annopath:
                return imagenames, cached["recs"]
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, KeyError, TypeError):
            pass
    recs = {name: parse_rec(annopath.format(name)) for name in imagenames}
    if cachefile is not None:
        tmp = f"{cachefile}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            pickle.dump({"imagenames": imagenames, "annopath": annopath, "recs": recs}, f)
        os.replace(tmp, cachefile)
    return imagenames, recs


def voc_eval(detpath, annopath, imagesetfile, classname, cachedir=None, ovthresh=0.5, use_07_metric=False):
    """VOC AP of one class from a detections file (upstream YOLOX's / py-faster-rcnn's interface).

    Args:
        detpath: detections file, a format string filled with ``classname`` (``.../comp4_det_test_{:s}.txt``);
            lines ``<image name> <score> <xmin> <ymin> <xmax> <ymax>`` in VOC pixel coordinates (1-based).
        annopath: annotation path format string filled with the image name (``.../Annotations/{:s}.xml``).
        imagesetfile: the image-set file listing the evaluated images (``ImageSets/Main/test.txt``).
        classname: the class evaluated (objects with this ``<name>``).
        cachedir: folder for a pickle of the parsed annotations (``annots_<set>.pkl``), reused while the
            image list and ``annopath`` are unchanged; None: parse every time.
        ovthresh: IoU threshold (a match needs IoU > ovthresh).
        use_07_metric: VOC2007's 11-point AP, else the area AP.

    Returns:
        (rec, prec, ap): recall and precision in decreasing score order, and AP (NaN when the class has no
        non-difficult object in the image set; 0.0 when there are objects but no detection).
    """
    imagenames, recs = _load_records(annopath, imagesetfile, cachedir)
    ground_truth = {}
    for name in imagenames:
        objects = [obj for obj in recs[name] if obj["name"] == classname]
        ground_truth[name] = (np.array([obj["bbox"] for obj in objects], dtype=np.float64).reshape(-1, 4),
                              np.array([obj["difficult"] for obj in objects], dtype=bool))

    detfile = str(detpath).format(classname)
    image_ids, scores, boxes = [], [], []
    with open(detfile, "r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 6:
                raise ValueError(f"{detfile}:{lineno}: expected '<image> <score> <x1> <y1> <x2> <y2>', got {line!r}")
            if fields[0] not in ground_truth:
                raise ValueError(f"{detfile}:{lineno}: image {fields[0]!r} is not in {imagesetfile}")
            image_ids.append(fields[0])
            scores.append(float(fields[1]))
            boxes.append([float(v) for v in fields[2:]])
    (rec, prec, ap), = voc_class_ap(image_ids, scores, boxes, ground_truth, (ovthresh,), use_07_metric)
    return rec, prec, ap
