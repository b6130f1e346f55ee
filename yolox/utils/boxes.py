"""Box conversions and detection post-processing.

Box formats used across the project:
- ``xyxy``: (x1, y1, x2, y2) in pixels;
- ``cxcywh``: (centre x, centre y, width, height) in pixels, the raw model output layout;
- ``xywh``: (x1, y1, width, height), the COCO/LVIS json layout.
"""
import math

import torch
import torchvision

__all__ = [
    "paired_box_iou",
    "cxcywh2xyxy",
    "xyxy2cxcywh",
    "xyxy2xywh",
    "bboxes_iou",
    "postprocess",
    "multilabel_postprocess",
    "level_topk_postprocess",
    "level_sizes",
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


def postprocess(prediction, num_classes, conf_thre=0.7, nms_thre=0.45, class_agnostic=False, input_hw=None,
                image_hw=None):
    """Single-label post-processing of the original YOLOX (one class per box: the arg-max).

    Args:
        prediction: ``[B, N, 5 + C]`` decoded outputs (cx, cy, w, h, obj, class probabilities), pixels.
        num_classes: C.
        conf_thre: keep boxes whose ``obj * max class probability`` is at least this.
        nms_thre: IoU threshold of the (class-aware unless ``class_agnostic``) NMS.
        input_hw, image_hw: accepted for the call shared with :func:`level_topk_postprocess`; unused.

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


def multilabel_postprocess(prediction, num_classes, conf_thre=0.001, nms_thre=0.65, max_det=300, pre_nms_topk=3000,
                           input_hw=None, image_hw=None):
    """Multi-label post-processing for large vocabularies (LVIS protocol).

    Every (box, class) pair whose score ``obj * cls_prob`` reaches ``conf_thre`` is a candidate, so one box
    may be reported for several classes (LVIS rewards this: the federated protocol ignores classes that are
    not annotated in an image). The best ``pre_nms_topk`` candidates go through class-aware NMS and at most
    ``max_det`` detections per image are kept.

    Args:
        prediction: ``[B, N, 5 + C]`` decoded outputs (cx, cy, w, h, obj-or-iou, class probabilities).
        input_hw, image_hw: accepted for the call shared with :func:`level_topk_postprocess`; unused.

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


def level_sizes(input_hw, strides=(8, 16, 32), anchors_per_location=1):
    """Predictions per pyramid level for an input of ``input_hw`` = (H, W) pixels: ``na * ceil(H/s) * ceil(W/s)``."""
    h, w = int(input_hw[0]), int(input_hw[1])
    return [anchors_per_location * math.ceil(h / s) * math.ceil(w / s) for s in strides]


def level_topk_postprocess(prediction, num_classes, conf_thre=0.0, nms_thre=0.65, max_det=300, input_hw=None,
                           image_hw=None, strides=(8, 16, 32), anchors_per_location=1, pre_nms_topk=1000):
    """YOLOX*'s inference as the EFL authors released it (ModelTC/EOD ``base_multicls`` + ``retina_multicls``).

    Per image: boxes are clipped to the image (``image_hw``) and boxes left with no width or height dropped;
    per pyramid level, the best ``pre_nms_topk`` (anchor, class) pairs by score ``cls_prob * iou_prob``
    (fewer when the level has fewer anchors), above ``conf_thre`` when it is > 0 (the released config sets
    no threshold); then class-aware NMS over all levels and the best ``max_det``.

    Args:
        prediction: ``[B, N, 5 + C]`` decoded outputs (cx, cy, w, h, IoU probability, class probabilities),
            levels in order, N = sum of :func:`level_sizes` of ``input_hw``.
        input_hw: (H, W) of the network input, pixels (gives the level boundaries).
        image_hw: per image (h, w) of the image inside the letterboxed input, pixels, or None (no clipping).
        strides / anchors_per_location: the head's.

    Returns:
        list of length B of ``[K, 7]`` tensors (x1, y1, x2, y2, iou_prob, cls_prob, cls_index), K <= max_det,
        sorted by descending score; None when nothing survives.
    """
    if input_hw is None:
        raise ValueError("level_topk_postprocess needs input_hw, the (H, W) of the network input")
    sizes = level_sizes(input_hw, strides, anchors_per_location)
    if sum(sizes) != prediction.shape[1]:
        raise ValueError(f"{prediction.shape[1]} predictions do not match input {tuple(input_hw)} with strides "
                         f"{tuple(strides)} and {anchors_per_location} anchor(s) per location ({sum(sizes)})")
    output = [None] * prediction.shape[0]
    for i, image_pred in enumerate(prediction):
        boxes = cxcywh2xyxy(image_pred[:, :4])
        if image_hw is not None:
            h, w = float(image_hw[i][0]), float(image_hw[i][1])
            boxes = torch.stack([boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h),
                                 boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)], dim=1)
        usable = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        iou = image_pred[:, 4]
        cls_prob = image_pred[:, 5 : 5 + num_classes]
        cand_anchor, cand_cls = [], []
        start = 0
        for size in sizes:
            anchors = start + usable[start:start + size].nonzero().squeeze(1)
            start += size
            if anchors.numel() == 0:
                continue
            scores = (cls_prob[anchors] * iou[anchors, None]).reshape(-1)
            top = scores.topk(min(pre_nms_topk, anchors.numel())).indices
            if conf_thre > 0:
                top = top[scores[top] > conf_thre]
            cand_anchor.append(anchors[top // num_classes])
            cand_cls.append(top % num_classes)
        if not cand_anchor:
            continue
        anchor_i, cls_i = torch.cat(cand_anchor), torch.cat(cand_cls)
        if anchor_i.numel() == 0:
            continue
        cand_scores = cls_prob[anchor_i, cls_i] * iou[anchor_i]
        kept = torchvision.ops.batched_nms(boxes[anchor_i], cand_scores, cls_i, nms_thre)[:max_det]
        anchor_i, cls_i = anchor_i[kept], cls_i[kept]
        output[i] = _candidate_rows(boxes[anchor_i], iou[anchor_i], cls_prob[anchor_i, cls_i], cls_i)
    return output


def paired_box_iou(boxes1, boxes2, offset=0.0):
    """IoU of matching pairs, ``[..., 4]`` xyxy x ``[..., 4]`` xyxy (broadcast) -> ``[...]``.

    Same arithmetic as ``torchvision.ops.box_iou``, which only computes all-pairs matrices. ``offset`` is
    added to every width and height (boxes, intersection): 1 is the pixel-inclusive convention of the
    released EFL code's CUDA IoU kernel."""
    area1 = (boxes1[..., 2] - boxes1[..., 0] + offset) * (boxes1[..., 3] - boxes1[..., 1] + offset)
    area2 = (boxes2[..., 2] - boxes2[..., 0] + offset) * (boxes2[..., 3] - boxes2[..., 1] + offset)
    top_left = torch.max(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.min(boxes1[..., 2:], boxes2[..., 2:])
    wh = (bottom_right - top_left + offset).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area1 + area2 - inter)
