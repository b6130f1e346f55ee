import math
from collections import Counter
from itertools import islice

import pytest
import torch

from yolox.data import InfiniteSampler, RepeatFactorSampler, YoloBatchSampler, repeat_factors_from_categories


def take(sampler, n):
    return list(islice(iter(sampler), n))


# ------------------------------------------------------------------ repeat factors
def test_repeat_factors_hand_computed():
    # 5 images: f_0 = 3/5, f_1 = 1/5, f_2 = 1/5 (duplicates in an image count once)
    img_cat_ids = [[0], [0, 1, 1], [0], [2], []]
    # t = 0.45: r_0 = max(1, sqrt(0.45 / 0.6)) = 1, r_1 = r_2 = sqrt(0.45 / 0.2) = 1.5
    assert repeat_factors_from_categories(img_cat_ids, 0.45) == pytest.approx([1.0, 1.5, 1.0, 1.5, 1.0])
    # t = 1.8: r_0 = sqrt(3), r_1 = r_2 = 3; image 1 takes the max over its classes
    assert repeat_factors_from_categories(img_cat_ids, 1.8) == pytest.approx(
        [math.sqrt(3), 3.0, math.sqrt(3), 3.0, 1.0])
    # t below every frequency: no repeats
    assert repeat_factors_from_categories(img_cat_ids, 0.1) == [1.0] * 5


def test_repeat_factors_lvis_threshold():
    # t = 0.001 (LVIS): a class in 1 of 4000 images has f = 1/4000 -> r = sqrt(0.001 * 4000) = 2;
    # a class in 1 of 1000 images sits exactly at the threshold -> r = 1
    factors = repeat_factors_from_categories([[0]] * 3999 + [[5]], 0.001)
    assert factors[-1] == pytest.approx(2.0) and factors[0] == 1.0
    assert repeat_factors_from_categories([[0]] * 999 + [[5]], 0.001)[-1] == pytest.approx(1.0)


# ------------------------------------------------------------------ RepeatFactorSampler
FACTORS = [1.0, 1.5, 1.0, 1.5, 1.0]


def test_ceil_rounding_repeats_exactly():
    sampler = RepeatFactorSampler(FACTORS, rounding="ceil", seed=3)
    assert len(sampler) == 7
    stream = take(sampler, 7 * 4)
    for p in range(4):  # every pass holds image i exactly ceil(r_i) times
        assert Counter(stream[7 * p: 7 * (p + 1)]) == {0: 1, 1: 2, 2: 1, 3: 2, 4: 1}
    assert stream[:7] != stream[7:14]  # passes are reshuffled


def test_stochastic_rounding_matches_factors_on_average():
    factors = [1.0, 2.25, 1.0, 1.5, 3.0]
    sampler = RepeatFactorSampler(factors, rounding="stochastic", seed=0)
    assert len(sampler) == int(sum(factors))
    n = 8000
    counts = Counter(take(sampler, n))
    for i, r in enumerate(factors):
        assert counts[i] / n == pytest.approx(r / sum(factors), abs=0.015)
    # each pass repeats image i floor(r_i) or ceil(r_i) times
    for p in range(5):
        per_pass = Counter(sampler._pass(p).tolist())
        for i, r in enumerate(factors):
            assert per_pass[i] in (math.floor(r), math.ceil(r))


@pytest.mark.parametrize("make", [
    lambda **kw: InfiniteSampler(13, **kw),
    lambda **kw: RepeatFactorSampler(FACTORS * 3, rounding="stochastic", **kw),
    lambda **kw: RepeatFactorSampler(FACTORS * 3, rounding="ceil", **kw),
])
def test_deterministic_per_seed_and_sharded_over_ranks(make):
    stream = take(make(seed=5), 200)
    assert stream == take(make(seed=5), 200)
    assert stream != take(make(seed=6), 200)
    rank0 = take(make(seed=5, rank=0, world_size=2), 100)
    rank1 = take(make(seed=5, rank=1, world_size=2), 100)
    # the ranks take alternate positions of the one global stream: disjoint, and together all of it
    assert rank0 == stream[0::2] and rank1 == stream[1::2]


@pytest.mark.parametrize("make", [
    lambda **kw: InfiniteSampler(7, **kw),
    lambda **kw: InfiniteSampler(7, shuffle=False, **kw),
    lambda **kw: RepeatFactorSampler(FACTORS, rounding="stochastic", **kw),
    lambda **kw: RepeatFactorSampler(FACTORS, rounding="ceil", **kw),
])
@pytest.mark.parametrize("rank, world_size", [(0, 1), (1, 2), (2, 3)])
def test_start_equals_skipping(make, rank, world_size):
    full = take(make(seed=1, rank=rank, world_size=world_size), 60)
    for start in (0, 1, 3, 7, 8, 20):
        assert take(make(seed=1, rank=rank, world_size=world_size, start=start), 60 - start) == full[start:]


