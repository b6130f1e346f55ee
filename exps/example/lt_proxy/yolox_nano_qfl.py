"""Long-tail proxy benchmark: YOLOX-nano with the qfl classification loss on the generated dataset.

    python tools/make_lt_dataset.py --preset benchmark --out datasets/lt_proxy
    python tools/train.py -f exps/example/lt_proxy/yolox_nano_qfl.py -d 1 -b 16 --device cpu
"""
from yolox.exp import LTProxyExp


class Exp(LTProxyExp):
    def __init__(self):
        super().__init__(cls_loss="qfl")
