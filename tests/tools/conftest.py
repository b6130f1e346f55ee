"""Session fixtures: tiny generated datasets in COCO and LVIS format."""
import pytest

from cli_helpers import make_dataset


@pytest.fixture(scope="session")
def tiny_coco(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("tiny_coco"), "coco")


@pytest.fixture(scope="session")
def tiny_lvis(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("tiny_lvis"), "lvis")
