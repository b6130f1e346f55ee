"""Box regression losses."""
import torch
from torch import nn

__all__ = ["IOUloss"]


class IOUloss(nn.Module):
    """Paired IoU / GIoU loss on (cx, cy, w, h) boxes, as in the original YOLOX.

    ``loss_type="iou"``: 1 - IoU^2;  ``loss_type="giou"``: 1 - clamp(GIoU, -1, 1).
    ``reduction``: "none" ([N]), "mean" or "sum".
    """

    def __init__(self, reduction="none", loss_type="iou"):
        super().__init__()
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"unknown reduction {reduction!r}")
        if loss_type not in ("iou", "giou"):
            raise ValueError(f"unknown loss_type {loss_type!r}")
        self.reduction = reduction
        self.loss_type = loss_type

    def forward(self, pred, target):
        """pred, target: [N, 4] cxcywh (any leading shape is flattened to [N, 4]) -> loss [N] or scalar."""
        pred = pred.reshape(-1, 4)
        target = target.reshape(-1, 4)
        pred_lt, pred_rb = pred[:, :2] - pred[:, 2:] / 2, pred[:, :2] + pred[:, 2:] / 2
        gt_lt, gt_rb = target[:, :2] - target[:, 2:] / 2, target[:, :2] + target[:, 2:] / 2

        inter_wh = (torch.min(pred_rb, gt_rb) - torch.max(pred_lt, gt_lt)).clamp(min=0)
        area_inter = inter_wh.prod(dim=1)
        area_union = pred[:, 2:].prod(dim=1) + target[:, 2:].prod(dim=1) - area_inter
        iou = area_inter / (area_union + 1e-16)

        if self.loss_type == "iou":
            loss = 1 - iou ** 2
        else:
            enclose_area = (torch.max(pred_rb, gt_rb) - torch.min(pred_lt, gt_lt)).prod(dim=1)
            giou = iou - (enclose_area - area_union) / enclose_area.clamp(min=1e-16)
            loss = 1 - giou.clamp(min=-1.0, max=1.0)

        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss
