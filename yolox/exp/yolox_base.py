"""``Exp``: the YOLOX defaults (COCO, 80 classes) and the switches of the long-tail variants.

An experiment file subclasses :class:`Exp` and changes attributes in ``__init__``; the ``get_*`` methods
compose the model, data, optimiser and evaluator from them. The attribute names are upstream YOLOX's,
plus the long-tail ones documented below.
"""
import os
import random

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from yolox.utils.dist import get_rank, get_world_size

from .base_exp import BaseExp
from .compatible_settings import check_compatible_settings, switched_off_settings

__all__ = ["Exp"]


class Exp(BaseExp):
    def __init__(self):
        super().__init__()
        # ---------------- model ---------------- #
        self.num_classes = 80
        self.depth = 1.00
        self.width = 1.00
        self.act = "silu"
        self.depthwise = False
        # Residual bottlenecks in the neck's CSP layers: upstream YOLOX False, the released EFL code True.
        self.neck_shortcut = False
        # The supervisor. YOLOX: anchor_scales=None, assigner "simota", cls_loss "sigmoid".
        # YOLOX*: anchor_scales=(3, 4), assigner "atss" (atss_topk 18), an focal-type cls_loss.
        self.anchor_scales = None
        self.assigner = "simota"
        self.atss_topk = 9
        # Added to widths and heights in ATSS's IoUs: 0 the plain IoU, 1 the released code's CUDA kernel.
        self.atss_iou_offset = 0.0
        self.simota_center_radius = 1.5
        self.cls_loss = "sigmoid"  # sigmoid | fl | qfl | efl | eqfl | eqlv2
        self.cls_loss_kwargs = {}
        self.box_loss_weight = 5.0
        self.l1_loss_weight = 1.0
        self.quality_loss_weight = 1.0
        self.cls_loss_weight = 1.0
        # YOLOX* only: classification-loss weight of background anchors (not foreground, centre outside
        # every gt box). 1 is the paper's loss; K > 1 counts each as K anchors, i.e. emulates a dataset with
        # K times more background per object (docs/lt_benchmark.md).
        self.background_weight = 1.0
        # EFL / EQFL gradient statistic: "per_class" (the paper's g^j, each class's own logits) or "released"
        # (the authors' code, which reads a [class][anchor] channel layout as [anchor][class]; identical
        # with one anchor per location). See docs/recipe.md.
        self.efl_stats_layout = "per_class"
        # Initial probability of every class and of the objectness / IoU branch (the biases' init).
        self.prior_prob = 1e-2

        # ---------------- dataloader ---------------- #
        # workers per process: the CPUs this process may use over the local processes, at most 8 (logged)
        from yolox.data.dataloading import default_num_workers
        self.data_num_workers = default_num_workers(log=False)  # logged when a training loader is built
        self.input_size = (640, 640)  # (height, width)
        # Multi-scale training: sizes (input_size / 32 +- multiscale_range) * 32; 0 disables. "batch": one size per
        # batch, changed every 10 iterations by resizing the batch (upstream YOLOX); "image": each image its own
        # size (longer side), padded at the top-left to a square and the batch padded to its largest (the
        # released EFL code's per-image resize).
        self.multiscale_range = 5
        self.multiscale_mode = "batch"
        self.data_dir = None  # None: <YOLOX_DATADIR or repo/datasets>/COCO
        self.dataset_format = "coco"  # coco | lvis
        self.train_ann = "instances_train2017.json"
        self.val_ann = "instances_val2017.json"
        self.test_ann = "instances_test2017.json"
        self.train_name = "train2017"
        self.val_name = "val2017"
        self.max_labels = 120
        self.skip_bad_images = False
        # Repeat-factor sampling (LVIS): None disables, else the threshold t of r_c = max(1, sqrt(t / f_c)).
        self.repeat_thresh = None
        self.rfs_rounding = "stochastic"  # stochastic | ceil
        # What an epoch is under RFS: "repeated", one pass of the repeated stream; "dataset", the image count
        # before repetition (the released EFL code's runner), with the stream still repeated.
        self.rfs_epoch_unit = "repeated"

        # ---------------- transform ---------------- #
        self.mosaic_prob = 1.0
        self.mixup_prob = 1.0
        self.hsv_prob = 1.0
        # None: YOLOX's colour jitter (integer HSV offsets); (h, s, v): multiplicative gains instead.
        self.hsv_gains = None
        self.flip_prob = 0.5
        self.degrees = 10.0
        self.translate = 0.1
        self.mosaic_scale = (0.1, 2)
        self.enable_mixup = True
        self.mixup_scale = (0.5, 1.5)
        self.shear = 2.0
        # The released EFL code's pipeline differs from upstream YOLOX's in these; upstream's values here,
        # LVISExp sets the released ones (docs/recipe.md).
        self.affine_window = "top_left"  # top_left: upstream's affine about the canvas origin; centred: T.S.R.C
        self.box_filter = "clip"  # clip: keep any clipped box over 1 px; released: box_candidates after the affine
        self.fill_value = 114  # grey of every padded or uncovered pixel (mosaic, affine, mixup, letterbox, batch)
        self.mixup_flip_prob = 0.5  # the released mixup never mirrors its partner
        self.mixup_partners = "labelled"  # labelled: images with boxes; any: every image (unlabelled: no blend)

        # ---------------- training ---------------- #
        self.warmup_epochs = 5
        self.max_epoch = 300
        self.warmup_lr = 0
        self.min_lr_ratio = 0.05
        self.basic_lr_per_img = 0.01 / 64.0
        # Gradient accumulation: micro-batches per optimizer step (-b stays the step's total batch, and the
        # learning rate follows it); docs/accumulation.md.
        self.accumulate_steps = 1
        self.scheduler = "yoloxwarmcos"
        self.no_aug_epochs = 15
        # upstream YOLOX switches one epoch early (the last no_aug_epochs + 1 epochs); False: the last no_aug_epochs
        self.no_aug_extra_epoch = True
        self.ema = True
        self.ema_decay = 0.9999
        self.weight_decay = 5e-4
        # Weight decay of the final classification convs' biases (upstream YOLOX: no decay on any bias;
        # the EFL supplement sets 1e-4 there and calls it vital for EFL).
        self.cls_bias_weight_decay = 0.0
        self.momentum = 0.9
        self.print_interval = 10
        self.eval_interval = 10
        self.save_history_ckpt = True
        # 0: checkpoints at epoch ends only; N: also a resumable ``latest`` every N iterations.
        self.ckpt_interval_iters = 0
        # Stop after this many consecutive non-finite losses (or, under AMP, gradient overflows).
        self.max_consecutive_nonfinite = 10
        self.max_consecutive_overflow = 50
        # Training images travel from the loader's workers as uint8 (the same integer values as float32, a
        # quarter of the bytes); "float32" for upstream's batches.
        self.train_image_dtype = "uint8"
        # Throughput options (docs/benchmarks.md); each gives the default path's losses on the CPU tests.
        self.channels_last = False  # model and inputs in NHWC memory format (faster convs on tensor cores)
        self.compile_model = False  # torch.compile the backbone and the head's towers (eager if it fails)
        self.compile_backend = "inductor"
        self.compile_mode = None  # e.g. "max-autotune-no-cudagraphs"
        self.fused_optimizer = False  # SGD's fused kernel

        # ---------------- testing ---------------- #
        self.test_size = (640, 640)
        self.test_conf = 0.01
        self.nmsthre = 0.65
        self.max_det = 300  # multi-label post-processing (LVIS) only
        # YOLOX* (anchor_scales set): candidates per image and pyramid level before NMS (the released
        # inference; test_conf applies on top when > 0).
        self.pre_nms_topk = 1000

    def check(self):
        """The supervisor, loss and data settings must work together: :mod:`yolox.exp.compatible_settings`."""
        check_compatible_settings(self)

    def switched_off(self):
        return switched_off_settings(self)

    # ------------------------------------------------------------------ model
    def get_cls_loss(self):
        from yolox.models.losses import build_cls_loss

        kwargs = dict(self.cls_loss_kwargs)
        if self.cls_loss.lower() in ("efl", "eqfl"):
            kwargs.setdefault("stats_layout", self.efl_stats_layout)
            kwargs.setdefault("anchors_per_location", len(self.anchor_scales) if self.anchor_scales else 1)
        return build_cls_loss(self.cls_loss, self.num_classes, **kwargs)

    def get_assigner(self):
        from yolox.models.assigners import ATSSAssigner, SimOTAAssigner

        self.check()
        if self.assigner == "atss":
            return ATSSAssigner(topk=self.atss_topk, iou_offset=self.atss_iou_offset)
        return SimOTAAssigner(center_radius=self.simota_center_radius)

    def get_model(self):
        from yolox.models import YOLOPAFPN, YOLOX, YOLOXHead

        self.check()  # conflicting supervisor settings fail here with their names, not at the first step

        def init_yolo(module):
            for m in module.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eps = 1e-3
                    m.momentum = 0.03

        if getattr(self, "model", None) is None:
            in_channels = [256, 512, 1024]
            backbone = YOLOPAFPN(self.depth, self.width, in_channels=in_channels, act=self.act, depthwise=self.depthwise,
                                 shortcut=self.neck_shortcut)
            head = YOLOXHead(
                self.num_classes, self.width, in_channels=in_channels, act=self.act, depthwise=self.depthwise,
                anchor_scales=self.anchor_scales, assigner=self.get_assigner(), cls_loss=self.get_cls_loss(),
                box_loss_weight=self.box_loss_weight, l1_loss_weight=self.l1_loss_weight,
                quality_loss_weight=self.quality_loss_weight, cls_loss_weight=self.cls_loss_weight,
                background_weight=self.background_weight,
            )
            self.model = YOLOX(backbone, head)
        init_yolo(self.model)
        self.model.head.initialize_biases(self.prior_prob)
        self.model.train()
        return self.model

    # ------------------------------------------------------------------ data
    def get_data_dir(self):
        from yolox.data import get_yolox_datadir

        if self.data_dir is not None:
            return self.data_dir
        return os.path.join(get_yolox_datadir(), "LVIS" if self.dataset_format == "lvis" else "COCO")

    def _dataset_class(self):
        from yolox.data import COCODataset, LVISDataset

        self.check()
        return LVISDataset if self.dataset_format == "lvis" else COCODataset

    def train_sizes(self):
        """The training sizes (pixels, multiples of 32) of ``multiscale_mode`` "image", else None."""
        if self.multiscale_mode == "batch" or self.multiscale_range <= 0:
            return None
        base = self.input_size[0] // 32
        return tuple(32 * k for k in range(max(base - self.multiscale_range, 1), base + self.multiscale_range + 1))

    def get_train_transform(self):
        from yolox.data import TrainTransform

        return TrainTransform(max_labels=self.max_labels, flip_prob=self.flip_prob, hsv_prob=self.hsv_prob,
                              hsv_gains=self.hsv_gains, image_dtype=np.dtype(self.train_image_dtype),
                              box_filter=self.box_filter, fill_value=self.fill_value, size_choices=self.train_sizes())

    def get_dataset(self, cache=False, cache_type="ram"):
        """The training dataset without mosaic (images resized for ``input_size``)."""
        return self._dataset_class()(
            data_dir=self.get_data_dir(), json_file=self.train_ann, name=self.train_name, img_size=self.input_size,
            preproc=self.get_train_transform(), cache=cache, cache_type=cache_type,
            skip_bad_images=self.skip_bad_images,
        )

    def get_train_sampler(self, dataset, start=0):
        """Infinite sampler over the dataset, with repeat-factor sampling when ``repeat_thresh`` is set.

        ``start`` skips this rank's first ``start`` indices (resuming mid-run)."""
        from yolox.data import InfiniteSampler, RepeatFactorSampler, repeat_factors_from_categories

        seed = self.seed if self.seed is not None else 0
        common = dict(seed=seed, rank=get_rank(), world_size=get_world_size(), start=start)
        if self.repeat_thresh is None:
            return InfiniteSampler(len(dataset), shuffle=True, **common)
        factors = repeat_factors_from_categories(dataset.img_cat_ids(), self.repeat_thresh)
        return RepeatFactorSampler(factors, shuffle=True, rounding=self.rfs_rounding, epoch_unit=self.rfs_epoch_unit,
                                   **common)

    def get_data_loader(self, batch_size, is_distributed, no_aug=False, cache_img=None, sampler_start=0):
        """The training loader. ``batch_size`` is per process."""
        from yolox.data import DataLoader, MosaicDetection, YoloBatchSampler, pad_collate, worker_init_reset_seed
        from yolox.data.dataloading import default_num_workers

        if self.data_num_workers == default_num_workers(log=False):
            default_num_workers()  # say once why this many workers (the default, unless set to the same value)

        dataset = self.get_dataset(cache=cache_img is not None, cache_type=cache_img or "ram")
        self.dataset = MosaicDetection(
            dataset, img_size=self.input_size, mosaic=not no_aug,
            preproc=self.get_train_transform(),
            degrees=self.degrees, translate=self.translate, mosaic_scale=self.mosaic_scale,
            mixup_scale=self.mixup_scale, shear=self.shear, enable_mixup=self.enable_mixup,
            mosaic_prob=self.mosaic_prob, mixup_prob=self.mixup_prob, affine_window=self.affine_window,
            box_filter=self.box_filter, fill_value=self.fill_value, mixup_flip_prob=self.mixup_flip_prob,
            mixup_partners=self.mixup_partners,
        )
        sampler = self.get_train_sampler(dataset, start=sampler_start)
        batch_sampler = YoloBatchSampler(sampler=sampler, batch_size=batch_size, drop_last=False, mosaic=not no_aug)
        kwargs = {"num_workers": self.data_num_workers, "pin_memory": torch.cuda.is_available(),
                  "batch_sampler": batch_sampler}
        if self.train_sizes() is not None:  # images of different sizes: padded to the batch's largest
            kwargs["collate_fn"] = pad_collate(self.fill_value)
        if self.data_num_workers > 0:
            kwargs["worker_init_fn"] = worker_init_reset_seed
            kwargs["persistent_workers"] = False
        return DataLoader(self.dataset, **kwargs)

    def class_frequency_groups(self, dataset):
        """'r'/'c'/'f' per contiguous class when the dataset knows them (LVIS), else None."""
        return getattr(dataset, "category_frequency", None)

    def random_resize(self, data_loader, epoch, rank, is_distributed):
        """A random multiple-of-32 training size, the same on every rank. Returns (h, w)."""
        tensor = torch.zeros(2, dtype=torch.long)
        if rank == 0:
            aspect = self.input_size[1] / self.input_size[0]
            base = self.input_size[0] // 32
            size = random.randint(max(base - self.multiscale_range, 1), base + self.multiscale_range)
            tensor[0], tensor[1] = size * 32, 32 * int(size * aspect)
        if is_distributed:
            backend = dist.get_backend()
            if backend == "nccl":
                tensor = tensor.cuda()
            dist.broadcast(tensor, 0)
            tensor = tensor.cpu()
        return int(tensor[0]), int(tensor[1])

    def preprocess(self, inputs, targets, tsize):
        """Resize a batch (and its box targets) from the loader's size to ``tsize`` = (h, w)."""
        scale_y = tsize[0] / self.input_size[0]
        scale_x = tsize[1] / self.input_size[1]
        if scale_x != 1 or scale_y != 1:
            inputs = nn.functional.interpolate(inputs, size=tsize, mode="bilinear", align_corners=False)
            targets = targets.clone()
            targets[..., 1::2] = targets[..., 1::2] * scale_x
            targets[..., 2::2] = targets[..., 2::2] * scale_y
        return inputs, targets

    # ------------------------------------------------------------------ optimisation
    def get_optimizer(self, batch_size):
        """Nesterov SGD with YOLOX's parameter groups: BatchNorm weights and biases without weight decay,
        conv weights with ``weight_decay``; plus the final classification biases with
        ``cls_bias_weight_decay``. ``batch_size`` is the total batch over all processes."""
        if getattr(self, "optimizer", None) is not None:
            return self.optimizer
        lr = self.warmup_lr if self.warmup_epochs > 0 else self.basic_lr_per_img * batch_size
        model = self.model if getattr(self, "model", None) is not None else self.get_model()
        cls_bias_ids = {id(conv.bias) for conv in model.head.cls_preds}
        bn_weights, weights, biases, cls_biases = [], [], [], []
        for module in model.modules():
            bias = getattr(module, "bias", None)
            if isinstance(bias, nn.Parameter):
                (cls_biases if id(bias) in cls_bias_ids else biases).append(bias)
            weight = getattr(module, "weight", None)
            if isinstance(weight, nn.Parameter):
                is_bn = isinstance(module, nn.modules.batchnorm._BatchNorm)
                (bn_weights if is_bn else weights).append(weight)
        # fused: one kernel for the whole update (and, under GradScaler, no host read of the inf flag)
        fused = True if getattr(self, "fused_optimizer", False) else None
        optimizer = torch.optim.SGD(bn_weights, lr=lr, momentum=self.momentum, nesterov=True, fused=fused)
        optimizer.add_param_group({"params": weights, "weight_decay": self.weight_decay})
        optimizer.add_param_group({"params": biases})
        optimizer.add_param_group({"params": cls_biases, "weight_decay": self.cls_bias_weight_decay})
        self.optimizer = optimizer
        return optimizer

    def get_lr_scheduler(self, lr, iters_per_epoch, **kwargs):
        from yolox.utils import LRScheduler

        return LRScheduler(self.scheduler, lr, iters_per_epoch, self.max_epoch, warmup_epochs=self.warmup_epochs,
                           warmup_lr_start=self.warmup_lr, no_aug_epochs=self.no_aug_epochs,
                           min_lr_ratio=self.min_lr_ratio)

    # ------------------------------------------------------------------ evaluation
    def get_eval_dataset(self, testdev=False, legacy=False):
        from yolox.data import ValTransform

        return self._dataset_class()(
            data_dir=self.get_data_dir(), json_file=self.val_ann if not testdev else self.test_ann,
            name=self.val_name if not testdev else "test2017", img_size=self.test_size,
            preproc=ValTransform(fill_value=self.fill_value),
            skip_bad_images=self.skip_bad_images,
        )

    def get_eval_loader(self, batch_size, is_distributed, testdev=False, legacy=False):
        valdataset = self.get_eval_dataset(testdev=testdev, legacy=legacy)
        if is_distributed:
            batch_size = max(batch_size // get_world_size(), 1)
            sampler = torch.utils.data.distributed.DistributedSampler(valdataset, shuffle=False)
        else:
            sampler = torch.utils.data.SequentialSampler(valdataset)
        return torch.utils.data.DataLoader(
            valdataset, batch_size=batch_size, sampler=sampler, num_workers=self.data_num_workers,
            pin_memory=torch.cuda.is_available(),
        )

    def postprocess_fn(self):
        """Single-label NMS for COCO; multi-label top-``max_det`` for large vocabularies (LVIS); YOLOX*'s
        released per-level top-``pre_nms_topk`` inference when ``anchor_scales`` is set. Every one is called
        as ``fn(outputs, num_classes, conf, nms, input_hw=(H, W), image_hw=[(h, w), ...])``."""
        from functools import partial

        from yolox.utils import level_topk_postprocess, multilabel_postprocess, postprocess

        if self.anchor_scales:
            return partial(level_topk_postprocess, max_det=self.max_det, pre_nms_topk=self.pre_nms_topk,
                           anchors_per_location=len(self.anchor_scales))
        if self.dataset_format == "lvis":
            return partial(multilabel_postprocess, max_det=self.max_det)
        return postprocess

    def get_evaluator(self, batch_size, is_distributed, testdev=False, legacy=False):
        from yolox.evaluators import COCOEvaluator, LVISEvaluator

        loader = self.get_eval_loader(batch_size, is_distributed, testdev=testdev, legacy=legacy)
        common = dict(dataloader=loader, img_size=self.test_size, confthre=self.test_conf, nmsthre=self.nmsthre,
                      num_classes=self.num_classes, postprocess_fn=self.postprocess_fn())
        if self.dataset_format == "lvis":
            return LVISEvaluator(max_dets=self.max_det, output_dir=os.path.join(self.output_dir, self.exp_name), **common)
        return COCOEvaluator(**common)

    def eval(self, model, evaluator, is_distributed, half=False, return_outputs=False):
        return evaluator.evaluate(model, is_distributed, half)

    def get_class_names(self):
        """Names of the contiguous classes: from the validation/training annotations when present, the COCO
        names for an 80-class COCO experiment, the packaged LVIS v1 names for 1203 classes, else indices."""
        from .class_names import COCO_CLASSES, class_names_from_json

        data_dir = self.get_data_dir()
        for ann in (self.val_ann, self.train_ann):
            path = ann if os.path.isabs(ann) else os.path.join(data_dir, "annotations", ann)
            names = class_names_from_json(path)
            if names and len(names) == self.num_classes:
                return names
        if self.num_classes == 80:
            return list(COCO_CLASSES)
        if self.num_classes == 1203:
            import yolox.data

            names = class_names_from_json(os.path.join(os.path.dirname(yolox.data.__file__), "lvis_v1_categories.json"))
            if names and len(names) == 1203:
                return names
        return [str(i) for i in range(self.num_classes)]
