"""Box conversions and detection post-processing.

Box formats used across the project:
- ``xyxy``: (x1, y1, x2, y2) in pixels;
- ``cxcywh``: (centre x, centre y, width, height) in pixels, the raw model output layout;
- ``xywh``: (x1, y1, width, height), the COCO/LVIS json layout.
"""
import torch
import torchvision

__all__ = [
    "cxcywh2xyxy",
    "xyxy2cxcywh",
    "xyxy2xywh",
    "bboxes_iou",
    "postprocess",
    "multilabel_postprocess",
]


def cxcywh2xyxy(boxes):
    """[..., 4] cxcywh -> [..., 4] xyxy (new tensor)."""
    xy, wh = boxes[..., :2], boxes[..., 2:4]
    return torch.cat([xy - wh / 2, xy + wh / 2], dim=-1)


def xyxy2cxcywh(boxes):
    """[..., 4] xyxy -> [..., 4] cxcywh (new tensor; works on torch and numpy-converted tensors)."""
    x1y1, x2y2 = boxes[..., :2], boxes[..., 2:4]
    return torch.cat([(x1y1 + x2y2) / 2, x2y2 - x1y1], dim=-1)


def xyxy2xywh(boxes):
    """[..., 4] xyxy -> [..., 4] COCO xywh (new tensor)."""
    return torch.cat([boxes[..., :2], boxes[..., 2:4] - boxes[..., :2]], dim=-1)


def bboxes_iou(boxes_a, boxes_b, xyxy=True):
    """Pairwise IoU of ``[N, 4]`` and ``[M, 4]`` boxes -> ``[N, M]``."""
    if not xyxy:
        boxes_a, boxes_b = cxcywh2xyxy(boxes_a), cxcywh2xyxy(boxes_b)
    return torchvision.ops.box_iou(boxes_a, boxes_b)


def _candidate_rows(boxes_xyxy, obj, cls_conf, cls_idx):
    """Rows (x1, y1, x2, y2, obj, cls_conf, cls_index) in the upstream YOLOX output layout."""
    return torch.cat([boxes_xyxy, obj[:, None], cls_conf[:, None], cls_idx[:, None].to(boxes_xyxy.dtype)], dim=1)


def postprocess(prediction, num_classes, conf_thre=0.7, nms_thre=0.45, class_agnostic=False):
    """Single-label post-processing of the original YOLOX (one class per box: the arg-max).

    Args:
        prediction: ``[B, N, 5 + C]`` decoded outputs (cx, cy, w, h, obj, class probabilities), pixels.
        num_classes: C.
        conf_thre: keep boxes whose ``obj * max class probability`` is at least this.
        nms_thre: IoU threshold of the (class-aware unless ``class_agnostic``) NMS.

    Returns:
        list of length B; each ``[K, 7]`` tensor (x1, y1, x2, y2, obj, cls_conf, cls_index) sorted by
        score, or None when nothing survives.
    """
    output = [None] * prediction.shape[0]
    for i, image_pred in enumerate(prediction):
        if image_pred.shape[0] == 0:
            continue
        cls_conf, cls_idx = image_pred[:, 5 : 5 + num_classes].max(dim=1)
        obj = image_pred[:, 4]
        keep = obj * cls_conf >= conf_thre
        if not keep.any():
            continue
        dets = _candidate_rows(cxcywh2xyxy(image_pred[keep, :4]), obj[keep], cls_conf[keep], cls_idx[keep])
        scores = dets[:, 4] * dets[:, 5]
        if class_agnostic:
            kept = torchvision.ops.nms(dets[:, :4], scores, nms_thre)
        else:
            kept = torchvision.ops.batched_nms(dets[:, :4], scores, cls_idx[keep], nms_thre)
        output[i] = dets[kept]
    return output


def multilabel_postprocess(prediction, num_classes, conf_thre=0.001, nms_thre=0.65, max_det=300, pre_nms_topk=3000):
    """Multi-label post-processing for large vocabularies (LVIS protocol).

    Every (box, class) pair whose score ``obj * cls_prob`` reaches ``conf_thre`` is a candidate, so one box
    may be reported for several classes (LVIS rewards this: the federated protocol ignores classes that are
    not annotated in an image). The best ``pre_nms_topk`` candidates go through class-aware NMS and at most
    ``max_det`` detections per image are kept.

    Args:
        prediction: ``[B, N, 5 + C]`` decoded outputs (cx, cy, w, h, obj-or-iou, class probabilities).

    Returns:
        list of length B of ``[K, 7]`` tensors (x1, y1, x2, y2, obj, cls_conf, cls_index), K <= max_det,
        sorted by descending score ``obj * cls_conf``; None when nothing survives.
    """
    output = [None] * prediction.shape[0]
    for i, image_pred in enumerate(prediction):
        obj = image_pred[:, 4]
        cls_prob = image_pred[:, 5 : 5 + num_classes]
        # Prefilter boxes on their best class first: with 1203 classes the dense score matrix is large,
        # and boxes whose best score is below the threshold contribute nothing.
        best = cls_prob.max(dim=1).values * obj
        box_keep = (best >= conf_thre).nonzero().squeeze(1)
        if box_keep.numel() == 0:
            continue
        scores = cls_prob[box_keep] * obj[box_keep, None]  # [n, C]
        box_i, cls_i = (scores >= conf_thre).nonzero(as_tuple=True)
        cand_scores = scores[box_i, cls_i]
        if cand_scores.numel() > pre_nms_topk:
            cand_scores, top = cand_scores.topk(pre_nms_topk)
            box_i, cls_i = box_i[top], cls_i[top]
        anchor_i = box_keep[box_i]
        boxes = cxcywh2xyxy(image_pred[anchor_i, :4])
        kept = torchvision.ops.batched_nms(boxes, cand_scores, cls_i, nms_thre)[:max_det]
        anchor_i, cls_i = anchor_i[kept], cls_i[kept]
        output[i] = _candidate_rows(boxes[kept], obj[anchor_i], cls_prob[anchor_i, cls_i], cls_i)
    return output
