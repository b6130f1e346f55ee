"""YOLOX-S on PASCAL VOC: trained on VOC2007 + VOC2012 trainval, evaluated on VOC2007 test with the VOC metric
(per-class AP at IoU 0.5 with VOC2007's 11-point interpolation, and mAP over IoU 0.50:0.95).

    python tools/train.py -f exps/example/yolox_voc/yolox_voc_s.py -d 8 -b 64 --fp16 -c yolox_s.pth
    python tools/eval.py -f exps/example/yolox_voc/yolox_voc_s.py -c best_ckpt.pth -b 64 -d 8

The data lies in ``<YOLOX_DATADIR or repo/datasets>/VOCdevkit`` (VOC2007/, VOC2012/, each with Annotations/,
JPEGImages/ and ImageSets/Main/); ``data_dir`` overrides that folder.
"""
import os

from yolox.exp import Exp as MyExp


class Exp(MyExp):
    def __init__(self):
        super().__init__()
        self.num_classes = 20
        self.depth = 0.33
        self.width = 0.50
        self.warmup_epochs = 1

        # ---------- transform ---------- #
        self.mosaic_prob = 1.0
        self.mixup_prob = 1.0
        self.hsv_prob = 1.0
        self.flip_prob = 0.5

        # ---------- data: (year, set) pairs under the VOCdevkit folder ---------- #
        self.train_sets = [("2007", "trainval"), ("2012", "trainval")]
        self.val_sets = [("2007", "test")]

        self.exp_name = os.path.split(os.path.realpath(__file__))[1].split(".")[0]

    def get_data_dir(self):
        from yolox.data import get_yolox_datadir

        return self.data_dir if self.data_dir is not None else os.path.join(get_yolox_datadir(), "VOCdevkit")

    def get_dataset(self, cache=False, cache_type="ram"):
        from yolox.data import VOCDetection

        return VOCDetection(
            data_dir=self.get_data_dir(), image_sets=[tuple(s) for s in self.train_sets], img_size=self.input_size,
            preproc=self.get_train_transform(), cache=cache, cache_type=cache_type,
            skip_bad_images=self.skip_bad_images,
        )

    def get_eval_dataset(self, testdev=False, legacy=False):
        from yolox.data import ValTransform, VOCDetection

        return VOCDetection(
            data_dir=self.get_data_dir(), image_sets=[tuple(s) for s in self.val_sets], img_size=self.test_size,
            preproc=ValTransform(fill_value=self.fill_value), skip_bad_images=self.skip_bad_images,
        )

    def get_evaluator(self, batch_size, is_distributed, testdev=False, legacy=False):
        from yolox.evaluators import VOCEvaluator

        return VOCEvaluator(
            dataloader=self.get_eval_loader(batch_size, is_distributed, testdev=testdev, legacy=legacy),
            img_size=self.test_size, confthre=self.test_conf, nmsthre=self.nmsthre, num_classes=self.num_classes,
            postprocess_fn=self.postprocess_fn(),
        )

    def get_class_names(self):
        from yolox.data import VOC_CLASSES

        return list(VOC_CLASSES)
