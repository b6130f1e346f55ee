"""The default experiments build models whose state dicts match the published YOLOX checkpoints."""
from pathlib import Path

import pytest
import torch

from yolox.exp import get_exp

REFERENCE = Path(__file__).parent / "reference"
SIZES = ["nano", "tiny", "s", "m", "l", "x"]


def read_reference(size):
    rows = {}
    for line in (REFERENCE / f"yolox_{size}.tsv").read_text().splitlines():
        key, shape, dtype = line.split("\t")
        rows[key] = (tuple(int(x) for x in shape.strip("()").split(",") if x.strip()), dtype)
    return rows


@pytest.mark.parametrize("size", SIZES)
def test_state_dict_matches_published_checkpoint(size):
    reference = read_reference(size)
    model = get_exp(exp_name=f"yolox-{size}").get_model()
    ours = {k: (tuple(v.shape), str(v.dtype)) for k, v in model.state_dict().items()}
    assert sorted(ours) == sorted(reference), (
        f"missing: {sorted(set(reference) - set(ours))[:5]}, unexpected: {sorted(set(ours) - set(reference))[:5]}"
    )
    mismatched = {k: (ours[k], reference[k]) for k in reference if ours[k] != reference[k]}
    assert not mismatched, list(mismatched.items())[:5]


def test_reference_files_are_complete():
    # Guard against an emptied reference folder making the test above vacuous.
    assert len(read_reference("s")) > 400
    assert len(read_reference("x")) > 800
