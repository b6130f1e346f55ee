from .cli import check_devices, check_file, check_writable, run_tool
from .hooks import HookBase
from .launch import find_free_port, launch, under_torchrun
from .trainer import NonFiniteLossError, Trainer

__all__ = ["check_devices", "check_file", "check_writable", "run_tool", "Trainer", "NonFiniteLossError", "HookBase", "launch", "find_free_port", "under_torchrun"]
