"""Long-tail proxy benchmark: YOLOX-nano with efl and the released code's gradient statistic.

The statistic the EFL authors' code computes with two anchors per location (docs/recipe.md); the
Table 1 efl exps use it. ``yolox_nano_efl.py`` is the same run with the paper's per-class statistic.

    python tools/train.py -f exps/example/lt_proxy/yolox_nano_efl_released.py -d 1 -b 16 --device cpu
"""
from yolox.exp import LTProxyExp


class Exp(LTProxyExp):
    def __init__(self):
        super().__init__(cls_loss="efl")
        self.efl_stats_layout = "released"
