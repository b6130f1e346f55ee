#!/usr/bin/env python
"""The main job in one command: a small long-tailed dataset, YOLOX-nano + EFL trained on the CPU, the
AP / APr / APc / APf table and a picture of the detections.

    python tools/quickstart.py [--seed 0] [--epochs 20] [--batch-size 16] [--devices 1]
    python -m yolox.tools.quickstart            # from an installed wheel: data and outputs in this folder
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# PyTorch and the project are imported inside main(), after the first lines are printed: on a fresh install
# the first import of torch alone can take a minute.
EXP_FILE = "exps/example/lt_proxy/yolox_nano_efl_quick.py"
STAGES = 4
DEMO_CONF = 0.25  # YOLOX*'s score is class x IoU probability; at 0.25 the measured run draws 5 labels on its demo image
DEMO_NMS = 0.5  # as `tools/demo.py --nms 0.5`: one box per object and class
DEMO_MIN_SIDE = 512  # the 256 px validation images are enlarged to this before drawing, so that labels read well

# The quick job's result in % (mean, min, max) over 15 runs of `python tools/quickstart.py --seed S`, PyTorch
# 2.14.1, 2-core CPUs (benchmarks/results/quickstart_range*, docs/quickstart.md): seeds 0-2 on an AMD EPYC
# (AVX-512, 2 threads, 2026-12-04); on an Intel Xeon (AVX-512, 2026-12-07) seed 0 with 2 threads, oneDNN capped
# at AVX2 and 1 thread, then, after the class prediction layer became a matrix product on the CPU (another
# rounding of every sum, like another CPU setting), seeds 0-2 in each of those three settings. The thread count
# and the CPU's instruction set move the result as much as the seed does (docs/benchmarks.md, section 10).
MEASURED = {"AP": (6.1, 4.7, 9.7), "APr": (5.8, 1.8, 14.0), "APc": (7.4, 5.0, 10.1), "APf": (4.7, 3.0, 7.5)}
MEASURED_RUNS = "15 runs: seeds 0-2, AVX-512 / AVX2, 1-2 threads, two machines"


def make_parser():
    parser = argparse.ArgumentParser("YOLOX-LT quickstart")
    parser.add_argument("--seed", type=int, default=None, help="training seed (default: the exp file's, 0)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the exp file's)")
    parser.add_argument("-b", "--batch-size", type=int, default=16)
    parser.add_argument("-d", "--devices", type=int, default=1, help="CPU processes")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    return parser


def stage(number, text):
    print(f"\n[{number}/{STAGES}] {text}", flush=True)


class Layout:
    """Where the job's files are: a checkout (``tools/``, ``exps/`` and ``datasets/`` under the repository root,
    outputs there too) or an installed wheel (the tools as ``python -m yolox.tools.<name>``, the quick exp shipped
    as ``yolox.exp.lt_standin``, data and outputs under the current folder unless ``$YOLOX_DATADIR`` is set)."""

    def __init__(self):
        self.checkout = (ROOT / EXP_FILE).is_file()
        if self.checkout:
            self.work_dir, self.exp_file = ROOT, EXP_FILE
        else:
            import importlib.util

            self.work_dir = Path.cwd()
            self.exp_file = importlib.util.find_spec("yolox.exp.lt_standin." + Path(EXP_FILE).stem).origin
        # An installed wheel without $YOLOX_DATADIR keeps the data in ./datasets/lt_quick (the package's default,
        # <site-packages>/../datasets, is no place for a dataset); None: the exp's own data_dir.
        no_datadir = not self.checkout and not os.getenv("YOLOX_DATADIR")
        self.data_dir = str(self.work_dir / "datasets" / "lt_quick") if no_datadir else None

    def tool(self, name):
        """The arguments that run tool ``name`` (``train``, ``eval``, ``demo``) with this Python."""
        return [f"tools/{name}.py"] if self.checkout else ["-m", f"yolox.tools.{name}"]

    def command(self, name, *args):
        """The tool's command line as a user would type it in ``work_dir``."""
        return " ".join(["python", *self.tool(name), *map(str, args)])


def run(layout, *args):
    print("$ python " + " ".join(str(a) for a in args), flush=True)
    subprocess.run([sys.executable, *map(str, args)], cwd=layout.work_dir, check=True)


