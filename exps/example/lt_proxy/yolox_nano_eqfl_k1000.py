"""Long-tail proxy, an experiment with a negative result: EQFL with its statistic's negative sum x1000.

g^j = pos_grad / (kappa * neg_grad), kappa = 1000, the ~1000x fewer image-anchors of this dataset than of
an LVIS epoch. It drives every class, frequent ones included, to g ~ 0 (gamma ~ 6): the negatives it scales
are mostly near-object ones that grow with each class's own frequency (docs/lt_benchmark.md). The
``*_bg150`` experiments emulate the missing background in the loss instead. kappa = 1 is the paper's loss.

    python tools/lt_benchmark.py --variants eqfl eqfl_k1000 --seeds 0 1
"""
from yolox.exp import LTProxyExp


class Exp(LTProxyExp):
    def __init__(self):
        super().__init__(cls_loss="eqfl")
        self.cls_loss_kwargs = {"neg_grad_scale": 1000.0}
