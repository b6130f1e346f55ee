"""``tools/train.py`` with the windows that the crash tests kill in made wider, from outside the project's code.

    python tests/tools/slow_train.py <train.py arguments>

``SLOW_SAVE=<seconds>``: a checkpoint's temporary file is written, the line "temporary file of <name> written"
printed, and the rename into place waits that long. ``SLOW_EVAL=<seconds>``: an evaluation waits that long
right after its "evaluating after epoch" line.
"""
import os
import runpy
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def slow_down_checkpoint_writes(delay):
    import yolox.utils.checkpoint as checkpoint

    rename = os.replace

    def slow_replace(src, dst):
        if str(dst).endswith("_ckpt.pth"):
            print(f"temporary file of {os.path.basename(dst)} written, renaming in {delay}s", flush=True)
            time.sleep(delay)
        rename(src, dst)

    checkpoint.os.replace = slow_replace


def slow_down_evaluations(delay):
    import yolox.core.hooks.evaluation as evaluation

    average_norms = evaluation.all_reduce_norm  # the first step of an evaluation, after its log line

    def slow_average_norms(module):
        time.sleep(delay)
        return average_norms(module)

    evaluation.all_reduce_norm = slow_average_norms


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if os.environ.get("SLOW_SAVE"):
        slow_down_checkpoint_writes(float(os.environ["SLOW_SAVE"]))
    if os.environ.get("SLOW_EVAL"):
        slow_down_evaluations(float(os.environ["SLOW_EVAL"]))
    sys.argv = [str(ROOT / "tools" / "train.py"), *sys.argv[1:]]
    runpy.run_path(sys.argv[0], run_name="__main__")
