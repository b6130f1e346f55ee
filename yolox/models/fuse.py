"""Folding BatchNorm into convolutions for inference."""
import torch
import torch.nn as nn

from .network_blocks import BaseConv

__all__ = ["fuse_conv_and_bn", "fuse_model"]


def fuse_conv_and_bn(conv, bn):
    """A conv with the following BatchNorm folded into its weight and bias (inference only)."""
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      groups=conv.groups, bias=True).requires_grad_(False).to(conv.weight.device)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_((conv_bias - bn.running_mean) * scale + bn.bias)
    return fused


def fuse_model(model):
    """Fold every ``BaseConv``'s BatchNorm into its conv, in place; returns the model."""
    for m in model.modules():
        if isinstance(m, BaseConv) and hasattr(m, "bn"):
            m.conv = fuse_conv_and_bn(m.conv, m.bn)
            delattr(m, "bn")
            m.forward = m.fuseforward
    return model
