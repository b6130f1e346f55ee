#!/usr/bin/env python
"""Evaluate a checkpoint with the experiment's metric (COCO AP, or LVIS AP/APr/APc/APf).

    python tools/eval.py -f exps/yolox_m_eqfl_lvis.py -c best_ckpt.pth -d 8
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from loguru import logger  # noqa: E402

from yolox.core import check_devices, check_file, launch, run_tool  # noqa: E402
from yolox.exp import get_exp  # noqa: E402
from yolox.models import fuse_model, half_for_inference  # noqa: E402
from yolox.utils import (  # noqa: E402
    configure_omp, get_local_rank, get_model_info, get_rank, get_world_size, load_checkpoint_file, load_ckpt,
    seed_everything, setup_logger,
)


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
    parser.add_argument("--conf", default=None, type=float, help="test conf")
    parser.add_argument("--nms", default=None, type=float, help="test nms threshold")
    parser.add_argument("--tsize", default=None, type=int, help="test img size")
    parser.add_argument("--seed", default=None, type=int, help="eval seed")
    parser.add_argument("--fp16", dest="fp16", default=False, action="store_true", help="half precision (CUDA)")
    parser.add_argument("--fuse", dest="fuse", default=False, action="store_true", help="fuse conv and bn")
    parser.add_argument("--legacy", dest="legacy", default=False, action="store_true", help="accepted, no effect")
    parser.add_argument("--test", dest="test", default=False, action="store_true", help="evaluate on test-dev")
    parser.add_argument("--device", type=str, default="auto", choices=["auto", "cpu", "cuda", "gpu"])
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER, help="overrides: key value ...")
    return parser


def build_exp(args):
    exp = get_exp(args.exp_file, args.name)
    exp.merge(args.opts)
    if args.conf is not None:
        exp.test_conf = args.conf
    if args.nms is not None:
        exp.nmsthre = args.nms
    if args.tsize is not None:
        exp.test_size = (args.tsize, args.tsize)
    return exp


def main(args):
    exp = build_exp(args)
    if args.seed is not None:
        seed_everything(args.seed)
    configure_omp()
    file_name = os.path.join(exp.output_dir, args.experiment_name or exp.exp_name)
    rank = get_rank()
    setup_logger(file_name, distributed_rank=rank, filename="val_log.txt", mode="a")
    is_distributed = get_world_size() > 1
    device = torch.device(f"cuda:{get_local_rank()}" if args.device == "cuda" else "cpu")

    model = exp.get_model()
    if rank == 0:
        logger.info(f"Model summary: {get_model_info(model, exp.test_size)}")
    evaluator = exp.get_evaluator(args.batch_size, is_distributed, args.test, args.legacy)
    model.to(device).eval()
    if args.ckpt is not None:
        ckpt = load_checkpoint_file(args.ckpt, map_location=device)
        load_ckpt(model, ckpt["model"] if "model" in ckpt else ckpt)
        logger.info(f"loaded checkpoint {args.ckpt}")
    else:
        logger.warning("no checkpoint given (-c): evaluating randomly initialised weights")
    if args.fuse:
        model = fuse_model(model)
    half = args.fp16 and args.device == "cuda"
    if half:
        model = half_for_inference(model)
    *_, summary = exp.eval(model, evaluator, is_distributed, half)
    if rank == 0:
        logger.info("\n" + summary)


def cli():
    args = make_parser().parse_args()
    build_exp(args)  # fail fast on a bad exp or override
    args.device = check_devices(args.device, args.devices)
    args.devices = args.devices or 1
    check_file(args.ckpt, "checkpoint")
    launch(main, args.devices, args.num_machines, args.machine_rank, backend=args.dist_backend,
           dist_url=args.dist_url, device=args.device, args=(args,))


if __name__ == "__main__":
    run_tool(cli)
