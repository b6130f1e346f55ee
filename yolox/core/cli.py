"""What the command-line tools share: argument checks that fail fast, and one-line errors."""
import os
import sys
import tempfile
import traceback

import torch
import torch.multiprocessing as mp
from loguru import logger

from yolox.utils import YOLOXError, resolve_device

__all__ = ["run_tool", "check_devices", "check_writable", "check_file"]


def check_file(path, what):
    if path is not None and not os.path.isfile(path):
        raise YOLOXError(f"{what} not found: {path}")


def check_writable(folder):
    """Create ``folder`` (or fail with one line) and make sure files can be written in it."""
    try:
        os.makedirs(folder, exist_ok=True)
        # a unique probe: several processes (nodes, concurrent launches) may check the same folder at once
        fd, probe = tempfile.mkstemp(prefix=".write_test_", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise YOLOXError(f"output directory {folder} is not writable: {e.strerror or e}") from None


def check_devices(device, num_procs):
    """Resolve ``--device`` and check that ``-d num_procs`` fits the machine."""
    try:
        device = resolve_device(device)
    except ValueError as e:
        raise YOLOXError(str(e)) from None
    if num_procs is not None and num_procs < 1:
        raise YOLOXError(f"-d must be at least 1, got {num_procs}")
    if device == "cuda" and num_procs is not None and num_procs > torch.cuda.device_count():
        raise YOLOXError(f"-d {num_procs} asks for more GPUs than the {torch.cuda.device_count()} visible")
    if device == "cpu" and num_procs is not None and num_procs > (os.cpu_count() or 1):
        raise YOLOXError(f"-d {num_procs} asks for more CPU processes than the {os.cpu_count()} cores present")
    return device


def run_tool(main, *args):
    """Run ``main(*args)``; known user errors print one line and exit 2, worker failures exit 1, other
    exceptions keep their traceback and exit 1 (never a silent exit 0)."""
    try:
        main(*args)
    except YOLOXError as e:
        logger.error(str(e))
        sys.exit(2)
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as e:
        logger.error(f"a worker process failed: {str(e).strip().splitlines()[-1]}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:  # noqa: BLE001 - show it and fail loudly
        traceback.print_exc()
        sys.exit(1)
