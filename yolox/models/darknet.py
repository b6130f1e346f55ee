"""CSPDarknet backbone of YOLOX."""
import torch.nn as nn

from .network_blocks import BaseConv, CSPLayer, Focus, SPPBottleneck, conv_block

__all__ = ["CSPDarknet"]


class CSPDarknet(nn.Module):
    """CSPDarknet with Focus stem; returns the features named in ``out_features``.

    Args:
        dep_mul / wid_mul: depth and width multipliers (e.g. 0.33 / 0.50 for YOLOX-S).
    Output strides: stem 2, dark2 4, dark3 8, dark4 16, dark5 32.
    """

    def __init__(self, dep_mul, wid_mul, out_features=("dark3", "dark4", "dark5"), depthwise=False, act="silu"):
        super().__init__()
        self.out_features = out_features
        Conv = conv_block(depthwise)
        base_channels = int(wid_mul * 64)
        base_depth = max(round(dep_mul * 3), 1)

        self.stem = Focus(3, base_channels, ksize=3, act=act)
        self.dark2 = self._stage(Conv, base_channels, base_channels * 2, base_depth, depthwise, act)
        self.dark3 = self._stage(Conv, base_channels * 2, base_channels * 4, base_depth * 3, depthwise, act)
        self.dark4 = self._stage(Conv, base_channels * 4, base_channels * 8, base_depth * 3, depthwise, act)
        c5 = base_channels * 16
        self.dark5 = nn.Sequential(
            Conv(base_channels * 8, c5, 3, 2, act=act),
            SPPBottleneck(c5, c5, activation=act),
            CSPLayer(c5, c5, n=base_depth, shortcut=False, depthwise=depthwise, act=act),
        )

    @staticmethod
    def _stage(Conv, in_channels, out_channels, depth, depthwise, act):
        return nn.Sequential(
            Conv(in_channels, out_channels, 3, 2, act=act),
            CSPLayer(out_channels, out_channels, n=depth, depthwise=depthwise, act=act),
        )

    def forward(self, x):
        outputs = {}
        x = self.stem(x)
        outputs["stem"] = x
        for name in ("dark2", "dark3", "dark4", "dark5"):
            x = getattr(self, name)(x)
            outputs[name] = x
        return {k: v for k, v in outputs.items() if k in self.out_features}
