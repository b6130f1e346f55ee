"""Time per image of the label assigners against the number of ground-truth boxes.

640x640 input, strides 8/16/32:
- SimOTA (YOLOX): 8400 anchor points, 1203 classes (LVIS) for the class cost;
- ATSS (YOLOX*): 16800 anchors (2 per location, sides 3 and 4 strides), top-k 18, batched over images.

    python benchmarks/bench_assigners.py [--device cuda] [--repeats 5] [--batch 8] [--threads 2]

Expected scaling (what the printed exponents measure, t ~ G^x between G = 50 and 200):
- SimOTA: O(N*C) for the class cost on the N candidate anchors (those near some gt centre; N grows
  with G until it saturates at A) + O(G*N) for IoU / cost / dynamic-k; no [G, N, C] tensor.
- ATSS: O(G*A) for the centre distances and their per-level top-k, O(G*topk*levels) for everything
  else; no [G, A] IoU matrix.
"""
import argparse
import math
import sys
import time
from pathlib import Path

import torch
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from yolox.models.assigners import ATSSAssigner, SimOTAAssigner  # noqa: E402

STRIDES = (8, 16, 32)
IMAGE_SIZE = 640
NUM_CLASSES = 1203
GT_COUNTS = (1, 10, 50, 200)


def anchor_points(device):
    """Centres [A, 2], strides [A], points per level, for one point per location."""
    centers, strides, per_level = [], [], []
    for stride in STRIDES:
        n = IMAGE_SIZE // stride
        ys, xs = torch.meshgrid(torch.arange(n, device=device), torch.arange(n, device=device), indexing="ij")
        centers.append((torch.stack([xs, ys], -1).reshape(-1, 2).float() + 0.5) * stride)
        strides.append(torch.full((n * n,), float(stride), device=device))
        per_level.append(n * n)
    return torch.cat(centers), torch.cat(strides), per_level


def square_anchors(centers, strides, per_level, scales=(3.0, 4.0)):
    """[A * len(scales), 4] xyxy, location-major, anchor-minor."""
    half = strides[:, None] * torch.tensor(scales, device=centers.device)[None, :] / 2  # [A, S]
    boxes = torch.cat([centers[:, None, :] - half[..., None], centers[:, None, :] + half[..., None]], -1)
    return boxes.reshape(-1, 4), [n * len(scales) for n in per_level]


def random_gts(num, gen, device):
    """cxcywh boxes of 16..320 px inside the image."""
    wh = 16 + torch.rand(num, 2, generator=gen) * 304
    cxcy = wh / 2 + torch.rand(num, 2, generator=gen) * (IMAGE_SIZE - wh)
    return torch.cat([cxcy, wh], 1).to(device)


def timed(fn, repeats, device):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8, help="images per ATSS assign_batch call")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)

    centers, strides, per_level = anchor_points(device)
    num_points = centers.shape[0]
    anchors, anchors_per_level = square_anchors(centers, strides, per_level)
    # A partly trained head: boxes near their point, low class scores.
    preds = torch.cat([centers + torch.randn(num_points, 2, generator=gen).to(device) * strides[:, None],
                       strides[:, None] * (2 + 6 * torch.rand(num_points, 2, generator=gen).to(device))], 1)
    cls_logits = (torch.randn(num_points, NUM_CLASSES, generator=gen) - 5).to(device)
    obj_logits = torch.randn(num_points, generator=gen).to(device)
    simota, atss = SimOTAAssigner(), ATSSAssigner(topk=18)

    rows, simota_ms, atss_ms = [], [], []
    for num_gt in GT_COUNTS:
        gts = random_gts(num_gt, gen, device)
        labels = torch.randint(0, NUM_CLASSES, (num_gt,), generator=gen).to(device)
        result = simota.assign(preds, cls_logits, obj_logits, centers, strides, gts, labels)
        t_simota = timed(lambda: simota.assign(preds, cls_logits, obj_logits, centers, strides, gts, labels),
                         args.repeats, device)

        gts_xyxy = torch.cat([gts[:, :2] - gts[:, 2:] / 2, gts[:, :2] + gts[:, 2:] / 2], 1)
        batch_gts = torch.stack([gts_xyxy[torch.randperm(num_gt, generator=gen).to(device)]
                                 for _ in range(args.batch)])
        valid = torch.ones(args.batch, num_gt, dtype=torch.bool, device=device)
        t_atss_one = timed(lambda: atss.assign(anchors, anchors_per_level, gts_xyxy, labels), args.repeats, device)
        t_atss_batch = timed(lambda: atss.assign_batch(anchors, anchors_per_level, batch_gts, valid),
                             args.repeats, device) / args.batch
        num_pos = int((atss.assign(anchors, anchors_per_level, gts_xyxy, labels) >= 0).sum())

        simota_ms.append(t_simota * 1e3)
        atss_ms.append(t_atss_batch * 1e3)
        rows.append([num_gt, f"{t_simota * 1e3:.2f}", result.num_fg, f"{t_atss_one * 1e3:.2f}",
                     f"{t_atss_batch * 1e3:.2f}", num_pos])

    print(f"device={device}, threads={torch.get_num_threads()}, SimOTA: {num_points} points x {NUM_CLASSES} classes, "
          f"ATSS: {anchors.shape[0]} anchors, top-k 18, batch {args.batch}")
    print(tabulate(rows, headers=["gts", "SimOTA ms/img", "SimOTA fg", "ATSS ms/img (B=1)",
                                  f"ATSS ms/img (B={args.batch})", "ATSS pos"], tablefmt="github"))

    def exponent(ms):
        return math.log(ms[-1] / ms[-2]) / math.log(GT_COUNTS[-1] / GT_COUNTS[-2])

    print(f"scaling between {GT_COUNTS[-2]} and {GT_COUNTS[-1]} gts: SimOTA ~ G^{exponent(simota_ms):.2f}, "
          f"ATSS ~ G^{exponent(atss_ms):.2f} (1.0 = linear)")


if __name__ == "__main__":
    main()