def format_against_range(metrics):
    """The result table: each metric of this run beside the range measured over seeds (MEASURED)."""
    lines = [f"{'metric':8}{'this run':>10}   measured over {MEASURED_RUNS} (2-core CPUs): mean, range"]
    outside = []
    for key, (mean, low, high) in MEASURED.items():
        value = 100 * metrics[key]
        if mean is None:
            lines.append(f"{key:8}{value:10.1f}   (not measured yet)")
            continue
        inside = low - 0.05 <= value <= high + 0.05
        outside += [] if inside else [key]
        lines.append(f"{key:8}{value:10.1f}   {mean:.1f}, {low:.1f}-{high:.1f}{'' if inside else '  <- outside'}")
    if outside:
        lines.append("outside the measured range: expected on another machine or with other library versions "
                     "(docs/quickstart.md says why); far outside it, please report it")
    return "\n".join(lines)


def choose_demo_image(detections, gt):
    """The id of the validation image whose rare objects the checkpoint detects with their own class most
    often (at the demo's score threshold; ties: more rare objects, then lower id), and a summary of it and
    of the rates over the whole validation set, so that the picture's message is neither hidden nor oversold."""
    from yolox.evaluators.lt_diagnostics import rare_hits_by_image, recall_by_group

    hits = rare_hits_by_image(gt, detections, DEMO_CONF)
    best = max(hits, key=lambda i: (hits[i][1], hits[i][0], -i))
    total = sum(n for n, _ in hits.values())
    found = sum(h for _, h in hits.values())
    rare = recall_by_group(gt, detections)["r"]
    summary = (f"rare objects in the validation set: {total}; detected with their class at score >= {DEMO_CONF}: "
               f"{found}; with their class as the best-scoring label: {100 * rare['top1']:.0f} %\n"
               f"  demo image: {hits[best][0]} rare objects, {hits[best][1]} detected with their class")
    return best, summary


def image_path(gt, image_id, val_json):
    """The file of a validation image: ``<dataset>/<split folder>/<file>`` as its ``coco_url`` names them."""
    url = next(img["coco_url"] for img in gt["images"] if img["id"] == image_id)
    return Path(val_json).parents[1] / Path(url).parent.name / Path(url).name


def draw_demo(detections, gt, image_id, path, out_path):
    """Draw the image's detections scoring >= DEMO_CONF (after class-wise NMS at DEMO_NMS), rare classes
    named '(rare)', on the image enlarged to DEMO_MIN_SIDE; returns (drawn, of which rare)."""
    import cv2
    import numpy as np
    import torch
    from torchvision.ops import batched_nms

    from yolox.utils import vis

    categories = sorted(gt["categories"], key=lambda c: c["id"])
    index_of = {c["id"]: i for i, c in enumerate(categories)}  # the contiguous class order of the dataset
    names = [c["name"] + (" (rare)" if c.get("frequency") == "r" else "") for c in categories]
    dets = [d for d in detections if d["image_id"] == image_id and d["score"] >= DEMO_CONF]
    boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in dets)],
                         dtype=torch.float32).reshape(-1, 4)
    scores = torch.tensor([d["score"] for d in dets], dtype=torch.float32)
    classes = torch.tensor([index_of[d["category_id"]] for d in dets], dtype=torch.int64)
    keep = batched_nms(boxes, scores, classes, DEMO_NMS)
    boxes, scores, classes = boxes[keep].numpy(), scores[keep].numpy(), classes[keep].numpy()

    img = cv2.imread(str(path))
    scale = max(1.0, DEMO_MIN_SIDE / min(img.shape[:2]))
    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    picture = vis(img, boxes * scale, scores, classes, DEMO_CONF, names, legend_panel=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_path), picture)
    rare = int(np.sum([categories[c].get("frequency") == "r" for c in classes]))
    return len(keep), rare


def evaluate(exp, ckpt, batch_size):
    """LVIS metrics (fractions) of the checkpoint on the validation set; prints the evaluator's table and
    writes the per-class AP CSV next to the checkpoint."""
    from yolox.utils.checkpoint import load_model_weights

    model = exp.get_model()
    load_model_weights(model, str(ckpt))
    model.eval()
    evaluator = exp.get_evaluator(batch_size, False)
    _, _, summary = exp.eval(model, evaluator, False)
    print(summary, flush=True)
    return evaluator.last_metrics


