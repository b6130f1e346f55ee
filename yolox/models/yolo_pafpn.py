"""YOLOPAFPN: CSPDarknet + a top-down and bottom-up path aggregation neck."""
import torch
import torch.nn as nn

from .darknet import CSPDarknet
from .network_blocks import BaseConv, CSPLayer, conv_block

__all__ = ["YOLOPAFPN"]


class YOLOPAFPN(nn.Module):
    """Returns features at strides (8, 16, 32) with ``in_channels * width`` channels each.

    ``shortcut``: residual bottlenecks in the neck's four CSP layers. Upstream YOLOX builds them without
    (False); the released EFL code's neck keeps CSPLayer's default, True. The state-dict keys are the same
    either way; the backbone's last stage has no shortcut in both."""

    def __init__(self, depth=1.0, width=1.0, in_features=("dark3", "dark4", "dark5"),
                 in_channels=(256, 512, 1024), depthwise=False, act="silu", shortcut=False):
        super().__init__()
        self.backbone = CSPDarknet(depth, width, depthwise=depthwise, act=act)
        self.in_features = in_features
        Conv = conv_block(depthwise)
        c3, c4, c5 = (int(c * width) for c in in_channels)
        n = round(3 * depth)

        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        # top-down
        self.lateral_conv0 = BaseConv(c5, c4, 1, 1, act=act)
        self.C3_p4 = CSPLayer(2 * c4, c4, n, shortcut, depthwise=depthwise, act=act)
        self.reduce_conv1 = BaseConv(c4, c3, 1, 1, act=act)
        self.C3_p3 = CSPLayer(2 * c3, c3, n, shortcut, depthwise=depthwise, act=act)
        # bottom-up
        self.bu_conv2 = Conv(c3, c3, 3, 2, act=act)
        self.C3_n3 = CSPLayer(2 * c3, c4, n, shortcut, depthwise=depthwise, act=act)
        self.bu_conv1 = Conv(c4, c4, 3, 2, act=act)
        self.C3_n4 = CSPLayer(2 * c4, c5, n, shortcut, depthwise=depthwise, act=act)

    def forward(self, images):
        """``[B, 3, H, W]`` -> (P3 ``[B, c3, H/8, W/8]``, P4 ``[B, c4, H/16, W/16]``, P5 ``[B, c5, H/32, W/32]``)."""
        features = self.backbone(images)
        x3, x4, x5 = (features[f] for f in self.in_features)

        top5 = self.lateral_conv0(x5)
        p4 = self.C3_p4(torch.cat([self.upsample(top5), x4], dim=1))
        top4 = self.reduce_conv1(p4)
        out3 = self.C3_p3(torch.cat([self.upsample(top4), x3], dim=1))

        out4 = self.C3_n3(torch.cat([self.bu_conv2(out3), top4], dim=1))
        out5 = self.C3_n4(torch.cat([self.bu_conv1(out4), top5], dim=1))
        return out3, out4, out5
