"""YOLOX-S on a dataset of your own in COCO format (docs/train_custom_data.md): copy this file, point
``data_dir`` at your folder and set ``num_classes`` to the number of categories in its json.

    python tools/train.py -f exps/example/custom/yolox_s.py -d 1 -b 16 --fp16 -c yolox_s.pth

The example data is COCO128 in COCO format (``datasets/coco128``, relative to where you run the tools):
``annotations/instances_train2017.json`` over ``train2017/``, ``annotations/instances_val2017.json`` over
``val2017/``; its 128 images hold 71 of COCO's 80 categories.
"""
import os

from yolox.exp import Exp as MyExp


class Exp(MyExp):
    def __init__(self):
        super().__init__()
        self.depth = 0.33
        self.width = 0.50
        self.exp_name = os.path.split(os.path.realpath(__file__))[1].split(".")[0]

        # your dataset
        self.data_dir = "datasets/coco128"
        self.train_ann = "instances_train2017.json"
        self.val_ann = "instances_val2017.json"

        self.num_classes = 71

        self.max_epoch = 300
        self.data_num_workers = 4
        self.eval_interval = 1
