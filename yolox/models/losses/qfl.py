"""Quality focal loss (Li et al., Generalized Focal Loss, 2020)."""
import torch

from .base import ClassificationLoss
from .modulated_bce import modulated_bce_sum

__all__ = ["QualityFocalLoss"]


class QualityFocalLoss(ClassificationLoss):
    """Summed QFL: sum_ij BCE(x_ij, y_ij) * |y_ij - sigmoid(x_ij)|^beta.

    Targets are IoU-quality soft labels: one-hot(class) * IoU for foreground anchors, 0 elsewhere
    (for a negative element this reduces to BCE(x, 0) * p^beta). No alpha balancing, as in the paper.
    Computed by the fused kernel that EQFL also uses (``modulated_bce.py``).
    """

    takes_row_weight = True
    takes_pos_targets = True  # sparse targets: targets=None with pos_index and pos_targets
    learns_from_negatives = True
    quality_targets = True

    def __init__(self, beta=2.0):
        super().__init__()
        self.beta = float(beta)

    def forward(self, logits, targets=None, normalizer=1.0, pos_index=None, row_weight=None, pos_targets=None):
        """Summed QFL, float32 scalar (``normalizer`` unused).

        Args:
            logits: [N, C] raw class scores (any float dtype; computed in float32).
            targets: [N, C] targets in [0, 1], or None for sparse targets (``pos_index`` and ``pos_targets``).
            pos_index: optional (rows, cols) covering every non-zero target (saves searching them); with
                sparse targets, the [P] rows and [P] classes of the positives (one per row at most).
            row_weight: optional [N] factor on every element of a row.
            pos_targets: with ``targets=None``, the [P] IoU qualities at pos_index; every other target is 0,
                and no dense [N, C] target is built.
        """
        self.check_call(targets, row_weight, pos_targets)
        y = None if targets is None else targets.to(torch.float32)
        return modulated_bce_sum(logits, y, self.beta, pos_index=pos_index, index_covers_targets=pos_index is not None,
                                 row_weight=row_weight, pos_targets=pos_targets)

    def extra_repr(self):
        return f"beta={self.beta}"
