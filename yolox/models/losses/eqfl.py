"""Equalized Quality Focal Loss: QFL with EFL's per-class focusing and weighting factors."""
import torch
import torch.nn.functional as F

from .efl import EqualizedFocalLoss, _check_shapes, _check_sparse_targets
from .grad_stats import GradStatsMixin
from .modulated_bce import modulated_bce_sum

__all__ = ["EqualizedQualityFocalLoss"]


class EqualizedQualityFocalLoss(GradStatsMixin):
    """Summed EQFL over [N, C] logits with IoU-quality targets y in [0, 1].

        EQFL = (gamma^j / gamma_b) * BCE(x, y) * |y - p|^gamma^j,   gamma^j = gamma_b + s * (1 - g^j)

    Following the official implementation: positives (y > 0) use BCE against the quality y modulated by
    |y - p|^gamma^j, negatives use BCE(x, 0) * p^gamma^j (the same expression with y = 0); the weighting
    factor multiplies both; there is no alpha balancing; ``pos_neg`` starts at ones.

    Analytic derivative (d = p - y), used by ``grad_mode="analytic"``; requires gamma^j >= 1:

        |dEQFL/dx| = w^j * |d|^(gamma^j - 1) * (d^2 + gamma^j * p * (1 - p) * BCE(x, y)).
    """

    takes_pos_index = True
    takes_row_weight = True
    quality_targets = True

    def __init__(self, num_classes, gamma_b=2.0, scale_factor=4.0, grad_mode="hook", neg_grad_scale=1.0,
                 stats_layout="per_class", anchors_per_location=1):
        super().__init__()
        self.gamma_b = float(gamma_b)
        self.scale_factor = float(scale_factor)
        self._init_grad_stats(num_classes, grad_mode, initial_ratio=1.0, neg_grad_scale=neg_grad_scale,
                              stats_layout=stats_layout, anchors_per_location=anchors_per_location)

    def gamma_per_class(self):
        """Focusing factor gamma^j = gamma_b + s * (1 - g^j), [C] float32."""
        return self.gamma_b + self.scale_factor * (1.0 - self.pos_neg)

    def _factors(self):
        gamma = self.gamma_per_class().detach().unsqueeze(0)
        return gamma, gamma / self.gamma_b

    takes_pos_targets = EqualizedFocalLoss.takes_pos_targets  # sparse targets in hook mode, as EFL

    def forward(self, logits, targets=None, normalizer=1.0, pos_mask=None, pos_index=None, row_weight=None,
                pos_targets=None):
        """Summed EQFL.

        Args:
            logits: [N, C] raw class scores (any float dtype; computed in float32).
            targets: [N, C] one-hot(class) * IoU quality, in [0, 1], or None for sparse targets (``pos_index``
                and ``pos_targets``; hook mode only, see :attr:`takes_pos_targets`).
            normalizer: what the caller divides the returned sum by before backward (analytic mode only).
            pos_mask: optional bool [N, C] marking positive elements for the statistics (default targets > 0;
                pass one-hot(class) of the foreground anchors to also count positives whose IoU is 0).
            pos_index: optional (rows, cols) of the positive elements instead of pos_mask; must cover every
                non-zero target (the head passes each foreground anchor's class). With sparse targets, the
                [P] rows and [P] classes of the positives (one per row at most).
            row_weight: optional [N] factor on every element of a row (loss and statistics).
            pos_targets: with ``targets=None``, the [P] IoU qualities at pos_index (0 allowed: still a
                positive for the statistics); every other target is 0, and no dense [N, C] target is built.
        Returns:
            float32 scalar, the summed (not normalised) loss.
        """
        _check_shapes(logits, targets, self.num_classes)
        _check_sparse_targets(self, targets, pos_mask, pos_index, pos_targets)
        y = None if targets is None else targets.to(torch.float32)
        x, pos_index, covers, sink, regroup = self._positives_and_stats(logits, y, pos_mask, normalizer, pos_index,
                                                                        row_weight)
        gamma = self.gamma_per_class()
        return modulated_bce_sum(x, y, gamma, gamma / self.gamma_b, None, pos_index, covers, sink, row_weight,
                                 pos_targets, regroup)

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
