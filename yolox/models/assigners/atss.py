"""ATSS label assignment (Zhang et al., CVPR 2020), the supervisor of YOLOX* in the EFL paper.

For every gt:

1. on each pyramid level, the ``topk`` anchors whose centres are closest (L2) to the gt centre
   (all of the level if it has fewer); the union over levels are the candidates;
2. IoU threshold = mean + std (unbiased, as torch's default) of the candidates' IoUs with the gt;
3. a candidate is positive if its IoU >= threshold and its centre lies inside the gt box by more than
   ``INSIDE_MARGIN`` pixels on every side (the official EFL code and mmdetection use 0.01);
4. an anchor positive for several gts goes to the gt of highest IoU (lowest gt index on exact ties).

Equal distances are normal (the anchors of one location share their centre, and grid points can sit
symmetrically around a gt centre); they are broken toward the lower anchor index, on every device.

Everything is vectorised over images and gts; only the (3) levels are looped over. The IoU is computed
on the ``G * topk * levels`` candidate pairs only, never as a ``[G, A]`` matrix.
"""
from typing import List

import torch
from torch import Tensor

from yolox.utils.boxes import paired_box_iou

__all__ = ["ATSSAssigner"]

INSIDE_MARGIN = 0.01


class ATSSAssigner:
    """Adaptive Training Sample Selection. The official EFL LVIS config uses ``topk=18``.

    ``iou_offset``: added to widths and heights in the candidates' IoUs (steps 2-4). The released code
    trained on CUDA, whose IoU kernel adds 1 (a 16-px gt and a 24-px anchor: IoU 0.462 instead of 0.444);
    0 is the plain IoU."""

    def __init__(self, topk: int = 9, iou_offset: float = 0.0):
        self.topk = topk
        self.iou_offset = float(iou_offset)

    def assign(self, anchors_xyxy: Tensor, num_anchors_per_level: List[int], gt_boxes_xyxy: Tensor,
               gt_labels: Tensor) -> Tensor:
        """One image: anchors ``[A, 4]``, gts ``[G, 4]`` (``gt_labels`` ``[G]`` is not needed by ATSS).
        Returns ``[A]`` long, the assigned gt index or -1 for background."""
        gt_valid = torch.ones(1, gt_boxes_xyxy.shape[0], dtype=torch.bool, device=gt_boxes_xyxy.device)
        return self.assign_batch(anchors_xyxy, num_anchors_per_level, gt_boxes_xyxy[None], gt_valid)[0]

    @torch.no_grad()
    def assign_batch(self, anchors_xyxy: Tensor, num_anchors_per_level: List[int], gt_boxes_xyxy: Tensor,
                     gt_valid: Tensor) -> Tensor:
        """Batched over images with padded gts.

        Args:
            anchors_xyxy: ``[A, 4]`` pixels, shared by the images, level-major.
            num_anchors_per_level: anchors of each level, summing to ``A``.
            gt_boxes_xyxy: ``[B, G, 4]`` pixels; gt_valid: ``[B, G]`` bool, False for padding rows
                (never assigned).
        Returns:
            ``[B, A]`` long: gt index in ``0..G-1`` per anchor, -1 for background.
        """
        batch, num_gt = gt_boxes_xyxy.shape[:2]
        num_anchors = anchors_xyxy.shape[0]
        device = anchors_xyxy.device
        assigned = torch.full((batch, num_anchors), -1, dtype=torch.long, device=device)
        if num_gt == 0 or num_anchors == 0:
            return assigned

        anchors = anchors_xyxy.float()
        gts = gt_boxes_xyxy.float()
        anchor_centers = (anchors[:, :2] + anchors[:, 2:]) / 2  # [A, 2]
        candidates, cand_ious, threshold = self.candidates_and_threshold(anchors, num_anchors_per_level, gts)

        cand_centers = anchor_centers[candidates]  # [B, G, K, 2]
        side_dists = torch.cat([cand_centers - gts[:, :, None, :2], gts[:, :, None, 2:] - cand_centers], -1)
        is_pos = (
            (cand_ious >= threshold[..., None])
            & (side_dists.amin(-1) > INSIDE_MARGIN)
            & gt_valid[..., None]
        )

        # Resolve anchors positive for several gts without a [B, G, A] tensor: scatter the best positive
        # IoU per anchor, then the lowest gt index among the pairs reaching it.
        flat_cands = candidates.reshape(batch, -1)
        pos_ious = torch.where(is_pos, cand_ious, -1.0).reshape(batch, -1)
        best_iou = torch.full((batch, num_anchors), -1.0, device=device)
        best_iou.scatter_reduce_(1, flat_cands, pos_ious, reduce="amax")
        wins = is_pos.reshape(batch, -1) & (pos_ious == best_iou.gather(1, flat_cands))
        gt_index = torch.arange(num_gt, device=device)[None, :, None].expand_as(candidates).reshape(batch, -1)
        owner = torch.full((batch, num_anchors), num_gt, dtype=torch.long, device=device)
        owner.scatter_reduce_(1, flat_cands, torch.where(wins, gt_index, num_gt), reduce="amin")
        return assigned.where(owner == num_gt, owner)

    def candidates_and_threshold(self, anchors_xyxy: Tensor, num_anchors_per_level: List[int],
                                 gt_boxes_xyxy: Tensor):
        """Steps 1-2. ``[A, 4]`` anchors, ``[B, G, 4]`` gts -> candidate anchor indices ``[B, G, K]``,
        their IoUs with the gt ``[B, G, K]`` and the per-gt IoU threshold mean + std ``[B, G]``."""
        anchors, gts = anchors_xyxy.float(), gt_boxes_xyxy.float()
        anchor_centers = (anchors[:, :2] + anchors[:, 2:]) / 2
        gt_centers = (gts[..., :2] + gts[..., 2:]) / 2
        candidates = self.nearest_candidates(anchor_centers, num_anchors_per_level, gt_centers)
        cand_ious = paired_box_iou(anchors[candidates], gts[:, :, None, :], self.iou_offset)
        return candidates, cand_ious, cand_ious.mean(-1) + cand_ious.std(-1)

    def nearest_candidates(self, anchor_centers: Tensor, num_anchors_per_level: List[int],
                           gt_centers: Tensor) -> Tensor:
        """``[B, G, K]`` global anchor indices, ``K = sum_l min(topk, A_l)``: per level, the ``topk``
        anchors nearest to each gt centre, nearest first, ties to the lower anchor index."""
        per_level, start = [], 0
        for count in num_anchors_per_level:
            centers = anchor_centers[start:start + count]
            # Squared distances [B, G, A_l]: the same order as L2 without the sqrt rounding.
            dist2 = (gt_centers[..., None, 0] - centers[:, 0]).square_()
            dist2.add_((gt_centers[..., None, 1] - centers[:, 1]).square_())
            # Non-negative floats order like their bit patterns read as integers, so this integer key
            # sorts by (distance, anchor index) exactly, making topk's choice among ties deterministic.
            key = dist2.view(torch.int32).long().mul_(count).add_(torch.arange(count, device=dist2.device))
            nearest = key.topk(min(self.topk, count), dim=-1, largest=False).indices
            per_level.append(nearest + start)
            start += count
        return torch.cat(per_level, dim=-1)
