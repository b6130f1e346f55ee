"""Sigmoid binary cross-entropy, the classification loss of the original YOLOX."""
import torch.nn.functional as F
from torch import nn

__all__ = ["SigmoidBCELoss"]


class SigmoidBCELoss(nn.Module):
    """Summed sigmoid BCE: sum_ij BCE(x_ij, y_ij).

    The original YOLOX trains its foreground classification on IoU-weighted one-hot targets
    (one-hot(class) * IoU of the matched predicted box), hence ``quality_targets = True``.
    """

    quality_targets = True

    def forward(self, logits, targets, normalizer=1.0):
        """logits, targets: [N, C] (targets in [0, 1]) -> summed loss, float32 scalar.

        ``normalizer`` is accepted for a uniform call signature and not used.
        """
        x = logits.float()
        return F.binary_cross_entropy_with_logits(x, targets.to(x.dtype), reduction="sum")
