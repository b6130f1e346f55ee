#!/usr/bin/env python
"""Evaluate a checkpoint with the experiment's metric (COCO AP, or LVIS AP/APr/APc/APf).

    python tools/eval.py -f exps/yolox_m_eqfl_lvis.py -c best_ckpt.pth -d 8
    python tools/eval.py -f exps/yolox_m_eqfl_lvis.py -c best_ckpt.pth -d 8 --test   # test-dev detections file
    python tools/eval.py -n yolox-s -c yolox_s.pth -b 1 --speed --fuse --fp16       # timing only, no AP
    python tools/eval.py -f exps/yolox_m_eqfl_lvis.py -c best_ckpt.pth -d 8 --fixed-ap  # + LVIS AP^Fixed
    python tools/eval.py -f exps/yolox_m_eqfl_lvis.py -c best_ckpt.pth -d 8 --fixed-ap --pooled-ap  # + AP^Pool

The checkpoint must fit the experiment's model (every tensor, with its shape); ``--allow-partial-ckpt``
evaluates whatever matches instead. ``--test`` runs the detector on the test split (``exp.test_ann``,
images of ``test2017``) and writes ``<output_dir>/<exp_name>/detections_<test_ann>.json`` for the
evaluation server (COCO: rename it ``detections_test-dev2017_<method>_results.json`` and zip it; LVIS:
upload it as is).
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# torch and yolox are imported where they are used, after the arguments are parsed: an argument error is
# printed at once instead of after seconds of imports.


def make_parser():
    parser = argparse.ArgumentParser("YOLOX Eval")
    parser.add_argument("-expn", "--experiment-name", type=str, default=None)
    parser.add_argument("-n", "--name", type=str, default=None, help="model name")
    parser.add_argument("--dist-backend", default="auto", type=str, help="nccl, gloo, or auto")
    parser.add_argument("--dist-url", default=None, type=str, help="url used to set up distributed evaluation")
    parser.add_argument("-b", "--batch-size", type=int, default=64, help="total batch size")
    parser.add_argument("-d", "--devices", default=None, type=int, help="processes per machine")
    parser.add_argument("--num_machines", default=1, type=int, help="num of node for training")
    parser.add_argument("--machine_rank", default=0, type=int, help="node rank for multi-node training")
    parser.add_argument("-f", "--exp_file", default=None, type=str, help="experiment file")
    parser.add_argument("-c", "--ckpt", default=None, type=str, help="checkpoint to evaluate")
    parser.add_argument("--allow-partial-ckpt", action="store_true",
                        help="load only the checkpoint tensors that fit the model (default: all must fit)")
    parser.add_argument("--conf", default=None, type=float, help="test conf")
    parser.add_argument("--nms", default=None, type=float, help="test nms threshold")
    parser.add_argument("--tsize", default=None, type=int, help="test img size")
    parser.add_argument("--seed", default=None, type=int, help="eval seed")
    parser.add_argument("--fp16", dest="fp16", default=False, action="store_true", help="half precision (CUDA)")
    parser.add_argument("--fuse", dest="fuse", default=False, action="store_true", help="fuse conv and bn")
    parser.add_argument("--legacy", dest="legacy", default=False, action="store_true",
                        help="upstream's preprocessing of pre-0.1.0 checkpoints (RGB, /255, mean/std): not supported "
                             "here, refused")
    parser.add_argument("--speed", dest="speed", default=False, action="store_true",
                        help="speed test only: time the forward pass and NMS over the split (per image, ms), no AP")
    parser.add_argument("--test", dest="test", default=False, action="store_true",
                        help="write the test split's detections for the evaluation server instead of scoring")
    parser.add_argument("--fixed-ap", dest="fixed_ap", default=False, action="store_true",
                        help="LVIS only: also report AP^Fixed (Dave et al. 2021; no per-image cap, per class its "
                             "--fixed-ap-topk best detections over the split, no score threshold) beside the "
                             "standard table, from the same forward passes")
    parser.add_argument("--pooled-ap", dest="pooled_ap", default=False, action="store_true",
                        help="LVIS only: also report AP^Pool (Dave et al. 2021; the --fixed-ap detections of all "
                             "classes ranked together, and of each frequency group), from the same pass as "
                             "--fixed-ap (run without it, that pass runs for AP^Pool alone)")
    parser.add_argument("--fixed-ap-topk", dest="fixed_ap_topk", default=10000, type=int,
                        help="detections kept per class for --fixed-ap / --pooled-ap (10000 for LVIS v1 val)")
    parser.add_argument("--device", type=str, default="auto", choices=["auto", "cpu", "cuda", "gpu"])
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER, help="overrides: key value ...")
    return parser


def build_exp(args):
    from yolox.exp import get_exp

    exp = get_exp(args.exp_file, args.name)
    exp.merge(args.opts)
    if args.conf is not None:
        exp.test_conf = args.conf
    if args.nms is not None:
        exp.nmsthre = args.nms
    if args.tsize is not None:
        exp.test_size = (args.tsize, args.tsize)
    if args.experiment_name:  # every output of the run (the evaluator's CSV too) goes to one folder
        exp.exp_name = args.experiment_name
    return exp


def testdev_annotation_path(exp):
    ann = exp.test_ann
    return ann if os.path.isabs(ann) else os.path.join(exp.get_data_dir(), "annotations", ann)


def write_test_detections(exp, model, batch_size, is_distributed, half, file_name):
    """Run ``model`` on the test split and write its detections (COCO result format) as json on rank 0;
    returns the file's path (None on other ranks)."""
    import json

    from yolox.evaluators.detection_gather import detections_to_coco, gather_detections, run_detector

    loader = exp.get_eval_loader(batch_size, is_distributed, testdev=True)
    per_image, stats = run_detector(model, loader, exp.postprocess_fn(), exp.num_classes, exp.test_conf,
                                    exp.nmsthre, exp.test_size, loader.dataset.class_ids, half)
    merged, _ = gather_detections(per_image, stats, is_distributed)
    if merged is None:
        return None
    path = os.path.join(file_name, f"detections_{Path(exp.test_ann).stem}.json")
    with open(path, "w") as f:
        json.dump(detections_to_coco(merged), f)
    return path


