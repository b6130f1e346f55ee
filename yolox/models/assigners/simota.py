"""SimOTA label assignment, as in upstream YOLOX 0.3.0 (``get_assignments`` / ``simota_matching``).

Steps for one image with ``G`` gts and ``A`` anchor points:

1. geometry prior: an anchor point is a candidate when its centre lies in the square of half side
   ``center_radius * stride`` around some gt centre; everything else is background outright;
2. cost on the ``N`` candidates, ``[G, N]``: class BCE of ``sqrt(score)`` against the gt's one-hot label,
   summed over classes, + ``iou_cost_weight * -log(IoU + 1e-8)`` + ``1e6`` where the anchor is outside
   that gt's square;
3. dynamic k per gt = ``max(1, int(sum of its top-candidate_topk IoUs))``; each gt takes its k cheapest
   candidates; an anchor taken by several gts goes to the gt of lowest cost (argmin over *all* gts, as
   upstream does).

The class cost never builds a ``[G, N, C]`` tensor: with ``s = sqrt(score)`` and ``l`` the gt's label,
``sum_c BCE(s_c, onehot_l) = sum_c -log(1 - s_c) + log(1 - s_l) - log(s_l)``, so one ``[N, C]`` pass and
two ``[G, N]`` gathers give it exactly (logs clamped at -100 like ``F.binary_cross_entropy``).
"""
from typing import NamedTuple, Optional

import torch
from torch import Tensor
from torchvision.ops import box_iou

from yolox.utils.boxes import cxcywh2xyxy

__all__ = ["SimOTAAssigner", "SimOTAResult"]

# Added to the cost of (gt, anchor) pairs outside the gt's centre square, as upstream.
OUTSIDE_CENTER_COST = 1e6
# F.binary_cross_entropy clamps its logs at -100; the decomposed class cost must do the same.
BCE_LOG_MIN = -100.0


class SimOTAResult(NamedTuple):
    """``fg_mask`` [A] bool; ``matched_gt_inds`` [num_fg] long and ``matched_ious`` [num_fg] float32 (IoU
    of the prediction with its gt), both in increasing anchor order, i.e. aligned with
    ``fg_mask.nonzero()``; ``num_fg`` a Python int."""

    fg_mask: Tensor
    matched_gt_inds: Tensor
    matched_ious: Tensor
    num_fg: int


def simota_class_cost(cls_logits: Tensor, obj_logits: Optional[Tensor], gt_labels: Tensor) -> Tensor:
    """Class part of the SimOTA cost, ``[G, N]`` float32.

    Args:
        cls_logits: ``[N, C]`` class logits of the candidates.
        obj_logits: ``[N]`` objectness logits, or None (score = sigmoid(cls) alone).
        gt_labels: ``[G]`` long class ids.
    Returns:
        ``cost[g, n] = sum_c BCE(sqrt(score[n, c]), onehot(gt_labels[g])[c])``, in O(N*C + G*N).
    """
    scores = cls_logits.float().sigmoid()
    if obj_logits is not None:
        scores.mul_(obj_logits.float().sigmoid()[:, None])
    scores.sqrt_()
    log_neg = torch.log(1 - scores).clamp_(min=BCE_LOG_MIN)  # [N, C]; -log_neg: cost of class c negative
    log_neg_at_label = log_neg[:, gt_labels].t()  # [G, N]
    log_pos_at_label = torch.log(scores[:, gt_labels].t()).clamp_(min=BCE_LOG_MIN)
    return log_neg_at_label - log_neg.sum(1)[None, :] - log_pos_at_label