def main():
    args = make_parser().parse_args()
    started = time.time()
    print("YOLOX-LT quickstart: a small long-tailed dataset, YOLOX-nano + EFL trained on it "
          f"({args.device}), its AP / APr / APc / APf and a picture of its detections.", flush=True)
    stage(1, "dataset (loading PyTorch first: the first import after installing can take a minute)")
    from synthetic_lt import format_group_summary, generate_lt_dataset, preset_spec
    from yolox.exp import get_exp

    layout = Layout()
    exp = get_exp(str(layout.work_dir / layout.exp_file))
    if not Path(exp.output_dir).is_absolute():  # where the training, run in work_dir, writes
        exp.output_dir = str(layout.work_dir / exp.output_dir)
    if layout.data_dir:
        exp.data_dir = layout.data_dir
    data_dir = Path(exp.get_data_dir())
    val_json = data_dir / "annotations" / exp.val_ann
    if not val_json.is_file():
        print(f"generating the 'quick' long-tailed dataset in {data_dir}", flush=True)
        generate_lt_dataset(data_dir, preset_spec("quick"), progress=True)
    else:
        print(f"using the dataset in {data_dir}", flush=True)
    print(format_group_summary(data_dir / "annotations" / exp.train_ann, val_json), flush=True)

    out_dir = Path(exp.output_dir) / exp.exp_name
    if not out_dir.is_absolute():
        out_dir = layout.work_dir / out_dir
    epochs = args.epochs or exp.max_epoch
    plural = "s" if epochs != 1 else ""
    stage(2, f"training YOLOX-nano + EFL for {epochs} epoch{plural} ({args.device}); the trainer logs a first ETA "
             f"after 2 iterations, then progress every {exp.print_interval} iterations "
             f"(full log: {out_dir / 'train_log.txt'})")
    opts = ["max_epoch", str(args.epochs), "eval_interval", str(args.epochs)] if args.epochs else []
    opts += ["seed", str(args.seed)] if args.seed is not None else []
    opts += ["data_dir", layout.data_dir] if layout.data_dir else []
    run(layout, *layout.tool("train"), "-f", layout.exp_file, "-b", args.batch_size, "-d", args.devices, "--device",
        args.device, *opts)
    ckpt = out_dir / "latest_ckpt.pth"

    stage(3, "evaluating the trained model on the validation set (LVIS protocol: AP, APr, APc, APf; the same as "
             f"`{layout.command('eval', '-f', layout.exp_file, '-c', ckpt, '--device', 'cpu')}`)")
    metrics = evaluate(exp, ckpt, args.batch_size)
    print(format_against_range(metrics), flush=True)

    stage(4, "drawing the detections of the validation image whose rare objects it finds most often")
    from yolox.evaluators.lt_diagnostics import detect_validation_set

    detections, _ = detect_validation_set(exp, ckpt)
    gt = json.loads(val_json.read_text())
    image_id, summary = choose_demo_image(detections, gt)
    image = image_path(gt, image_id, val_json)
    picture = out_dir / "vis_res" / f"quickstart_{image.stem}.png"
    drawn, rare = draw_demo(detections, gt, image_id, image, picture)

    minutes, seconds = divmod(int(time.time() - started), 60)
    print(f"\nDone in {minutes} min {seconds:02d} s.")
    print(f"  checkpoint:        {ckpt}")
    print(f"  per-class AP:      {out_dir / 'lvis_per_category_ap.csv'}")
    print(f"  training log:      {out_dir / 'train_log.txt'} (tensorboard: {out_dir / 'tensorboard'})")
    print(f"  detections drawn:  {picture} ({image.name}: {drawn} detections at score >= {DEMO_CONF}, "
          f"{rare} of rare classes, named '(rare)')")
    print(f"  {summary}")
    print("Draw the detections of other images:")
    print("  " + layout.command("demo", "image", "-f", layout.exp_file, "-c", ckpt, "--path", image.parent,
                                "--save_result", "--conf", DEMO_CONF, "--nms", DEMO_NMS))
    print("Train the real thing (LVIS v1, see datasets/README.md):")
    print("  python tools/train.py -f exps/yolox_m_eqfl_lvis.py -d 8 -b 128 --fp16")


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as e:
        sys.exit(e.returncode)
