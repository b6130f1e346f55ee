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


def test_several_machines_without_a_rendezvous_address_is_a_one_line_error(monkeypatch):
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    called = []
    with pytest.raises(YOLOXError, match=r"--num_machines 2 needs --dist-url tcp://HOST:PORT of machine 0"):
        launch(lambda: called.append(1), 1, num_machines=2, device="cpu")
    assert not called
