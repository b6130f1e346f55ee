"""The trainer's hooks (each a small part of a run with its own state) and its step guard."""
from .base import HookBase
from .checkpoint import CheckpointHook
from .ema import EMAHook
from .evaluation import EvalHook
from .final_phase import FinalPhaseHook
from .grad_stats import GradientStatsHook
from .loggers import LoggerHook, MlflowLoggerHook, WandbLoggerHook, build_logger_hook
from .multiscale import MultiScaleHook
from .progress import ProgressHook
from .step_guard import NonFiniteLossError, StepCheck, StepGuard

__all__ = [
    "HookBase", "CheckpointHook", "EMAHook", "EvalHook", "FinalPhaseHook", "GradientStatsHook", "MultiScaleHook",
    "ProgressHook", "NonFiniteLossError", "StepCheck", "StepGuard", "LoggerHook", "WandbLoggerHook",
    "MlflowLoggerHook", "build_logger_hook",
]
