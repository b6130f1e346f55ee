"""Equalized Quality Focal Loss: QFL with EFL's per-class focusing and weighting factors."""
import torch.nn.functional as F

from .efl import EqualizedFocalLoss

__all__ = ["EqualizedQualityFocalLoss"]


class EqualizedQualityFocalLoss(EqualizedFocalLoss):
    """Summed EQFL over [N, C] logits with IoU-quality targets y in [0, 1].

        EQFL = (gamma^j / gamma_b) * BCE(x, y) * |y - p|^gamma^j,   gamma^j = gamma_b + s * (1 - g^j)

    Following the official implementation: positives (y > 0) use BCE against the quality y modulated by
    |y - p|^gamma^j, negatives use BCE(x, 0) * p^gamma^j (the same expression with y = 0); the weighting
    factor multiplies both; there is no alpha balancing; ``pos_neg`` starts at ones. The call is EFL's
    (:meth:`EqualizedFocalLoss.forward`), with targets one-hot(class) * IoU quality (``pos_targets``: the
    qualities, 0 allowed: still a positive for the statistics).

    Analytic derivative (d = p - y), used by ``grad_mode="analytic"``; requires gamma^j >= 1:

        |dEQFL/dx| = w^j * |d|^(gamma^j - 1) * (d^2 + gamma^j * p * (1 - p) * BCE(x, y)).
    """

    quality_targets = True

    def __init__(self, num_classes, gamma_b=2.0, scale_factor=4.0, grad_mode="hook", neg_grad_scale=1.0,
                 stats_layout="per_class", anchors_per_location=1):
        # EFL's loss, statistics and call with IoU-quality targets and no alpha balancing (alpha < 0)
        super().__init__(num_classes, gamma_b=gamma_b, scale_factor=scale_factor, alpha=-1.0, grad_mode=grad_mode,
                         neg_grad_scale=neg_grad_scale, stats_layout=stats_layout,
                         anchors_per_location=anchors_per_location)

    def _analytic_grad_abs(self, x, targets, pos_mask):
        gamma, weight = self._factors()
        p = x.sigmoid()
        d = (p - targets).abs()
        bce = F.binary_cross_entropy_with_logits(x, targets, reduction="none")
        return weight * d.pow(gamma - 1.0) * (d * d + gamma * p * (1.0 - p) * bce)

    def extra_repr(self):
        return (f"num_classes={self.num_classes}, gamma_b={self.gamma_b}, scale_factor={self.scale_factor}, "
                f"grad_mode={self.grad_mode!r}, neg_grad_scale={self.neg_grad_scale}, "
                f"stats_layout={self.stats_layout!r}, anchors_per_location={self.anchors_per_location}")
