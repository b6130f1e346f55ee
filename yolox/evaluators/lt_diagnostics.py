"""Where a long-tailed detector loses AP: localisation or classification, per frequency group.

For every ground-truth instance, against the detections the LVIS protocol keeps (top 300 per image):

- ``located``: some detection of *any* class overlaps it at IoU >= t;
- ``recalled``: a detection of *its* class does (so its class's AP at t is capped by this recall);
- ``top1``: the best-scoring overlapping detection carries its class (what a single-label detector shows).

A detector that locates objects but ranks the wrong classes first has high ``located`` and low ``top1``.
"""
from collections import defaultdict

import numpy as np

from .fast_lvis import box_iou_xywh

__all__ = ["recall_by_group", "rare_hits_by_image", "detect_validation_set"]

GROUPS = ("r", "c", "f")


def _by_image(items):
    grouped = defaultdict(list)
    for item in items:
        grouped[item["image_id"]].append(item)
    return grouped


def _iou_matrix(anns, dets):
    """``[G, D]`` IoU of annotations against detections (xywh boxes)."""
    gt = np.asarray([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 1, 4)
    dt = np.asarray([d["bbox"] for d in dets], dtype=np.float64).reshape(1, -1, 4)
    return box_iou_xywh(dt, gt)


def recall_by_group(gt, detections, iou_thresh=0.5):
    """Localisation / classification recall of every annotated instance, per frequency group.

    Args:
        gt: LVIS-format dict: ``images``, ``annotations`` (``bbox`` xywh), ``categories`` with ``frequency``.
        detections: list of ``{"image_id", "category_id", "bbox" (xywh), "score"}`` (already limited to
            what the metric keeps, e.g. the evaluator's top 300 per image).
        iou_thresh: overlap that counts as a hit.
    Returns:
        ``{group: {"instances": n, "located": f, "recalled": f, "top1": f}}`` for the groups ``r``, ``c``,
        ``f`` present and ``all``; the three rates are fractions of the group's instances.
    """
    frequency = {c["id"]: c.get("frequency", "f") for c in gt["categories"]}
    dets_by_image = _by_image(detections)
    counts = defaultdict(lambda: np.zeros(4))  # instances, located, recalled, top1
    for image_id, anns in _by_image(gt["annotations"]).items():
        dets = dets_by_image.get(image_id, [])
        gt_cls = np.array([a["category_id"] for a in anns])
        hits = np.zeros((len(anns), 3), dtype=bool)
        if dets:
            iou = _iou_matrix(anns, dets)
            det_cls = np.array([d["category_id"] for d in dets])
            score = np.array([d["score"] for d in dets], dtype=np.float64)
            overlap = iou >= iou_thresh
            hits[:, 0] = overlap.any(axis=1)
            hits[:, 1] = (overlap & (det_cls[None, :] == gt_cls[:, None])).any(axis=1)
            best = np.where(overlap, score[None, :], -np.inf).argmax(axis=1)
            hits[:, 2] = hits[:, 0] & (det_cls[best] == gt_cls)
        for cls, row in zip(gt_cls, hits):
            for group in (frequency[int(cls)], "all"):
                counts[group] += np.concatenate([[1.0], row.astype(np.float64)])
    out = {}
    for group in (*GROUPS, "all"):
        if group in counts:
            n, located, recalled, top1 = counts[group]
            out[group] = {"instances": int(n), "located": located / n, "recalled": recalled / n, "top1": top1 / n}
    return out


def rare_hits_by_image(gt, detections, score_thresh, iou_thresh=0.5):
    """Per image: ``(rare instances, rare instances overlapped at IoU >= t by a detection of their own class
    scoring >= score_thresh)``, for choosing and describing a demo picture. Images without rare instances
    are left out."""
    rare = {c["id"] for c in gt["categories"] if c.get("frequency") == "r"}
    dets_by_image = _by_image(d for d in detections if d["score"] >= score_thresh and d["category_id"] in rare)
    out = {}
    for image_id, anns in _by_image(a for a in gt["annotations"] if a["category_id"] in rare).items():
        dets = dets_by_image.get(image_id, [])
        hits = 0
        if dets:
            gt_cls = np.array([a["category_id"] for a in anns])
            det_cls = np.array([d["category_id"] for d in dets])
            same_class = gt_cls[:, None] == det_cls[None, :]
            hits = int(((_iou_matrix(anns, dets) >= iou_thresh) & same_class).any(axis=1).sum())
        out[image_id] = (len(anns), hits)
    return out


def detect_validation_set(exp, ckpt_path, batch_size=16):
    """The experiment's validation detections of a checkpoint (CPU, the experiment's post-processing, at most
    ``exp.max_det`` per image) as COCO-style results, and the ground-truth json path."""
    from yolox.utils.checkpoint import load_model_weights

    from .detection_gather import detections_to_coco, gather_detections, resolve_gt_json, run_detector

    model = exp.get_model()
    load_model_weights(model, ckpt_path)  # a checkpoint of another experiment fails here, not as recall 0
    model.eval()
    loader = exp.get_eval_loader(batch_size, False)
    dataset = loader.dataset
    per_image, stats = run_detector(model, loader, exp.postprocess_fn(), exp.num_classes, exp.test_conf,
                                    exp.nmsthre, exp.test_size, dataset.class_ids, False)
    merged, _ = gather_detections(per_image, stats, None)
    return detections_to_coco(merged), resolve_gt_json(dataset)
