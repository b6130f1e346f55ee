"""Building blocks of CSPDarknet / PAFPN / the YOLOX head.

Attribute names (``conv``, ``bn``, ``dconv``, ``pconv``, ``conv1``..``conv3``, ``m``) are part of the
checkpoint format: they must stay as they are for the published YOLOX weights to load.
"""
import torch
import torch.nn as nn

__all__ = ["get_activation", "BaseConv", "DWConv", "Bottleneck", "SPPBottleneck", "CSPLayer", "Focus"]


def get_activation(name="silu", inplace=True):
    if name == "silu":
        return nn.SiLU(inplace=inplace)
    if name == "relu":
        return nn.ReLU(inplace=inplace)
    if name == "lrelu":
        return nn.LeakyReLU(0.1, inplace=inplace)
    raise ValueError(f"unsupported activation: {name!r} (expected silu, relu or lrelu)")


class BaseConv(nn.Module):
    """Conv2d ('same' padding for odd kernels) -> BatchNorm2d -> activation."""

    def __init__(self, in_channels, out_channels, ksize, stride, groups=1, bias=False, act="silu"):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, ksize, stride=stride, padding=(ksize - 1) // 2, groups=groups, bias=bias
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = get_activation(act, inplace=True)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))

    def fuseforward(self, x):
        """Forward after :func:`yolox.utils.fuse_model` folded the BN into the conv."""
        return self.act(self.conv(x))


class DWConv(nn.Module):
    """Depthwise conv followed by a 1x1 pointwise conv (YOLOX-nano)."""

    def __init__(self, in_channels, out_channels, ksize, stride=1, act="silu"):
        super().__init__()
        self.dconv = BaseConv(in_channels, in_channels, ksize, stride, groups=in_channels, act=act)
        self.pconv = BaseConv(in_channels, out_channels, 1, 1, act=act)

    def forward(self, x):
        return self.pconv(self.dconv(x))


def conv_block(depthwise):
    return DWConv if depthwise else BaseConv


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 conv, with a residual connection when shapes allow."""

    def __init__(self, in_channels, out_channels, shortcut=True, expansion=0.5, depthwise=False, act="silu"):
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1, 1, act=act)
        self.conv2 = conv_block(depthwise)(hidden, out_channels, 3, 1, act=act)
        self.use_add = shortcut and in_channels == out_channels

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling: max-pools of several kernel sizes concatenated with the input."""

    def __init__(self, in_channels, out_channels, kernel_sizes=(5, 9, 13), activation="silu"):
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = BaseConv(in_channels, hidden, 1, 1, act=activation)
        self.m = nn.ModuleList([nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes])
        self.conv2 = BaseConv(hidden * (len(kernel_sizes) + 1), out_channels, 1, 1, act=activation)

    def forward(self, x):
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [pool(x) for pool in self.m], dim=1))


class CSPLayer(nn.Module):
    """Cross-stage-partial layer: two 1x1 branches, one through ``n`` bottlenecks, fused by a 1x1 conv."""

    def __init__(self, in_channels, out_channels, n=1, shortcut=True, expansion=0.5, depthwise=False, act="silu"):
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1, 1, act=act)
        self.conv2 = BaseConv(in_channels, hidden, 1, 1, act=act)
        self.conv3 = BaseConv(2 * hidden, out_channels, 1, 1, act=act)
        self.m = nn.Sequential(
            *[Bottleneck(hidden, hidden, shortcut, 1.0, depthwise, act=act) for _ in range(n)]
        )

    def forward(self, x):
        return self.conv3(torch.cat([self.m(self.conv1(x)), self.conv2(x)], dim=1))


class Focus(nn.Module):
    """Space-to-depth (2x2 pixels -> 4 channels) followed by a conv.

    The channel order (top-left, bottom-left, top-right, bottom-right) is the one the published
    weights were trained with.
    """

    def __init__(self, in_channels, out_channels, ksize=1, stride=1, act="silu"):
        super().__init__()
        self.conv = BaseConv(in_channels * 4, out_channels, ksize, stride, act=act)

    def forward(self, x):
        top_left = x[..., ::2, ::2]
        top_right = x[..., ::2, 1::2]
        bottom_left = x[..., 1::2, ::2]
        bottom_right = x[..., 1::2, 1::2]
        return self.conv(torch.cat([top_left, bottom_left, top_right, bottom_right], dim=1))