class SimOTAAssigner:
    """SimOTA (YOLOX). Stateless; one image per :meth:`assign` call."""

    def __init__(self, center_radius: float = 1.5, candidate_topk: int = 10, iou_cost_weight: float = 3.0):
        self.center_radius = center_radius
        self.candidate_topk = candidate_topk
        self.iou_cost_weight = iou_cost_weight

    def in_center_squares(self, anchor_centers: Tensor, strides: Tensor, gt_boxes_cxcywh: Tensor) -> Tensor:
        """``[G, A]`` bool: anchor centre strictly within ``center_radius * stride`` of the gt centre in
        both x and y."""
        radius = self.center_radius * strides[None, :]
        dx = (anchor_centers[None, :, 0] - gt_boxes_cxcywh[:, None, 0]).abs()
        dy = (anchor_centers[None, :, 1] - gt_boxes_cxcywh[:, None, 1]).abs()
        return (dx < radius) & (dy < radius)

    @torch.no_grad()
    def assign(
        self,
        pred_boxes_cxcywh: Tensor,
        cls_logits: Tensor,
        obj_logits: Optional[Tensor],
        anchor_centers: Tensor,
        strides: Tensor,
        gt_boxes_cxcywh: Tensor,
        gt_labels: Tensor,
    ) -> SimOTAResult:
        """Assign the ``A`` anchor points of one image to its ``G`` gts.

        Args:
            pred_boxes_cxcywh: ``[A, 4]`` decoded predictions, pixels.
            cls_logits: ``[A, C]``; obj_logits: ``[A]`` or None.
            anchor_centers: ``[A, 2]`` pixel centres ``(grid + 0.5) * stride``; strides: ``[A]`` pixels.
            gt_boxes_cxcywh: ``[G, 4]`` pixels; gt_labels: ``[G]`` class ids.
        Any float dtype is accepted; everything is computed in float32.
        """
        device = pred_boxes_cxcywh.device
        num_anchors, num_gt = pred_boxes_cxcywh.shape[0], gt_boxes_cxcywh.shape[0]
        gt_boxes = gt_boxes_cxcywh.float()
        gt_labels = gt_labels.long()

        in_square = self.in_center_squares(anchor_centers.float(), strides.float(), gt_boxes)  # [G, A]
        candidates = in_square.any(0).nonzero().squeeze(1)  # [N], increasing
        if num_gt == 0 or candidates.numel() == 0:
            return self._empty(num_anchors, device)
        in_square = in_square[:, candidates]

        pred_boxes = pred_boxes_cxcywh[candidates].float()
        ious = box_iou(cxcywh2xyxy(gt_boxes), cxcywh2xyxy(pred_boxes))  # [G, N]
        obj = obj_logits[candidates] if obj_logits is not None else None
        cost = (
            simota_class_cost(cls_logits[candidates], obj, gt_labels)
            + self.iou_cost_weight * -torch.log(ious + 1e-8)
            + OUTSIDE_CENTER_COST * (~in_square).float()
        )

        # Dynamic k, vectorised over gts: rank every gt's candidates by cost once (k never exceeds
        # candidate_topk since IoU <= 1) and keep the first dynamic_k of each row.
        k_max = min(self.candidate_topk, candidates.numel())
        dynamic_k = ious.topk(k_max, dim=1).values.sum(1).int().clamp(min=1)  # [G]
        ranked = cost.topk(k_max, dim=1, largest=False).indices  # [G, k_max]
        keep = torch.arange(k_max, device=device)[None, :] < dynamic_k[:, None]
        matching = torch.zeros_like(cost, dtype=torch.bool).scatter_(1, ranked, keep)  # [G, N]

        num_claims = matching.sum(0)
        is_fg = num_claims > 0  # [N]
        matched = torch.where(num_claims > 1, cost.argmin(0), matching.int().argmax(0))  # [N]

        fg_mask = torch.zeros(num_anchors, dtype=torch.bool, device=device)
        fg_mask[candidates[is_fg]] = True
        matched_gt_inds = matched[is_fg]
        matched_ious = ious.gather(0, matched[None, :])[0][is_fg]
        return SimOTAResult(fg_mask, matched_gt_inds, matched_ious, int(matched_gt_inds.numel()))

    @staticmethod
    def _empty(num_anchors: int, device) -> SimOTAResult:
        return SimOTAResult(
            torch.zeros(num_anchors, dtype=torch.bool, device=device),
            torch.zeros(0, dtype=torch.long, device=device),
            torch.zeros(0, dtype=torch.float32, device=device),
            0,
        )
