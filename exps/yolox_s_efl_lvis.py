"""YOLOX-S on LVIS v1 with Equalized Focal Loss.

EFL supplement, Table 1 row: YOLOX-S, Equalized Focal Loss, YOLOX* yes.
Target on LVIS v1 val (300 epochs from scratch, RFS t=0.001): AP 23.3, APr 18.1, APc 21.2, APf 28.0.

The EFL statistic is the released code's (``efl_stats_layout = "released"``): with YOLOX*'s two anchors
per location it reads each class's gradients from other classes' channels (docs/recipe.md), and that is
what produced the published row. The paper's per-class statistic: append ``efl_stats_layout per_class``
to the train command.

Train / evaluate:

    python tools/train.py -f exps/yolox_s_efl_lvis.py -d 8 -b 128 --fp16
    python tools/eval.py -f exps/yolox_s_efl_lvis.py -c YOLOX_outputs/yolox_s_efl_lvis/best_ckpt.pth -d 8
"""
import os

from yolox.exp import LVISExp


class Exp(LVISExp):
    def __init__(self):
        super().__init__()
        self.depth = 0.33
        self.width = 0.5
        self.use_yolox_star("efl")
        self.efl_stats_layout = "released"
        self.exp_name = os.path.split(os.path.realpath(__file__))[1].split(".")[0]
