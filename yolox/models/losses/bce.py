"""Sigmoid binary cross-entropy, the classification loss of the original YOLOX."""
import torch.nn.functional as F

from .base import ClassificationLoss

__all__ = ["SigmoidBCELoss"]


class SigmoidBCELoss(ClassificationLoss):
    """Summed sigmoid BCE: sum_ij BCE(x_ij, y_ij).

    The original YOLOX trains its foreground classification on IoU-weighted one-hot targets
    (one-hot(class) * IoU of the matched predicted box), hence ``quality_targets = True``.
    """

    quality_targets = True

    def forward(self, logits, targets=None, normalizer=1.0, pos_index=None, row_weight=None, pos_targets=None):
        """logits, targets: [N, C] (targets in [0, 1]) -> summed loss, float32 scalar.

        The call of :class:`ClassificationLoss`: dense targets only; ``normalizer`` and ``pos_index`` are not
        needed (no gradient statistics, and the targets say where the positives are).
        """
        self.check_call(targets, row_weight, pos_targets)
        x = logits.float()
        return F.binary_cross_entropy_with_logits(x, targets.to(x.dtype), reduction="sum")
