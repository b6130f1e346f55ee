"""launch() under torchrun: a rendezvous that can never complete is an error, not a hang."""
import pytest

from yolox.core import launch
from yolox.utils import YOLOXError


def test_torchrun_with_master_port_zero_fails_fast(monkeypatch):
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": "0"}.items():
        monkeypatch.setenv(key, value)
    called = []
    with pytest.raises(YOLOXError, match="--standalone"):
        launch(lambda: called.append(1), 1, device="cpu")
    assert not called