def speed_test(exp, model, batch_size, is_distributed, half, testdev=False):
    """``--speed``: run the detector over the validation (``--test``: test) split without scoring; returns the
    evaluator's speed line, "Average forward time: x ms, Average NMS time: y ms, Average inference time: z ms"
    (per image, summed over ranks' images), on rank 0 (None elsewhere)."""
    from yolox.evaluators.coco_evaluator import COCOEvaluator
    from yolox.evaluators.detection_gather import gather_detections, run_detector

    loader = exp.get_eval_loader(batch_size, is_distributed, testdev=testdev)
    per_image, stats = run_detector(model, loader, exp.postprocess_fn(), exp.num_classes, exp.test_conf,
                                    exp.nmsthre, exp.test_size, loader.dataset.class_ids, half)
    merged, stats = gather_detections(per_image, stats, is_distributed)
    if merged is None:
        return None
    return COCOEvaluator._speed_line(stats, batch_size)


def main(args):
    import torch
    from loguru import logger

    from yolox.models import fuse_model, half_for_inference
    from yolox.utils import (
        configure_omp, get_local_rank, get_model_info, get_rank, get_world_size, seed_everything, setup_logger,
    )
    from yolox.utils.checkpoint import load_model_weights

    exp = build_exp(args)
    if args.seed is not None:
        seed_everything(args.seed)
    configure_omp()
    file_name = os.path.join(exp.output_dir, exp.exp_name)
    rank = get_rank()
    setup_logger(file_name, distributed_rank=rank, filename="val_log.txt", mode="a")
    if args.fp16 and args.device != "cuda":
        logger.warning("--fp16 needs CUDA; evaluating in float32 on the CPU")
    is_distributed = get_world_size() > 1
    device = torch.device(f"cuda:{get_local_rank()}" if args.device == "cuda" else "cpu")

    model = exp.get_model()
    if rank == 0:
        logger.info(f"Model summary: {get_model_info(model, exp.test_size)}")
    model.to(device).eval()
    if args.ckpt is not None:
        load_model_weights(model, args.ckpt, map_location=device, allow_partial=args.allow_partial_ckpt)
        logger.info(f"loaded checkpoint {args.ckpt}")
    elif args.speed:
        logger.info("--speed without a checkpoint (-c): random weights; the NMS time of a trained model differs")
    else:
        logger.warning("no checkpoint given (-c): evaluating randomly initialised weights")
    if args.fuse:
        model = fuse_model(model)
    half = args.fp16 and args.device == "cuda"
    if half:
        model = half_for_inference(model)
    if args.speed:
        line = speed_test(exp, model, args.batch_size, is_distributed, half, args.test)
        if rank == 0:
            logger.info(line)
        return
    if args.test:
        path = write_test_detections(exp, model, args.batch_size, is_distributed, half, file_name)
        if rank == 0:
            logger.info(f"test-split detections written to {path}; submit them to the evaluation server")
        return
    evaluator = exp.get_evaluator(args.batch_size, is_distributed, False, args.legacy)
    if args.fixed_ap or args.pooled_ap:
        evaluator.configure_fixed_ap(args.fixed_ap, topk=args.fixed_ap_topk, pooled=args.pooled_ap)
    *_, summary = exp.eval(model, evaluator, is_distributed, half)
    if rank == 0:
        logger.info("\n" + summary)


