"""Long-tail proxy: EFL with each background anchor counted 150 times in the classification loss, the
measured gap in positives per anchor between this dataset and LVIS v1 (docs/lt_benchmark.md).

    python tools/lt_benchmark.py --variants fl_bg150 efl_bg150 qfl_bg150 eqfl_bg150 --seeds 0 1
"""
from yolox.exp import LTProxyExp


class Exp(LTProxyExp):
    def __init__(self):
        super().__init__(cls_loss="efl")
        self.background_weight = 150.0
