"""Sigmoid focal loss (Lin et al., 2017)."""
import torch

from .base import ClassificationLoss
from .modulated_bce import modulated_bce_sum

__all__ = ["FocalLoss"]


class FocalLoss(ClassificationLoss):
    """Summed focal loss: sum_ij -alpha_t (1 - p_t)^gamma log(p_t), targets 0/1.

    Equal to torchvision's ``sigmoid_focal_loss(reduction="sum")`` (the tests compare them); computed by the
    fused kernel that EFL also uses, so that the FL / EFL comparison measures the equalisation alone and
    the dense [N, 1203] loss costs a third of autograd's passes.
    """

    takes_row_weight = True
    takes_pos_targets = True  # sparse targets: targets=None with pos_index and pos_targets
    learns_from_negatives = True
    quality_targets = False

    def __init__(self, alpha=0.25, gamma=2.0):
        super().__init__()
        self.alpha = float(alpha)
        self.gamma = float(gamma)

    def forward(self, logits, targets=None, normalizer=1.0, pos_index=None, row_weight=None, pos_targets=None):
        """Summed focal loss, float32 scalar (``normalizer`` unused).

        Args:
            logits: [N, C] raw class scores (any float dtype; computed in float32).
            targets: [N, C] 0/1 targets, or None for sparse targets (``pos_index`` and ``pos_targets``).
            pos_index: optional (rows, cols) covering every non-zero target (saves searching them); with
                sparse targets, the [P] rows and [P] classes of the positives (one per row at most).
            row_weight: optional [N] factor on every element of a row.
            pos_targets: with ``targets=None``, the [P] targets at pos_index (1 for the plain focal loss);
                every other target is 0, and no dense [N, C] target is built.
        """
        alpha = None if self.alpha < 0 else self.alpha
        self.check_call(targets, row_weight, pos_targets)
        y = None if targets is None else targets.to(torch.float32)
        return modulated_bce_sum(logits, y, self.gamma, None, alpha, pos_index, pos_index is not None,
                                 row_weight=row_weight, pos_targets=pos_targets)

    def extra_repr(self):
        return f"alpha={self.alpha}, gamma={self.gamma}"
