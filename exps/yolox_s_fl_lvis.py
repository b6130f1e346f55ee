"""YOLOX-S on LVIS v1 with focal loss.

EFL supplement, Table 1 row: YOLOX-S, focal loss, YOLOX* yes.
Target on LVIS v1 val (300 epochs from scratch, RFS t=0.001): AP 18.5, APr 3.6, APc 15.7, APf 28.2.

Train / evaluate:

    python tools/train.py -f exps/yolox_s_fl_lvis.py -d 8 -b 128 --fp16
    python tools/eval.py -f exps/yolox_s_fl_lvis.py -c YOLOX_outputs/yolox_s_fl_lvis/best_ckpt.pth -d 8
"""
import os

from yolox.exp import LVISExp


class Exp(LVISExp):
    def __init__(self):
        super().__init__()
        self.depth = 0.33
        self.width = 0.5
        self.use_yolox_star("fl")
        self.exp_name = os.path.split(os.path.realpath(__file__))[1].split(".")[0]
