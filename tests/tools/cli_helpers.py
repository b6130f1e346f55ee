"""Helpers of the command-line tests: a tiny generated dataset, a tiny experiment file, running a tool."""
import os
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]

EXP_TEMPLATE = '''
import os
from yolox.exp import {base}


class Exp({base}):
    def __init__(self):
        super().__init__()
        self.depth, self.width, self.depthwise = 0.33, 0.25, True
        self.num_classes = {num_classes}
        self.data_dir = {data_dir!r}
        self.train_ann, self.val_ann = {train_ann!r}, {val_ann!r}
        self.input_size = self.test_size = (96, 96)
        self.multiscale_range = 0
        self.max_epoch, self.warmup_epochs, self.no_aug_epochs = 2, 1, 1
        self.data_num_workers = 0
        self.eval_interval = self.print_interval = 1
        self.mosaic_scale = (0.8, 1.2)
        self.output_dir = {output_dir!r}
        self.seed = 0
        self.test_conf = 0.001
        {extra}
        self.exp_name = "tiny"
'''


def write_exp(path, data, output_dir, fmt="coco", extra=""):
    base = "LVISExp" if fmt == "lvis" else "Exp"
    Path(path).write_text(EXP_TEMPLATE.format(
        base=base, num_classes=data["num_classes"], data_dir=str(data["root"]),
        train_ann=os.path.basename(data["train_json"]), val_ann=os.path.basename(data["val_json"]),
        output_dir=str(output_dir), extra=extra))
    return str(path)


def make_dataset(root, fmt):
    from synthetic_lt import LTDatasetSpec, generate_lt_dataset

    spec = LTDatasetSpec(num_classes=4, num_train_images=8, num_val_images=4, image_size=(96, 96),
                         max_objects_per_image=3, min_object_size=16, max_object_size=40,
                         min_val_instances_per_class=1, seed=0, format=fmt)
    paths = generate_lt_dataset(root, spec, progress=False)
    return dict(paths, root=str(root))


def run_tool(*args, timeout=600, check=True):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-6000:]}")
    return proc


def load_tool(name):
    """Import ``tools/<name>.py`` as a module (the tools are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cli_in_process(name, argv):
    """``tools/<name>.py`` run in this process as its ``__main__`` does (parse, then ``run_tool``), without
    launching workers. Returns (exit code, ERROR lines, WARNING lines); code 0 when the tool returned."""
    from types import SimpleNamespace

    from loguru import logger

    import yolox.core
    from yolox.core import run_tool as run_cli

    tool = load_tool(name)
    parse = getattr(tool, "parse_args", None) or tool.make_parser().parse_args
    entry = getattr(tool, "cli", None) or tool.run
    messages = []
    sink = logger.add(lambda m: messages.append((m.record["level"].name, m.record["message"])), level="WARNING",
                      format="{message}")
    launched = []
    real_launch = yolox.core.launch
    yolox.core.launch = lambda *a, **k: launched.append(True)
    try:
        try:
            run_cli(entry, parse([str(a) for a in argv]))
            code = 0
        except SystemExit as e:
            code = e.code
    finally:
        yolox.core.launch = real_launch
        logger.remove(sink)
    return SimpleNamespace(code=code, launched=bool(launched),
                           errors=[m for level, m in messages if level == "ERROR"],
                           warnings=[m for level, m in messages if level == "WARNING"])
