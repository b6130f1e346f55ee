"""YOLOX-S on LVIS v1 with sigmoid BCE (original YOLOX supervisor).

EFL supplement, Table 1 row: YOLOX-S, sigmoid BCE (original YOLOX supervisor), YOLOX* no.
Target on LVIS v1 val (300 epochs from scratch, RFS t=0.001): AP 15.2, APr 2.9, APc 11.6, APf 24.7.

Train / evaluate:

    python tools/train.py -f exps/yolox_s_sigmoid_lvis.py -d 8 -b 128 --fp16
    python tools/eval.py -f exps/yolox_s_sigmoid_lvis.py -c YOLOX_outputs/yolox_s_sigmoid_lvis/best_ckpt.pth -d 8
"""
import os

from yolox.exp import LVISExp


class Exp(LVISExp):
    def __init__(self):
        super().__init__()
        self.depth = 0.33
        self.width = 0.5
        self.exp_name = os.path.split(os.path.realpath(__file__))[1].split(".")[0]
