"""Long-tail proxy: EFL with its gradient statistics calibrated to LVIS's scale (kappa = 1000).

g^j = pos_grad / (kappa * neg_grad). The sums are absolute: a rare class's positives scale with its handful
of images, its negatives with every image-anchor of the dataset. An LVIS epoch has ~1e5 images x 16800
anchors (640 px, 2 anchors per location), this dataset ~1.7e3 x 1050 (160 px): ~1000x fewer negatives for
the same rare positives, so g^j saturates at 1 and EFL reduces to FL. kappa = 1000 restores the ratio
(docs/lt_benchmark.md). Not a setting for real LVIS training, where kappa = 1 is the paper's loss.

    python tools/lt_benchmark.py --variants efl efl_k1000 --seeds 0 1
"""
from yolox.exp import LTProxyExp


class Exp(LTProxyExp):
    def __init__(self):
        super().__init__(cls_loss="efl")
        self.cls_loss_kwargs = {"neg_grad_scale": 1000.0}
        self.exp_name = "lt_proxy_nano_efl_k1000"
