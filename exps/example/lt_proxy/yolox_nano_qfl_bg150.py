"""Long-tail proxy: QFL with the background of LVIS's density emulated (background_weight = 150).

On this dataset a class's positive anchors are about 150x more frequent among all anchors than on LVIS v1
(rare: 4.8e-5 vs 3.3e-7 per anchor, frequent: 1.3e-3 vs 9.6e-6; docs/lt_benchmark.md). Each background
anchor (not foreground, centre outside every gt box) counts 150 times in the classification loss, as if
the images held 150x more background: the positive-negative imbalance that EFL addresses.

    python tools/lt_benchmark.py --variants fl_bg150 efl_bg150 qfl_bg150 eqfl_bg150 --seeds 0 1
"""
from yolox.exp import LTProxyExp


class Exp(LTProxyExp):
    def __init__(self):
        super().__init__(cls_loss="qfl")
        self.background_weight = 150.0
        self.exp_name = "lt_proxy_nano_qfl_bg150"