def test_infinite_sampler_passes_are_seeded_permutations():
    sampler = InfiniteSampler(10, seed=4)
    stream = take(sampler, 30)
    for p in range(3):
        expected = torch.randperm(10, generator=torch.Generator().manual_seed(4 + p)).tolist()
        assert stream[10 * p: 10 * (p + 1)] == expected
    assert take(InfiniteSampler(4, shuffle=False), 10) == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert len(InfiniteSampler(10, world_size=3)) == 3
    assert len(RepeatFactorSampler(FACTORS, rounding="ceil", world_size=2)) == 3


def test_sampler_argument_errors():
    with pytest.raises(ValueError, match="rounding"):
        RepeatFactorSampler(FACTORS, rounding="floor")
    with pytest.raises(ValueError, match="rank"):
        InfiniteSampler(10, rank=2, world_size=2)
    with pytest.raises(ValueError, match="all 0"):
        RepeatFactorSampler([0.0, 0.0])


# ------------------------------------------------------------------ YoloBatchSampler
def test_yolo_batch_sampler_pairs_and_close_mosaic():
    batch_sampler = YoloBatchSampler(InfiniteSampler(10, shuffle=False), batch_size=4, mosaic=True)
    assert len(batch_sampler) == 3  # ceil(10 / 4) batches per pass
    batches = iter(batch_sampler)
    assert next(batches) == [(True, 0), (True, 1), (True, 2), (True, 3)]
    batch_sampler.close_mosaic()
    assert next(batches) == [(False, 4), (False, 5), (False, 6), (False, 7)]
    assert next(batches) == [(False, 8), (False, 9), (False, 0), (False, 1)]  # infinite: no short batch


@pytest.mark.parametrize("make", [
    lambda **kw: InfiniteSampler(2, **kw),
    lambda **kw: RepeatFactorSampler([0.5, 0.5], rounding="stochastic", **kw),  # passes of 0, 1 or 2 indices
])
def test_passes_shorter_than_world_size(make):
    stream = take(make(seed=2), 90)
    for rank in range(3):
        assert take(make(seed=2, rank=rank, world_size=3), 30) == stream[rank::3]
        assert take(make(seed=2, rank=rank, world_size=3, start=5), 25) == stream[rank::3][5:]


# ------------------------------------------------------------------ the epoch under RFS
def released_epoch_iterations(num_images, world_size, batch_per_rank):
    """The released EFL code's epoch, re-enacted: its RFS sampler reports ceil(num_images / world) (the count
    before repetition) and its runner's epoch is that many indices in batches (torch BatchSampler, drop_last
    False): ceil(ceil(num_images / world) / batch)."""
    return math.ceil(math.ceil(num_images / world_size) / batch_per_rank)


# 40 images: 30 without repeats, 6 at r = 2.5 (ceil 3), 4 at r = 4.2 (ceil 5)
HAND_FACTORS = [1.0] * 30 + [2.5] * 6 + [4.2] * 4


@pytest.mark.parametrize("world_size, batch", [(1, 8), (1, 5), (3, 4), (16, 1)])
def test_epoch_unit_dataset_is_the_image_count_before_repetition(world_size, batch):
    repeated_pass = 30 + 6 * 3 + 4 * 5  # 68 indices in a pass of the stream
    for rank in range(world_size):
        dataset_unit = RepeatFactorSampler(HAND_FACTORS, rounding="ceil", rank=rank, world_size=world_size,
                                           epoch_unit="dataset")
        repeated_unit = RepeatFactorSampler(HAND_FACTORS, rounding="ceil", rank=rank, world_size=world_size)
        assert len(dataset_unit) == math.ceil(40 / world_size)
        assert len(repeated_unit) == repeated_pass // world_size
        batches = YoloBatchSampler(dataset_unit, batch_size=batch, drop_last=False)
        assert len(batches) == released_epoch_iterations(40, world_size, batch)
        # the stream itself is still the repeated one: the unit changes the schedule, not the sampling
        assert take(dataset_unit, 3 * repeated_pass // world_size) == take(repeated_unit, 3 * repeated_pass // world_size)


def test_epoch_unit_on_a_table1_probe():
    # 40 images at batch 8, every image's factor 2.2 (ceil 3): the repeated unit gives 15 iterations, the
    # released one 5
    sampler = RepeatFactorSampler([2.2] * 40, rounding="ceil", epoch_unit="dataset")
    assert len(YoloBatchSampler(sampler, batch_size=8)) == 5
    assert len(YoloBatchSampler(RepeatFactorSampler([2.2] * 40, rounding="ceil"), batch_size=8)) == 15
    # LVIS v1 train, 16 GPUs x 8 images: 783 iterations an epoch, whatever the repeat factors
    assert released_epoch_iterations(100_170, 16, 8) == 783
    with pytest.raises(ValueError, match="epoch_unit"):
        RepeatFactorSampler([1.0], epoch_unit="images")