def cli(args):
    from yolox.core import check_devices, check_file, launch
    from yolox.utils import YOLOXError
    from yolox.utils.checkpoint import load_model_weights

    if args.legacy:
        raise YOLOXError("--legacy: this project has no legacy preprocessing (upstream's RGB, /255, mean/std inputs "
                         "of checkpoints from before YOLOX 0.1.0); its models take BGR 0-255 images: drop --legacy")
    exp = build_exp(args)  # fail fast on a bad exp or override
    if args.fixed_ap or args.pooled_ap:
        flag = "--fixed-ap" if args.fixed_ap else "--pooled-ap"
        if getattr(exp, "dataset_format", None) != "lvis":
            raise YOLOXError(f"{flag} is an LVIS metric: the experiment's dataset_format is not 'lvis'")
        if args.speed or args.test:
            raise YOLOXError(f"{flag} scores the validation split: drop --speed / --test")
        if args.fixed_ap_topk < 1:
            raise YOLOXError(f"--fixed-ap-topk must be >= 1, got {args.fixed_ap_topk}")
    if args.num_machines > 1 and args.dist_url in (None, "auto"):
        raise YOLOXError(f"--num_machines {args.num_machines} needs --dist-url tcp://HOST:PORT of machine 0 (the same "
                         f"on every machine)")
    args.device = check_devices(args.device, args.devices)
    args.devices = args.devices or 1
    check_file(args.ckpt, "checkpoint")
    if args.test:
        check_file(testdev_annotation_path(exp), "test annotation file (exp.test_ann)")
    if args.ckpt is not None and not args.allow_partial_ckpt:
        # before any process starts: a checkpoint of another experiment would be scored as AP 0 otherwise
        load_model_weights(exp.get_model(), args.ckpt)
    launch(main, args.devices, args.num_machines, args.machine_rank, backend=args.dist_backend,
           dist_url=args.dist_url, device=args.device, args=(args,))


if __name__ == "__main__":
    parsed = make_parser().parse_args()
    from yolox.core import run_tool

    run_tool(cli, parsed)
