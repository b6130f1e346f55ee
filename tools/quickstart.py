#!/usr/bin/env python
"""The main job in one command: a small long-tailed dataset, YOLOX-nano + EFL trained on the CPU, the
AP / APr / APc / APf table and a picture of the detections.

    python tools/quickstart.py [--epochs 30] [--batch-size 16] [--devices 1]
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from yolox.data.lt_generator import format_group_summary, generate_lt_dataset, preset_spec  # noqa: E402
from yolox.exp import get_exp  # noqa: E402

EXP_FILE = "exps/example/lt_proxy/yolox_nano_efl_quick.py"


def make_parser():
    parser = argparse.ArgumentParser("YOLOX-LT quickstart")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the exp file's)")
    parser.add_argument("-b", "--batch-size", type=int, default=16)
    parser.add_argument("-d", "--devices", type=int, default=1, help="CPU processes")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    return parser


def run(*args):
    print("$ " + " ".join(str(a) for a in args), flush=True)
    subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, check=True)


DEMO_CONF = 0.25  # YOLOX*'s score is class x IoU probability; at 0.25 the measured run draws 5 labels on its demo image


def choose_demo_image(exp, ckpt, val_json):
    """The validation image whose rare objects the checkpoint detects with their own class most often (at the
    demo's score threshold; ties: more rare objects, then lower id), with its counts and the rates over the
    whole validation set, so that the picture's message is neither hidden nor oversold."""
    from yolox.evaluators.lt_diagnostics import detect_validation_set, rare_hits_by_image, recall_by_group

    detections, _ = detect_validation_set(exp, ckpt)
    gt = json.loads(Path(val_json).read_text())
    hits = rare_hits_by_image(gt, detections, DEMO_CONF)
    best = max(hits, key=lambda i: (hits[i][1], hits[i][0], -i))
    url = next(img["coco_url"] for img in gt["images"] if img["id"] == best)
    path = Path(val_json).parents[1] / Path(url).parent.name / Path(url).name
    total = sum(n for n, _ in hits.values())
    found = sum(h for _, h in hits.values())
    rare = recall_by_group(gt, detections)["r"]
    summary = (f"rare objects in the validation set: {total}; detected with their class at score >= {DEMO_CONF}: "
               f"{found}; with their class as the best-scoring label: {100 * rare['top1']:.0f} %\n"
               f"  demo image {path.name}: {hits[best][0]} rare objects, {hits[best][1]} detected with their class")
    return path, summary


def main():
    args = make_parser().parse_args()
    exp = get_exp(str(ROOT / EXP_FILE))
    data_dir = Path(exp.get_data_dir())
    val_json = data_dir / "annotations" / exp.val_ann
    if not val_json.is_file():
        print(f"generating the 'quick' long-tailed dataset in {data_dir}", flush=True)
        generate_lt_dataset(data_dir, preset_spec("quick"), progress=True)
    print(format_group_summary(data_dir / "annotations" / exp.train_ann, val_json), flush=True)

    opts = ["max_epoch", str(args.epochs), "eval_interval", str(args.epochs)] if args.epochs else []
    run("tools/train.py", "-f", EXP_FILE, "-b", args.batch_size, "-d", args.devices, "--device", args.device, *opts)
    out_dir = Path(exp.output_dir) / exp.exp_name
    ckpt = out_dir / "latest_ckpt.pth"
    run("tools/eval.py", "-f", EXP_FILE, "-c", ckpt, "-b", args.batch_size, "-d", 1, "--device", args.device)
    image, summary = choose_demo_image(exp, ckpt, val_json)
    run("tools/demo.py", "image", "-f", EXP_FILE, "-c", ckpt, "--path", image, "--save_result", "--device",
        "cpu", "--conf", str(DEMO_CONF), "--nms", "0.5")
    pictures = sorted((out_dir / "vis_res").rglob(image.name), key=os.path.getmtime)

    print("\nDone.")
    print(f"  checkpoint:        {ckpt}")
    print(f"  per-class AP:      {out_dir / 'lvis_per_category_ap.csv'}")
    print(f"  training log:      {out_dir / 'train_log.txt'} (tensorboard: {out_dir / 'tensorboard'})")
    print(f"  detections drawn:  {pictures[-1] if pictures else '(none written)'}")
    print(f"  {summary}")
    print("Train the real thing (LVIS v1, see datasets/README.md):")
    print("  python tools/train.py -f exps/yolox_m_eqfl_lvis.py -d 8 -b 128 --fp16")


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as e:
        sys.exit(e.returncode)
