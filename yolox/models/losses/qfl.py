"""Quality focal loss (Li et al., Generalized Focal Loss, 2020)."""
from torch import nn

from .modulated_bce import modulated_bce_sum

__all__ = ["QualityFocalLoss"]


class QualityFocalLoss(nn.Module):
    """Summed QFL: sum_ij BCE(x_ij, y_ij) * |y_ij - sigmoid(x_ij)|^beta.

    Targets are IoU-quality soft labels: one-hot(class) * IoU for foreground anchors, 0 elsewhere
    (for a negative element this reduces to BCE(x, 0) * p^beta). No alpha balancing, as in the paper.
    Computed by the fused kernel that EQFL also uses (``modulated_bce.py``).
    """

    takes_pos_index = True
    takes_row_weight = True
    quality_targets = True

    def __init__(self, beta=2.0):
        super().__init__()
        self.beta = float(beta)

    def forward(self, logits, targets, normalizer=1.0, pos_index=None, row_weight=None):
        """logits, targets: [N, C] (targets in [0, 1]) -> summed loss, float32 scalar (``normalizer`` unused).
        ``pos_index``: optional (rows, cols) covering every non-zero target (saves searching them);
        ``row_weight``: optional [N] factor on every element of a row."""
        x = logits.float()
        return modulated_bce_sum(x, targets.to(x.dtype), self.beta, pos_index=pos_index,
                                 index_covers_targets=pos_index is not None, row_weight=row_weight)

    def extra_repr(self):
        return f"beta={self.beta}"
