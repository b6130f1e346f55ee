"""Share of mosaic output pixels showing image content (not fill): upstream YOLOX's top-left affine window
against the released EFL code's centred one (docs/recipe.md).

    python benchmarks/bench_affine_window.py

640 px mosaics of smooth 640x480 images with no zero pixel, fill 0, HSV and mixup off (``_mosaic`` only),
the same random draws for both windows.
"""
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from yolox.data import MosaicDetection  # noqa: E402


class Images:
    def __init__(self, n=8, seed=0):
        rng = np.random.default_rng(seed)
        y, x = np.mgrid[0:480, 0:640].astype(np.float64)
        self.images = []
        for _ in range(n):
            chans = [128 + 100 * np.sin(2 * np.pi * (rng.uniform(1 / 200, 1 / 50) * x + rng.uniform(1 / 200, 1 / 50) * y)
                                         + rng.uniform(0, 2 * np.pi)) for _ in range(3)]
            self.images.append(np.clip(np.stack(chans, -1), 20, 236).astype(np.uint8))
        self.labels = np.array([[100.0, 100.0, 300.0, 300.0, 0.0]])

    def __len__(self):
        return len(self.images)

    def load_anno(self, i):
        return self.labels.copy()

    def pull_item(self, i):
        return self.images[i].copy(), self.labels.copy(), (480, 640), i


def content_share(window, scale, n=200, seed=0):
    mosaic = MosaicDetection(Images(), (640, 640), degrees=10.0, translate=0.1, mosaic_scale=scale, shear=2.0,
                             enable_mixup=False, affine_window=window, fill_value=0)
    random.seed(seed)
    np.random.seed(seed)
    shares = [(mosaic._mosaic(i % 8)[0].max(-1) > 0).mean() for i in range(n)]
    return 100 * float(np.mean(shares))


if __name__ == "__main__":
    for scale, name in (((0.1, 2.0), "EFL config scale (0.1, 2.0)"), ((0.5, 1.5), "YOLOX default scale (0.5, 1.5)")):
        top, centred = content_share("top_left", scale), content_share("centred", scale)
        print(f"{name}: top_left {top:.1f} %  centred {centred:.1f} %  (200 mosaics, 640 px)")
