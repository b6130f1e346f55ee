"""Sigmoid focal loss (Lin et al., 2017), via torchvision."""
from torch import nn
from torchvision.ops import sigmoid_focal_loss

__all__ = ["FocalLoss"]


class FocalLoss(nn.Module):
    """Summed focal loss: sum_ij -alpha_t (1 - p_t)^gamma log(p_t), targets 0/1."""

    quality_targets = False

    def __init__(self, alpha=0.25, gamma=2.0):
        super().__init__()
        self.alpha = float(alpha)
        self.gamma = float(gamma)

    def forward(self, logits, targets, normalizer=1.0):
        """logits, targets: [N, C] -> summed loss, float32 scalar (``normalizer`` unused)."""
        x = logits.float()
        return sigmoid_focal_loss(x, targets.to(x.dtype), alpha=self.alpha, gamma=self.gamma, reduction="sum")

    def extra_repr(self):
        return f"alpha={self.alpha}, gamma={self.gamma}"
