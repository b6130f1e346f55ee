"""Quality focal loss (Li et al., Generalized Focal Loss, 2020)."""
import torch.nn.functional as F
from torch import nn

__all__ = ["QualityFocalLoss"]


class QualityFocalLoss(nn.Module):
    """Summed QFL: sum_ij BCE(x_ij, y_ij) * |y_ij - sigmoid(x_ij)|^beta.

    Targets are IoU-quality soft labels: one-hot(class) * IoU for foreground anchors, 0 elsewhere
    (for a negative element this reduces to BCE(x, 0) * p^beta). No alpha balancing, as in the paper.
    """

    quality_targets = True

    def __init__(self, beta=2.0):
        super().__init__()
        self.beta = float(beta)

    def forward(self, logits, targets, normalizer=1.0):
        """logits, targets: [N, C] (targets in [0, 1]) -> summed loss, float32 scalar (``normalizer`` unused)."""
        x = logits.float()
        y = targets.to(x.dtype)
        modulator = (y - x.sigmoid()).abs().pow(self.beta)
        return (F.binary_cross_entropy_with_logits(x, y, reduction="none") * modulator).sum()

    def extra_repr(self):
        return f"beta={self.beta}"
