"""``LTProxyExp``: the laptop-sized stand-in for Table 1 (YOLOX-nano on a generated long-tailed dataset).

The dataset comes from ``tools/make_lt_dataset.py`` (LVIS v1 format, frequency groups like LVIS's);
``data_dir`` defaults to ``datasets/lt_proxy``. Every loss variant shares everything but the supervisor
and the classification loss, as in Table 1: sigmoid = plain YOLOX + RFS, the others YOLOX*.
"""
import os

from .lvis_base import LVISExp

__all__ = ["LTProxyExp"]


class LTProxyExp(LVISExp):
    def __init__(self, cls_loss="efl"):
        super().__init__()
        self.depth, self.width, self.depthwise = 0.33, 0.25, True
        self.num_classes = 30
        self.data_dir = None
        self.input_size = (320, 320)
        self.test_size = (320, 320)
        self.multiscale_range = 2
        self.mosaic_scale = (0.5, 1.5)
        self.enable_mixup = False
        self.max_labels = 100
        # RFS repeats classes seen in fewer than t of the images. LVIS's t = 0.001 assumes 100k images; on a
        # few hundred it would repeat nothing, so t is raised to repeat the proxy's rare classes ~2-3x.
        self.repeat_thresh = 0.1
        self.max_epoch = 24
        self.warmup_epochs = 2
        self.no_aug_epochs = 4
        self.eval_interval = 6
        self.print_interval = 20
        self.data_num_workers = 2
        self.save_history_ckpt = False
        self.seed = 0
        self.basic_lr_per_img = 0.02 / 64
        if cls_loss != "sigmoid":
            self.use_yolox_star(cls_loss)
            # Shorter than Table 1 (minutes, not days): keep the same learning rate for every variant.
            self.basic_lr_per_img = 0.02 / 64
        self.exp_name = f"lt_proxy_nano_{cls_loss}"

    def get_data_dir(self):
        if self.data_dir is not None:
            return self.data_dir
        from yolox.data import get_yolox_datadir

        return os.path.join(get_yolox_datadir(), "lt_proxy")
