#!/usr/bin/env python
"""Write a synthetic long-tailed dataset (LVIS v1 or COCO format) and print its frequency groups.

    python tools/make_lt_dataset.py --preset tiny --out /tmp/lt_tiny
    python tools/make_lt_dataset.py --preset quick                      # datasets/lt_quick
    python tools/make_lt_dataset.py --preset benchmark --seed 1         # datasets/lt_benchmark
    python tools/make_lt_dataset.py --num-classes 50 --train-images 1000 --size 320 --format coco --out DIR

Presets (any flag given overrides the preset's value):
    tiny       6 classes,   8 train /   4 val images,  96 px, <= 3 objects, 12-40 px, >= 2 val instances
    quick     12 classes, 240 train /  80 val images, 256 px, <= 5 objects, 16-80 px, >= 10 val instances
    benchmark 40 classes, 1600 train / 240 val images, 160 px, <= 5 objects, 12-56 px, >= 12 val instances,
              training images per class log-spaced: rare 1-10, common 11-100, frequent 101-480
    lvis60    60 classes, 800 train / 200 val images, 320 px, <= 8 objects, 16-80 px, >= 10 val instances
    gpu       300 classes, 6400 train / 400 val images, 320 px, <= 6 objects, 16-96 px, training images per
              class log-spaced: rare 1-10, common 11-100, frequent 101-300 (benchmarks/gpu_lt_standin.sh)
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loguru import logger  # noqa: E402

from synthetic_lt import LT_PRESETS, LTDatasetSpec, format_group_summary, generate_lt_dataset  # noqa: E402


def make_parser():
    parser = argparse.ArgumentParser("make a synthetic long-tailed LVIS/COCO-format dataset")
    parser.add_argument("--preset", choices=sorted(LT_PRESETS), default="benchmark", help="starting values (default benchmark)")
    parser.add_argument("--out", type=str, default=None, help="output folder (default datasets/lt_<preset>)")
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--train-images", type=int, default=None)
    parser.add_argument("--val-images", type=int, default=None)
    parser.add_argument("--size", type=int, default=None, help="square image side in pixels")
    parser.add_argument("--max-objects", type=int, default=None, help="objects per image at most")
    parser.add_argument("--min-val-instances", type=int, default=None, help="val instances per class at least")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=("lvis", "coco"), default="lvis")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    values = dict(LT_PRESETS[args.preset])
    overrides = {
        "num_classes": args.num_classes,
        "num_train_images": args.train_images,
        "num_val_images": args.val_images,
        "image_size": args.size,
        "max_objects_per_image": args.max_objects,
        "min_val_instances_per_class": args.min_val_instances,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    out = Path(args.out if args.out is not None else f"datasets/lt_{args.preset}")
    try:
        spec = LTDatasetSpec(seed=args.seed, format=args.format, **values)
        paths = generate_lt_dataset(out, spec, progress=not args.quiet)
    except (ValueError, OSError) as e:
        logger.error(str(e))
        return 2

    print(f"wrote a {args.format.upper()}-format dataset to {out}")
    print(f"  train: {paths['train_json']} ({spec.num_train_images} images in {paths['train_dir']})")
    print(f"  val:   {paths['val_json']} ({spec.num_val_images} images in {paths['val_dir']})")
    print(format_group_summary(paths["train_json"], paths["val_json"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
