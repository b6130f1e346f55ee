"""The dataset spec: its checks."""
import pytest

from synthetic_lt import LTDatasetSpec


def test_spec_validation():
    with pytest.raises(ValueError):
        LTDatasetSpec(format="voc")
    with pytest.raises(ValueError):
        LTDatasetSpec(num_classes=0)
    with pytest.raises(ValueError):
        LTDatasetSpec(image_size=(16, 16))
    assert LTDatasetSpec(image_size=64).image_size == (64, 64)
