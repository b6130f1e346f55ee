"""Inference-time rewrites: BatchNorm folded into convolutions, and float16 with float32 BatchNorm."""
import torch
import torch.nn as nn

from .network_blocks import BaseConv

__all__ = ["fuse_conv_and_bn", "fuse_model", "half_for_inference"]


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


def half_for_inference(model):
    """Cast ``model`` to float16 for inference (``--fp16``), in place, keeping BatchNorm layers in float32.

    A BatchNorm's running variance can exceed float16's range (65504): the stem sees 0-255 pixels, and the
    stem's variance of a briefly trained model reaches millions (2.2e6 measured on the quick long-tailed set
    after 8 epochs). In float16 it becomes inf and the layer outputs zeros, so every detection is lost (AP 22.5
    -> 13.8 measured on a GPU). ``batch_norm`` takes float16 inputs with float32 statistics, as under autocast,
    and returns float16. Returns the model."""
    # Cast module by module: model.half() followed by bn.float() would already have turned the variance to inf.
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            continue
        for p in m.parameters(recurse=False):
            p.data = p.data.half()
        for name, buf in m.named_buffers(recurse=False):
            if buf.is_floating_point():
                m._buffers[name] = buf.half()
    return model
