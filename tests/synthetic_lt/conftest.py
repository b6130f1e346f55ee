"""Fixtures shared by the generator tests."""
import pytest

from synthetic_lt import LTDatasetSpec


@pytest.fixture
def tiny_spec():
    """A factory of small specs: 6 classes, 8 train / 4 val images of 64 x 80 px, ``**overrides`` on top."""
    def make(**overrides):
        values = dict(num_classes=6, num_train_images=8, num_val_images=4, image_size=(64, 80), max_objects_per_image=3,
                      min_object_size=10, max_object_size=32, min_val_instances_per_class=2, seed=0)
        values.update(overrides)
        return LTDatasetSpec(**values)

    return make
