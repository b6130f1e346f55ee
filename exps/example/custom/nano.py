"""YOLOX-Nano on a dataset of your own in COCO format (docs/train_custom_data.md): depthwise convolutions in
backbone and head, width 0.25, 416x416 inputs, no mixup. Copy it, point ``data_dir`` at your folder and set
``num_classes``.

    python tools/train.py -f exps/example/custom/nano.py -d 1 -b 16 -c yolox_nano.pth

Multi-scale training draws sizes 32 * ``random_size`` = 320 to 640 px (upstream's nano range) instead of
``input_size / 32 +- multiscale_range``.
"""
import os
import random

from yolox.exp import Exp as MyExp


class Exp(MyExp):
    def __init__(self):
        super().__init__()
        self.depth = 0.33
        self.width = 0.25
        self.depthwise = True
        self.input_size = (416, 416)
        self.mosaic_scale = (0.5, 1.5)
        self.random_size = (10, 20)
        self.test_size = (416, 416)
        self.exp_name = os.path.split(os.path.realpath(__file__))[1].split(".")[0]
        self.enable_mixup = False

        # your dataset
        self.data_dir = "datasets/coco128"
        self.train_ann = "instances_train2017.json"
        self.val_ann = "instances_val2017.json"

        self.num_classes = 71

    def get_model(self):
        # Nano's one architectural difference: depthwise separable convolutions in the backbone, neck and head.
        self.depthwise = True
        return super().get_model()

    def train_sizes(self):
        if self.multiscale_mode == "batch" or self.multiscale_range <= 0 or self.random_size is None:
            return super().train_sizes()
        return tuple(32 * k for k in range(self.random_size[0], self.random_size[1] + 1))

    def random_resize(self, data_loader, epoch, rank, is_distributed):
        """A size drawn from ``random_size`` (in strides of 32) when it is set, the same on every rank."""
        if self.random_size is None:
            return super().random_resize(data_loader, epoch, rank, is_distributed)
        import torch
        import torch.distributed as dist

        tensor = torch.zeros(2, dtype=torch.long)
        if rank == 0:
            aspect = self.input_size[1] / self.input_size[0]
            size = random.randint(*self.random_size)
            tensor[0], tensor[1] = 32 * size, 32 * int(size * aspect)
        if is_distributed:
            if dist.get_backend() == "nccl":
                tensor = tensor.cuda()
            dist.broadcast(tensor, 0)
            tensor = tensor.cpu()
        return int(tensor[0]), int(tensor[1])
