"""YOLOX-M on LVIS v1 with EQLv2* (EQLv2 combined with focal loss) on the YOLOX* supervisor.

EFL supplement, Table 3 baseline (no Table 1 row); compare with exps/yolox_m_efl_lvis.py.

Train / evaluate:

    python tools/train.py -f exps/yolox_m_eqlv2_lvis.py -d 8 -b 128 --fp16
    python tools/eval.py -f exps/yolox_m_eqlv2_lvis.py -c YOLOX_outputs/yolox_m_eqlv2_lvis/best_ckpt.pth -d 8
"""
import os

from yolox.exp import LVISExp


class Exp(LVISExp):
    def __init__(self):
        super().__init__()
        self.depth = 0.67
        self.width = 0.75
        self.use_yolox_star("eqlv2")
        self.exp_name = os.path.split(os.path.realpath(__file__))[1].split(".")[0]
