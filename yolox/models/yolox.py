"""The YOLOX detector: a neck-with-backbone followed by the decoupled head."""
import torch.nn as nn

from .yolo_head import YOLOXHead
from .yolo_pafpn import YOLOPAFPN

__all__ = ["YOLOX"]


class YOLOX(nn.Module):
    """``forward(images)`` in eval mode returns the head's decoded predictions ``[B, N, 5 + C]``;
    ``forward(images, targets)`` in train mode returns the head's loss dict."""

    def __init__(self, backbone=None, head=None):
        super().__init__()
        self.backbone = backbone if backbone is not None else YOLOPAFPN()
        self.head = head if head is not None else YOLOXHead(80)

    def forward(self, x, targets=None):
        fpn_outs = self.backbone(x)
        if self.training:
            if targets is None:
                raise ValueError("YOLOX in training mode needs targets; call model.eval() for inference")
            return self.head(fpn_outs, targets, x)
        return self.head(fpn_outs)

    def enter_final_phase(self):
        """The final no-augmentation epochs: the head adds the L1 loss on its raw box outputs."""
        self.head.use_l1 = True

    def gamma_per_class(self):
        """The classification loss's focusing factor per class, [C] (EFL), or None for a loss without one."""
        return self.head.cls_loss.gamma_per_class()
