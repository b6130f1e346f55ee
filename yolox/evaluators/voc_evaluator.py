"""The VOC evaluator: per-class AP at IoU 0.5 and their mean, and mAP over IoU 0.50:0.95, as upstream YOLOX
reports them for PASCAL VOC (the devkit's protocol, :mod:`yolox.evaluators.voc_eval`).

Detections are gathered from every rank like the COCO evaluator's (:mod:`yolox.evaluators.detection_gather`);
rank 0 scores them against the dataset's XML ground truth and the result is broadcast.
"""
import math
import os

import numpy as np

from .detection_gather import broadcast_from_main, gather_detections, kept_detections, run_detector
from .voc_eval import IOU_THRESHOLDS, voc_class_ap

__all__ = ["VOCEvaluator", "voc_metrics", "detections_from_all_boxes", "detections_from_rows", "write_voc_results"]

_RULE = "-" * 62


def detections_from_rows(per_image, num_classes):
    """``run_detector``'s ``{image index: [K, 6] (class, x, y, w, h, score)}`` (original 0-based pixels) ->
    ``{class: (image indices, scores [D], boxes [D, 4])}`` with boxes (x1, y1, x2, y2) in VOC's 1-based
    pixels (+1, as upstream writes its results files)."""
    out = {}
    rows = [(img, r) for img, r in per_image.items() if len(r)]
    stacked = np.concatenate([r for _, r in rows], 0) if rows else np.zeros((0, 6))
    owners = np.concatenate([np.full(len(r), img, dtype=np.int64) for img, r in rows]) if rows else np.zeros(0, int)
    boxes = np.stack([stacked[:, 1], stacked[:, 2], stacked[:, 1] + stacked[:, 3], stacked[:, 2] + stacked[:, 4]], 1)
    boxes = boxes + 1.0
    classes = stacked[:, 0].astype(np.int64)
    for c in range(num_classes):
        select = classes == c
        out[c] = (owners[select].tolist(), stacked[select, 5], boxes[select])
    return out


def detections_from_all_boxes(all_boxes):
    """Upstream's ``all_boxes[class][image]`` ([K, 5] x1, y1, x2, y2, score, original 0-based pixels) -> the
    ``{class: (image indices, scores, boxes 1-based)}`` of :func:`detections_from_rows`."""
    out = {}
    for c, per_image in enumerate(all_boxes):
        images, scores, boxes = [], [], []
        for img, dets in enumerate(per_image):
            dets = np.asarray(dets, dtype=np.float64).reshape(-1, 5)
            images.extend([img] * len(dets))
            scores.append(dets[:, 4])
            boxes.append(dets[:, :4] + 1.0)
        out[c] = (images, np.concatenate(scores) if scores else np.zeros(0),
                  np.concatenate(boxes) if boxes else np.zeros((0, 4)))
    return out


def voc_metrics(dataset, detections, use_07_metric=None, iou_thresholds=IOU_THRESHOLDS):
    """VOC AP of ``detections`` ({class: (image indices, scores, boxes 1-based)}) against ``dataset``'s
    ground truth (``VOCDetection.ground_truth``).

    Returns a dict: ``AP`` (mAP50:95, the mean over the thresholds of the mean over classes), ``AP50``,
    ``AP75``, ``per_class_AP50`` and ``per_class_AP`` ({class name: AP}, the latter averaged over the
    thresholds), ``ap_table`` ([T, C] list of lists) and ``metric`` ("VOC07 11-point" or "area"). A class
    without a non-difficult object has AP NaN and is left out of the means (NaN when no class has one).
    """
    if use_07_metric is None:
        use_07_metric = bool(getattr(dataset, "use_07_metric", False))
    names = list(getattr(dataset, "class_names", None) or [str(c) for c in sorted(detections)])
    table = np.full((len(iou_thresholds), len(names)), np.nan)
    for c in range(len(names)):
        images, scores, boxes = detections.get(c, ([], np.zeros(0), np.zeros((0, 4))))
        for t, (_, _, ap) in enumerate(voc_class_ap(images, scores, boxes, dataset.ground_truth(c), iou_thresholds,
                                                    use_07_metric)):
            table[t, c] = ap

    def mean(values):
        values = values[~np.isnan(values)]
        return float(values.mean()) if values.size else math.nan

    per_threshold = [mean(row) for row in table]
    row_of = {round(float(t), 2): i for i, t in enumerate(iou_thresholds)}
    ap50 = table[row_of[0.5]] if 0.5 in row_of else np.full(len(names), np.nan)
    return {
        "AP": mean(np.asarray(per_threshold)),
        "AP50": per_threshold[row_of[0.5]] if 0.5 in row_of else math.nan,
        "AP75": per_threshold[row_of[0.75]] if 0.75 in row_of else math.nan,
        "per_class_AP50": {n: float(ap50[c]) for c, n in enumerate(names)},
        "per_class_AP": {n: mean(table[:, c]) for c, n in enumerate(names)},
        "ap_table": table.tolist(),
        "metric": "VOC07 11-point" if use_07_metric else "area",
    }


def write_voc_results(dataset, detections, output_dir, prefix="comp4_det_test_"):
    """Write ``<output_dir>/<prefix><class>.txt`` per class: ``<image name> <score> <x1> <y1> <x2> <y2>``
    (1-based), the devkit's results format that :func:`yolox.evaluators.voc_eval.voc_eval` reads. Returns
    the detections path as a format string (``.../comp4_det_test_{:s}.txt``)."""
    os.makedirs(output_dir, exist_ok=True)
    for c, name in enumerate(dataset.class_names):
        images, scores, boxes = detections.get(c, ([], np.zeros(0), np.zeros((0, 4))))
        with open(os.path.join(output_dir, f"{prefix}{name}.txt"), "w", encoding="utf-8") as f:
            for img, score, box in zip(images, scores, boxes):
                f.write(f"{dataset.image_name(img)} {score:.3f} {box[0]:.1f} {box[1]:.1f} {box[2]:.1f} {box[3]:.1f}\n")
    return os.path.join(output_dir, prefix + "{:s}.txt")


def _fmt(value):
    return "nan" if math.isnan(value) else f"{value:.4f}"


def _zero_nan(value):
    return 0.0 if math.isnan(value) else float(value)


class VOCEvaluator:
    """VOC AP evaluation of a detector on a ``VOCDetection`` validation loader (upstream YOLOX's interface).

    ``evaluate(model, distributed=False, half=False)`` returns ``(mAP50:95, mAP50, summary)`` (fractions;
    0.0 stands for NaN) and sets ``last_metrics`` (see :func:`voc_metrics`; the trainer logs ``AP75``).
    The summary holds the speed line, ``AP for <class> = ...`` at IoU 0.5, ``Mean AP``, and ``map_5095`` /
    ``map_50`` as upstream prints them.

    Args:
        dataloader, img_size, confthre, nmsthre, num_classes, postprocess_fn: as :class:`COCOEvaluator`.
        use_07_metric: None (the dataset's: VOC2007's 11-point AP for the years before 2010), True or False.
        output_dir: when set, the per-class results files of the devkit are written there at each evaluation.
    """

    def __init__(self, dataloader, img_size, confthre, nmsthre, num_classes, postprocess_fn=None, use_07_metric=None,
                 output_dir=None):
        self.dataloader = dataloader
        self.img_size = tuple(img_size)
        self.confthre = confthre
        self.nmsthre = nmsthre
        self.num_classes = num_classes
        self.postprocess_fn = postprocess_fn
        self.use_07_metric = use_07_metric
        self.output_dir = output_dir
        self.num_images = len(dataloader.dataset)
        self.last_metrics = {}
        self.keep_image_ids = ()  # as COCOEvaluator's
        self.kept_detections = None

    def _postprocess_fn(self):
        if self.postprocess_fn is not None:
            return self.postprocess_fn
        from yolox.utils.boxes import postprocess

        return postprocess

    def evaluate(self, model, distributed=False, half=False):
        dataset = self.dataloader.dataset
        if not hasattr(dataset, "ground_truth"):
            raise TypeError(f"VOCEvaluator needs a VOCDetection loader (ground_truth per class); got "
                            f"{type(dataset).__name__}")
        class_ids = getattr(dataset, "class_ids", None) or list(range(self.num_classes))
        was_training = model.training
        model.eval()
        try:
            per_image, stats = run_detector(model, self.dataloader, self._postprocess_fn(), self.num_classes,
                                            self.confthre, self.nmsthre, self.img_size, class_ids, half)
            merged, stats = gather_detections(per_image, stats, distributed)
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
        # class_ids map class index -> category id; VOCDetection's are the indices themselves
        class_ids = list(getattr(dataset, "class_ids", None) or range(self.num_classes))
        index_of = {int(c): i for i, c in enumerate(class_ids)}
        for rows in merged.values():
            if len(rows):
                rows[:, 0] = [index_of[int(c)] for c in rows[:, 0]]
        detections = detections_from_rows(merged, len(class_ids))
        if self.output_dir is not None:
            write_voc_results(dataset, detections, self.output_dir)
        metrics = voc_metrics(dataset, detections, self.use_07_metric)
        n = max(stats["images"], 1)
        fwd, nms = 1000 * stats["forward_s"] / n, 1000 * stats["nms_s"] / n
        lines = [f"Average forward time: {fwd:.2f} ms, Average NMS time: {nms:.2f} ms, Average inference time: "
                 f"{fwd + nms:.2f} ms (batch size {self.dataloader.batch_size}, {stats['images']} images)",
                 f"VOC AP ({metrics['metric']}) at IoU 0.50 over {len(dataset)} images:"]
        lines += [f"AP for {name} = {_fmt(ap)}" for name, ap in metrics["per_class_AP50"].items()]
        lines.append(f"Mean AP = {_fmt(metrics['AP50'])}")
        missing = sum(math.isnan(ap) for ap in metrics["per_class_AP50"].values())
        if missing:
            lines.append(f"AP nan: {missing} classes have no (non-difficult) object in these images; the means "
                         "leave them out")
        lines += [_RULE, f"map_5095: {_fmt(metrics['AP'])}", f"map_50: {_fmt(metrics['AP50'])}", _RULE]
        return metrics, "\n".join(lines) + "\n"
