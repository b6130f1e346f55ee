#!/usr/bin/env python
"""Train a YOLOX / YOLOX-LT experiment.

    python tools/train.py -f exps/yolox_m_eqfl_lvis.py -d 8 -b 128 --fp16
    python tools/train.py -n yolox-s -d 2 -b 8 --device cpu
    python tools/train.py -f exps/yolox_m_eqfl_lvis.py -d 1 -b 128 --accumulate 8 --fp16   # 16 images x 8 a step
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# torch and yolox are imported where they are used, after the arguments are parsed: an argument error is
# printed at once instead of after seconds of imports.


def make_parser():
    parser = argparse.ArgumentParser("YOLOX train parser")
    parser.add_argument("-expn", "--experiment-name", type=str, default=None)
    parser.add_argument("-n", "--name", type=str, default=None, help="model name (yolox-s, ...)")
    parser.add_argument("--dist-backend", default="auto", type=str, help="nccl, gloo, or auto (nccl on GPU, gloo on CPU)")
    parser.add_argument("--dist-url", default=None, type=str, help="tcp://host:port of machine 0 (multi-node)")
    parser.add_argument("-b", "--batch-size", type=int, default=64,
                        help="total batch size over all processes (of an optimizer step, with --accumulate)")
    parser.add_argument("--accumulate", type=int, default=None, metavar="N",
                        help="gradient accumulation: N micro-batches of b / (processes x N) images per optimizer "
                             "step (sets the experiment's accumulate_steps; docs/accumulation.md)")
    parser.add_argument("-d", "--devices", default=None, type=int, help="processes per machine (GPUs, or CPU workers)")
    parser.add_argument("-f", "--exp_file", default=None, type=str, help="experiment file")
    parser.add_argument("--resume", default=False, action="store_true", help="resume training")
    parser.add_argument("-c", "--ckpt", default=None, type=str, help="checkpoint file")
    parser.add_argument("-e", "--start_epoch", default=None, type=int, help="resume training start epoch")
    parser.add_argument("--num_machines", default=1, type=int, help="number of nodes")
    parser.add_argument("--machine_rank", default=0, type=int, help="node rank for multi-node training")
    parser.add_argument("--fp16", dest="fp16", default=False, action="store_true", help="mixed precision (CUDA)")
    parser.add_argument("--bf16", dest="bf16", default=False, action="store_true",
                        help="mixed precision in bfloat16: no loss scaling (CUDA, or CPUs with bfloat16 support)")
    parser.add_argument("--cache", type=str, nargs="?", const="ram", choices=["ram", "disk"], default=None,
                        help="cache images in RAM or on disk")
    parser.add_argument("-o", "--occupy", dest="occupy", default=False, action="store_true",
                        help="occupy GPU memory first for training (CUDA: reserve 90%% of each GPU in PyTorch's "
                             "cache; nothing on the CPU)")
    parser.add_argument("-l", "--logger", type=str, default="tensorboard",
                        choices=["tensorboard", "wandb", "mlflow", "none"],
                        help="where the scalars go (wandb: options as trailing 'wandb-<key> <value>' pairs, e.g. "
                             "wandb-project yolox wandb-name run1 wandb-log_checkpoints True; mlflow: the "
                             "MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME, YOLOX_MLFLOW_RUN_NAME environment "
                             "variables)")
    parser.add_argument("--device", type=str, default="auto", choices=["auto", "cpu", "cuda", "gpu"],
                        help="auto: CUDA when present, else CPU")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                        help="overrides: key value ... (and -l wandb's wandb-<key> value pairs)")
    return parser


def build_exp(args):
    """The experiment of ``-f`` / ``-n`` with the command-line overrides, named ``-expn`` when given (every
    output of the run, the evaluator's included, goes to ``output_dir/<name>``)."""
    from yolox.core.hooks.loggers import split_wandb_options
    from yolox.exp import get_exp

    exp = get_exp(args.exp_file, args.name)
    if getattr(args, "accumulate", None) is not None:
        exp.accumulate_steps = args.accumulate  # before the overrides: a trailing accumulate_steps N wins
    # upstream's wandb-<key> value pairs are -l wandb's options (the trainer reads them), not exp attributes
    wandb_options, overrides = split_wandb_options(args.opts)
    if wandb_options and getattr(args, "logger", None) != "wandb":
        from loguru import logger

        logger.warning(f"wandb-* options {sorted(wandb_options)} are ignored without -l wandb")
    exp.merge(overrides)
    if args.experiment_name:
        exp.exp_name = args.experiment_name
    return exp


def prepare(args):
    """Every check that can fail before heavy work starts; returns the ready experiment."""
    from yolox.core import check_devices, check_file, check_writable
    from yolox.core.trainer import micro_batch_size
    from yolox.utils import YOLOXError
    from yolox.utils.checkpoint import checkpoint_weights, load_checkpoint_file

    from yolox.core.hooks.loggers import check_logger

    check_logger(args.logger)  # -l wandb / mlflow: the package is installed
    exp = build_exp(args)
    if args.num_machines > 1 and args.dist_url in (None, "auto"):
        raise YOLOXError(f"--num_machines {args.num_machines} needs --dist-url tcp://HOST:PORT of machine 0 (the same "
                         f"on every machine)")
    args.device = check_devices(args.device, args.devices)
    if args.fp16 and args.bf16:
        raise YOLOXError("--fp16 and --bf16 exclude each other: choose one mixed precision")
    if args.bf16 and args.device == "cuda":
        import torch

        if not torch.cuda.is_bf16_supported():
            raise YOLOXError("--bf16: this GPU has no bfloat16 support; use --fp16")
    if args.devices is None:
        args.devices = 1
    check_file(args.ckpt, "checkpoint")
    if args.ckpt is not None:  # a file that holds no weights fails here, before any process starts
        checkpoint_weights(load_checkpoint_file(args.ckpt), args.ckpt)
    if args.batch_size < args.devices * args.num_machines:
        raise YOLOXError(f"-b {args.batch_size} is smaller than the number of processes")
    accumulate_steps = getattr(exp, "accumulate_steps", 1)
    if accumulate_steps < 1:
        raise YOLOXError(f"--accumulate / accumulate_steps must be at least 1, got {accumulate_steps}")
    micro_batch_size(args.batch_size, args.devices * args.num_machines, accumulate_steps)  # divisible?
    if not args.experiment_name:
        args.experiment_name = exp.exp_name
    out = os.path.join(exp.output_dir, args.experiment_name)
    check_writable(out)
    if args.resume and args.ckpt is None:
        check_file(os.path.join(out, "latest_ckpt.pth"), "checkpoint to resume")
    return exp


def occupy_mem(cuda_device, mem_ratio=0.9):
    """``-o``: as upstream's occupy_mem, take the GPU's memory up to ``mem_ratio`` of its total (counting what is
    already in use, by any process) into PyTorch's caching allocator, which keeps it for this process after
    the tensor is freed: later allocations reuse it instead of competing with other jobs for it. Returns the
    bytes taken (0 when the GPU is already that full)."""
    import torch
    from loguru import logger

    free, total = torch.cuda.mem_get_info(cuda_device)
    block = int(total * mem_ratio) - (total - free)
    if block <= 0:
        return 0
    try:
        x = torch.empty(block, dtype=torch.uint8, device=torch.device("cuda", cuda_device))
    except torch.cuda.OutOfMemoryError:
        logger.warning(f"-o: could not occupy {block / 2**30:.1f} GiB of GPU {cuda_device}; training without it")
        return 0
    del x
    logger.info(f"-o: occupied {block / 2**30:.1f} GiB of GPU {cuda_device} ({mem_ratio:.0%} of its memory in use)")
    return block


def main(args):
    from yolox.core import Trainer
    from yolox.utils import configure_omp, get_local_rank, get_rank, seed_everything

    # Spawned workers rebuild the experiment: an Exp loaded from a file does not pickle by reference.
    exp = build_exp(args)
    if exp.seed is not None:
        seed_everything(exp.seed + get_rank())
    configure_omp()
    if args.occupy and args.device == "cuda":
        occupy_mem(get_local_rank())
    Trainer(exp, args).train()


def cli(args):
    from yolox.core import launch

    prepare(args)
    if args.occupy and args.device != "cuda":
        from loguru import logger

        logger.warning("-o/--occupy reserves GPU memory; on the CPU it does nothing")
    launch(main, args.devices, args.num_machines, args.machine_rank, backend=args.dist_backend,
           dist_url=args.dist_url, device=args.device, args=(args,))


if __name__ == "__main__":
    parsed = make_parser().parse_args()
    from yolox.core import run_tool

    run_tool(cli, parsed)
