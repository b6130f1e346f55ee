"""The experiment base class and its command-line overrides."""
import ast
import pprint
from abc import ABCMeta, abstractmethod

from tabulate import tabulate

from yolox.utils.errors import YOLOXError

__all__ = ["BaseExp", "ExpConfigError"]


class ExpConfigError(YOLOXError, ValueError):
    """An experiment file or a ``key value`` override that cannot be used."""


class BaseExp(metaclass=ABCMeta):
    """An experiment: every hyper-parameter is a plain attribute, every component a ``get_*`` method."""

    def __init__(self):
        self.seed = None
        self.output_dir = "./YOLOX_outputs"
        self.print_interval = 100
        self.eval_interval = 10
        self.exp_name = type(self).__module__

    @abstractmethod
    def get_model(self):
        ...

    @abstractmethod
    def get_data_loader(self, batch_size, is_distributed, no_aug=False, cache_img=None):
        ...

    @abstractmethod
    def get_optimizer(self, batch_size):
        ...

    @abstractmethod
    def get_lr_scheduler(self, lr, iters_per_epoch, **kwargs):
        ...

    @abstractmethod
    def get_evaluator(self, batch_size, is_distributed, testdev=False, legacy=False):
        ...

    @abstractmethod
    def eval(self, model, evaluator, weights):
        ...

    def __repr__(self):
        rows = [(k, pprint.pformat(v)) for k, v in vars(self).items() if not k.startswith("_")]
        return tabulate(rows, headers=["keys", "values"], tablefmt="fancy_grid")

    def merge(self, cfg_list):
        """Apply ``["key", "value", ...]`` overrides; values are parsed as Python literals and must keep
        the attribute's type (an int attribute accepts "3", a tuple attribute "(320,320)")."""
        if cfg_list is None:
            return
        if len(cfg_list) % 2:
            raise ExpConfigError(f"overrides come in 'key value' pairs, got an odd list: {cfg_list}")
        for key, raw in zip(cfg_list[0::2], cfg_list[1::2]):
            if key.startswith("_") or not hasattr(self, key):
                raise ExpConfigError(f"unknown experiment attribute {key!r} in the command-line overrides")
            current = getattr(self, key)
            setattr(self, key, self._parse_value(key, raw, current))

    @staticmethod
    def _parse_value(key, raw, current):
        if not isinstance(raw, str):
            return raw
        if isinstance(current, str):
            return raw
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            if current is None:
                return raw
            raise ExpConfigError(f"cannot parse the value {raw!r} of {key!r} (expected {type(current).__name__})") from None
        if current is None or value is None:
            return value
        if isinstance(current, bool) or isinstance(value, bool):
            if not isinstance(value, bool) or not isinstance(current, bool):
                raise ExpConfigError(f"{key!r} expects {type(current).__name__}, got {raw!r}")
            return value
        if isinstance(current, float) and isinstance(value, int):
            return float(value)
        if isinstance(current, (tuple, list)) and isinstance(value, (tuple, list)):
            return type(current)(value)
        if not isinstance(value, type(current)):
            raise ExpConfigError(f"{key!r} expects {type(current).__name__}, got {raw!r}")
        return value
