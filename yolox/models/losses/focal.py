"""Sigmoid focal loss (Lin et al., 2017)."""
from torch import nn

from .modulated_bce import modulated_bce_sum

__all__ = ["FocalLoss"]


class FocalLoss(nn.Module):
    """Summed focal loss: sum_ij -alpha_t (1 - p_t)^gamma log(p_t), targets 0/1.

    Equal to torchvision's ``sigmoid_focal_loss(reduction="sum")`` (the tests compare them); computed by the
    fused kernel that EFL also uses, so that the FL / EFL comparison measures the equalisation alone and
    the dense [N, 1203] loss costs a third of autograd's passes.
    """

    takes_pos_index = True
    takes_row_weight = True
    quality_targets = False

    def __init__(self, alpha=0.25, gamma=2.0):
        super().__init__()
        self.alpha = float(alpha)
        self.gamma = float(gamma)

    def forward(self, logits, targets, normalizer=1.0, pos_index=None, row_weight=None):
        """logits, targets: [N, C] -> summed loss, float32 scalar (``normalizer`` unused). ``pos_index``:
        optional (rows, cols) covering every non-zero target (saves searching them); ``row_weight``:
        optional [N] factor on every element of a row."""
        x = logits.float()
        alpha = None if self.alpha < 0 else self.alpha
        return modulated_bce_sum(x, targets.to(x.dtype), self.gamma, None, alpha, pos_index, pos_index is not None,
                                 row_weight=row_weight)

    def extra_repr(self):
        return f"alpha={self.alpha}, gamma={self.gamma}"
