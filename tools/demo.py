#!/usr/bin/env python
"""Run a detector on images or a video and draw the labelled boxes.

    python tools/demo.py image -f exps/yolox_m_eqfl_lvis.py -c best_ckpt.pth --path img.jpg --save_result
    python tools/demo.py video -n yolox-s -c yolox_s.pth --path clip.mp4 --save_result --device gpu
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# torch, OpenCV and yolox are imported where they are used, after the arguments are parsed: an argument
# error is printed at once instead of after seconds of imports.

IMAGE_EXT = (".jpg", ".jpeg", ".webp", ".bmp", ".png")


def make_parser():
    parser = argparse.ArgumentParser("YOLOX Demo!")
    parser.add_argument("demo", default="image", choices=["image", "video", "webcam"], help="demo type")
    parser.add_argument("-expn", "--experiment-name", type=str, default=None)
    parser.add_argument("-n", "--name", type=str, default=None, help="model name")
    parser.add_argument("--path", default=None, help="an image, a folder of images, or a video (image and video demos)")
    parser.add_argument("--camid", type=int, default=0, help="webcam camera id")
    parser.add_argument("--save_result", action="store_true", help="save the drawn images / video")
    parser.add_argument("-f", "--exp_file", default=None, type=str, help="experiment file")
    parser.add_argument("-c", "--ckpt", default=None, type=str, help="checkpoint")
    parser.add_argument("--allow-partial-ckpt", action="store_true",
                        help="load only the checkpoint tensors that fit the model (default: all must fit)")
    parser.add_argument("--device", default="cpu", type=str, choices=["cpu", "gpu", "cuda", "auto"])
    parser.add_argument("--conf", default=0.3, type=float, help="score threshold")
    parser.add_argument("--nms", default=0.3, type=float, help="NMS IoU threshold")
    parser.add_argument("--tsize", default=None, type=int, help="test image size")
    parser.add_argument("--fp16", dest="fp16", default=False, action="store_true", help="half precision (GPU)")
    parser.add_argument("--legacy", dest="legacy", default=False, action="store_true",
                        help="upstream's preprocessing of pre-0.1.0 checkpoints (RGB, /255, mean/std): not supported "
                             "here, refused")
    parser.add_argument("--fuse", dest="fuse", default=False, action="store_true", help="fuse conv and bn")
    parser.add_argument("--opts", default=None, nargs="+", help="experiment overrides: key value ...")
    return parser


def parse_args(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.demo != "webcam" and args.path is None:
        parser.error(f"the {args.demo} demo needs --path (an image, a folder of images, or a video)")
    return args


def list_images(path):
    if os.path.isdir(path):
        files = [os.path.join(root, f) for root, _, names in os.walk(path) for f in names]
        return sorted(f for f in files if f.lower().endswith(IMAGE_EXT))
    return [path]


class Predictor:
    """Letterbox -> model -> post-processing (the experiment's: single- or multi-label) -> boxes in the
    original image's pixels."""

    def __init__(self, model, exp, class_names, device="cpu", fp16=False):
        from yolox.data import ValTransform

        self.model = model
        self.exp = exp
        self.cls_names = class_names
        self.num_classes = exp.num_classes
        self.confthre = exp.test_conf
        self.nmsthre = exp.nmsthre
        self.test_size = exp.test_size
        self.device = device
        self.fp16 = fp16
        self.preproc = ValTransform(fill_value=exp.fill_value)  # the padding the model was trained with
        self.postprocess = exp.postprocess_fn()

    def inference(self, img):
        """``img``: a path or a BGR uint8 array. Returns (detections ``[K, 7]`` or None, img_info dict)."""
        import cv2
        import numpy as np
        import torch
        from loguru import logger

        from yolox.utils import YOLOXError

        if isinstance(img, str):
            path = img
            img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise YOLOXError(f"cannot read image {path}")
        else:
            path = None
        h, w = img.shape[:2]
        ratio = min(self.test_size[0] / h, self.test_size[1] / w)
        tensor, _ = self.preproc(img, None, self.test_size)
        tensor = torch.from_numpy(tensor).unsqueeze(0).float().to(self.device)
        if self.fp16:
            tensor = tensor.half()
        with torch.no_grad():
            t0 = time.time()
            outputs = self.model(tensor)
            # post-processing in float32, as in evaluation: score products and NMS are unreliable in float16
            outputs = self.postprocess(outputs.float(), self.num_classes, self.confthre, self.nmsthre,
                                       input_hw=tuple(tensor.shape[-2:]), image_hw=[(h * ratio, w * ratio)])
            logger.info(f"Infer time: {time.time() - t0:.4f}s")
        return outputs[0], {"file_name": path, "height": h, "width": w, "raw_img": img, "ratio": ratio}

    def visual(self, output, img_info, cls_conf=0.35):
        from yolox.utils import vis

        img = img_info["raw_img"].copy()
        if output is None:
            return img
        output = output.float().cpu()
        boxes = output[:, 0:4] / img_info["ratio"]
        scores = output[:, 4] * output[:, 5]
        return vis(img, boxes, scores, output[:, 6], cls_conf, self.cls_names)


def image_demo(predictor, save_folder, path, save_result):
    import cv2
    from loguru import logger

    from yolox.utils import YOLOXError

    files = list_images(path)
    if not files:
        raise YOLOXError(f"no images found at {path}")
    for image_name in files:
        outputs, img_info = predictor.inference(image_name)
        result = predictor.visual(outputs, img_info, predictor.confthre)
        n = 0 if outputs is None else len(outputs)
        logger.info(f"{image_name}: {n} detections")
        if save_result:
            os.makedirs(save_folder, exist_ok=True)
            out_path = os.path.join(save_folder, os.path.basename(image_name))
            ok, buf = cv2.imencode(os.path.splitext(out_path)[1] or ".jpg", result)
            if not ok:
                raise YOLOXError(f"cannot encode {out_path}")
            buf.tofile(out_path)
            logger.info(f"Saving detection result in {out_path}")


def video_demo(predictor, save_folder, args):
    import cv2
    from loguru import logger

    from yolox.utils import YOLOXError

    cap = cv2.VideoCapture(args.path if args.demo == "video" else args.camid)
    if not cap.isOpened():
        raise YOLOXError(f"cannot open video {args.path if args.demo == 'video' else args.camid}")
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    writer = None
    if args.save_result:
        os.makedirs(save_folder, exist_ok=True)
        name = os.path.basename(args.path) if args.demo == "video" else "camera.mp4"
        save_path = os.path.join(save_folder, os.path.splitext(name)[0] + ".mp4")
        logger.info(f"video save_path is {save_path}")
        writer = cv2.VideoWriter(save_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    frames = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        outputs, img_info = predictor.inference(frame)
        result = predictor.visual(outputs, img_info, predictor.confthre)
        frames += 1
        if writer is not None:
            writer.write(result)
    cap.release()
    if writer is not None:
        writer.release()
    logger.info(f"processed {frames} frames")


def cli(args):
    from loguru import logger

    from yolox.core import check_devices, check_file
    from yolox.exp import get_exp
    from yolox.models import fuse_model, half_for_inference
    from yolox.utils import YOLOXError, get_model_info
    from yolox.utils.checkpoint import load_model_weights

    if args.legacy:
        raise YOLOXError("--legacy: this project has no legacy preprocessing (upstream's RGB, /255, mean/std inputs "
                         "of checkpoints from before YOLOX 0.1.0); its models take BGR 0-255 images: drop --legacy")
    exp = get_exp(args.exp_file, args.name)
    exp.merge(args.opts)
    if args.experiment_name:
        exp.exp_name = args.experiment_name
    check_file(args.ckpt, "checkpoint")
    if args.demo == "image" and not os.path.exists(args.path):
        raise YOLOXError(f"--path not found: {args.path}")
    device = check_devices(args.device, None)
    exp.test_conf = args.conf
    exp.nmsthre = args.nms
    if args.tsize is not None:
        exp.test_size = (args.tsize, args.tsize)
    file_name = os.path.join(exp.output_dir, exp.exp_name)
    vis_folder = os.path.join(file_name, "vis_res", time.strftime("%Y_%m_%d_%H_%M_%S", time.localtime()))

    model = exp.get_model()
    logger.info(f"Model Summary: {get_model_info(model, exp.test_size)}")
    model.to(device).eval()
    if args.ckpt is not None:
        load_model_weights(model, args.ckpt, map_location=device, allow_partial=args.allow_partial_ckpt)
        logger.info("loaded checkpoint done.")
    else:
        logger.warning("no checkpoint given (-c): the model has random weights")
    if args.fuse:
        model = fuse_model(model)
    if args.fp16 and device != "cuda":
        logger.warning("--fp16 needs CUDA; running in float32 on the CPU")
    fp16 = args.fp16 and device == "cuda"
    if fp16:
        model = half_for_inference(model)
    predictor = Predictor(model, exp, exp.get_class_names(), device, fp16)
    if args.demo == "image":
        image_demo(predictor, vis_folder, args.path, args.save_result)
    else:
        video_demo(predictor, vis_folder, args)


if __name__ == "__main__":
    parsed = parse_args()
    from yolox.core import run_tool

    run_tool(cli, parsed)
