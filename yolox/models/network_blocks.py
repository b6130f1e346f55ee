"""Building blocks of CSPDarknet / PAFPN / the YOLOX head.

Attribute names (``conv``, ``bn``, ``dconv``, ``pconv``, ``conv1``..``conv3``, ``m``) are part of the
checkpoint format: they must stay as they are for the published YOLOX weights to load.
"""
import torch
import torch.nn as nn

__all__ = ["get_activation", "BaseConv", "DWConv", "Bottleneck", "SPPBottleneck", "CSPLayer", "Focus", "PredictionConv"]


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


class _PointwiseRows(torch.autograd.Function):
    """A 1x1 convolution computed as one matrix product over channels-last rows (see PredictionConv)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        b, c, h, w = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(b * h * w, c)  # no copy when x is channels-last already
        weight2d = weight.view(weight.shape[0], c)
        out = torch.addmm(bias, rows, weight2d.t()) if bias is not None else rows @ weight2d.t()
        ctx.save_for_backward(rows, weight2d)
        ctx.input_shape, ctx.has_bias = x.shape, bias is not None
        ctx.input_channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        # [B, out, H, W] with channels-last strides: the values of the convolution without its NCHW copy.
        return out.view(b, h, w, -1).permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad):
        rows, weight2d = ctx.saved_tensors
        b, c, h, w = ctx.input_shape
        per_image = h * w
        # The incoming gradient is usually a slice of a larger [B, N, C] buffer (the head concatenates the
        # levels along N): each image's block of it is contiguous, the whole slice is not, so the products run
        # image by image on views instead of on a copy.
        grad_rows = grad.permute(0, 2, 3, 1)
        grad_x = rows.new_empty(b, per_image, c) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros_like(weight2d) if ctx.needs_input_grad[1] else None
        grad_b = weight2d.new_zeros(weight2d.shape[0]) if ctx.has_bias and ctx.needs_input_grad[2] else None
        for i in range(b):
            g = grad_rows[i].reshape(per_image, -1)
            if grad_x is not None:
                torch.mm(g, weight2d, out=grad_x[i])
            if grad_w is not None:
                grad_w.addmm_(g.t(), rows[i * per_image:(i + 1) * per_image])
            if grad_b is not None:
                grad_b += g.sum(0)
        if grad_x is not None:
            # in the input's own layout: the layers below then run their backward exactly as under nn.Conv2d
            grad_x = grad_x.view(b, h, w, c).permute(0, 3, 1, 2)
            if not ctx.input_channels_last:
                grad_x = grad_x.contiguous()
        if grad_w is not None:
            grad_w = grad_w.view(weight2d.shape[0], c, 1, 1)
        return grad_x, grad_w, grad_b


class PredictionConv(nn.Conv2d):
    """The head's 1x1 prediction convolution (an ``nn.Conv2d``: same parameters, state-dict keys and hooks).

    On the CPU it is computed as one matrix product over channels-last rows and returns the result with
    channels-last strides, so that the head's ``[B, H*W*anchors, C]`` layout is a view instead of a copy. With
    1203 LVIS classes (2406 channels for YOLOX*'s two anchors) the oneDNN convolution plus that copy costs
    several times the product itself, forward and backward (docs/benchmarks.md, section 1). Elsewhere (CUDA,
    autocast, tracing or ``torch.export`` for export, ``torch.compile``) it is the plain convolution.
    """

    def __init__(self, in_channels, out_channels):
        super().__init__(in_channels, out_channels, 1, 1, 0)

    def forward(self, x):
        if (x.device.type != "cpu" or x.dtype != torch.float32 or self.weight.dtype != torch.float32
                or torch.is_autocast_enabled("cpu") or torch.jit.is_tracing() or torch.jit.is_scripting()
                or torch.compiler.is_compiling() or torch.compiler.is_exporting()):
            return super().forward(x)
        return _PointwiseRows.apply(x, self.weight, self.bias)
