"""Running averages of training statistics."""
from collections import defaultdict, deque

import numpy as np

__all__ = ["AverageMeter", "MeterBuffer"]


class AverageMeter:
    """Keeps the last ``window_size`` values plus a global total."""

    def __init__(self, window_size=50):
        self._deque = deque(maxlen=window_size)
        self._total = 0.0
        self._count = 0

    def update(self, value):
        self._deque.append(value)
        self._count += 1
        self._total += value

    @property
    def median(self):
        return float(np.median(self._deque)) if self._deque else None

    @property
    def avg(self):
        return float(np.mean(self._deque)) if self._deque else None

    @property
    def global_avg(self):
        return self._total / max(self._count, 1)

    @property
    def latest(self):
        return self._deque[-1] if self._deque else None

    def clear(self):
        self._deque.clear()
        self._total = 0.0
        self._count = 0


class MeterBuffer(defaultdict):
    """``meters.update(loss=1.0, lr=0.01)``; ``meters.get_filtered_meter("loss")``."""

    def __init__(self, window_size=20):
        super().__init__(lambda: AverageMeter(window_size=window_size))

    def update(self, values=None, **kwargs):
        values = dict(values or {}, **kwargs)
        for k, v in values.items():
            if hasattr(v, "item"):
                v = v.detach().item()
            self[k].update(float(v))

    def get_filtered_meter(self, filter_key="time"):
        return {k: v for k, v in self.items() if filter_key in k}

    def clear_meters(self):
        for v in self.values():
            v.clear()
