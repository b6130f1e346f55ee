"""all_reduce_norm: every rank ends with the mean of the ranks' BatchNorm statistics. The loss normalisers and
their replay over the micro-batches of an accumulated step, in one process and over two gloo processes."""
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from yolox.utils import all_reduce_norm
from yolox.utils.dist import NormalizerReplay, local_normalizer, mean_normalizer, rank_average_normalizer


def _net():
    return nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2))


def _set_rank_statistics(net, rank):
    for i, bn in enumerate(m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.fill_(rank * 2.0 + i)
        bn.running_var.fill_(1.0 + rank * 4.0)
        bn.num_batches_tracked.fill_(10 + rank)


def _worker(rank, world_size, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    torch.manual_seed(0)
    net = _net()
    _set_rank_statistics(net, rank)
    weights = [p.detach().clone() for p in net.parameters()]
    all_reduce_norm(net)
    torch.save({"state": net.state_dict(), "weights_equal": all(torch.equal(a, b) for a, b in
                                                                 zip(weights, net.parameters()))},
               f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_all_reduce_norm_averages_running_statistics(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for result in results:
        state = result["state"]
        assert result["weights_equal"]  # parameters are not touched
        assert torch.equal(state["1.running_mean"], torch.full((4,), 1.0))  # (0 + 2) / 2
        assert torch.equal(state["3.running_mean"], torch.full((2,), 2.0))  # (1 + 3) / 2
        assert torch.equal(state["1.running_var"], torch.full((4,), 3.0))  # (1 + 5) / 2
    # counters stay each rank's own
    assert [int(r["state"]["1.num_batches_tracked"]) for r in results] == [10, 11]


def test_all_reduce_norm_is_a_no_op_in_one_process():
    net = _net()
    _set_rank_statistics(net, 3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    all_reduce_norm(net)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


# ---------------------------------------------------------------------------------------------- loss normalisers
def _normalisers_of(values):
    """The three normalisers of one micro-batch's ``values`` (num_fg, IoU sum, element count), in the order a
    loss calls them."""
    num_fg, iou_sum, count = values
    return (mean_normalizer(torch.tensor(num_fg)), rank_average_normalizer(torch.tensor(iou_sum)),
            local_normalizer(count))


def _replayed(micro_values):
    """Record every micro-batch, then replay each: the normalisers each micro-batch's replay returns."""
    replay = NormalizerReplay()
    for values in micro_values:
        with replay.record():
            _normalisers_of(values)
    out = []
    for values in micro_values:
        with replay.replay():
            out.append(_normalisers_of(values))
    return out


def test_plain_normalisers_in_one_process():
    assert float(mean_normalizer(torch.tensor(5))) == 5.0 and float(mean_normalizer(torch.tensor(0))) == 1.0
    assert float(rank_average_normalizer(torch.tensor(2.5))) == 2.5
    assert float(rank_average_normalizer(torch.tensor(0.25))) == 1.0
    assert local_normalizer(12) == 12 and local_normalizer(0) == 1


def test_replay_returns_the_step_totals_to_every_micro_batch():
    micro = [(3, 0.5, 12), (0, 0.0, 0), (4, 1.25, 16)]
    replayed = _replayed(micro)
    for num_fg, iou_sum, count in replayed:
        assert mean_normalizer(torch.tensor(1)).dtype == num_fg.dtype == torch.float32
        assert (float(num_fg), float(iou_sum), count) == (7.0, 1.75, 28)
    # the clamps apply to the totals: a step without positives divides by 1, as a plain batch does
    assert [(float(a), float(b), c) for a, b, c in _replayed([(0, 0.0, 0), (0, 0.125, 0)])] == [(1.0, 1.0, 1)] * 2
    # outside the contexts the functions are plain again
    assert float(mean_normalizer(torch.tensor(3))) == 3.0


def test_replay_checks_the_call_order():
    replay = NormalizerReplay()
    with replay.record():
        mean_normalizer(torch.tensor(2))
    with pytest.raises(RuntimeError, match="does not match the recorded pass"):
        with replay.replay():
            rank_average_normalizer(torch.tensor(2.0))
    with pytest.raises(RuntimeError, match="called 0 loss normalisers"):
        with replay.replay():
            pass
    other = NormalizerReplay()
    with other.record():
        local_normalizer(3)
    with other.record():
        pass
    with pytest.raises(RuntimeError, match="different loss normalisers"):
        with other.replay():
            pass


def _replay_worker(rank, world_size, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    # rank 0: micro-batches with 3 and 1 positives, rank 1: 0 and 2; IoU sums 0.5 + 0.25, 1.0 + 0.75; 4 box
    # coordinates per positive
    micro = [[(3, 0.5, 12), (1, 0.25, 4)], [(0, 1.0, 0), (2, 0.75, 8)]][rank]
    plain = _normalisers_of(tuple(sum(v[i] for v in micro) for i in range(3)))  # one batch of both
    torch.save({"replayed": [(float(a), float(b), c) for a, b, c in _replayed(micro)],
                "plain": (float(plain[0]), float(plain[1]), plain[2])}, f"{out_dir}/replay{rank}.pt")
    dist.destroy_process_group()


def test_replay_reduces_over_ranks_where_the_function_does(tmp_path):
    mp.spawn(_replay_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank, count in ((0, 16), (1, 8)):
        result = torch.load(tmp_path / f"replay{rank}.pt")
        # mean over ranks of num_fg (6 / 2); sum of IoUs over ranks / world size (2.5 / 2); the rank's own count
        assert result["replayed"] == [(3.0, 1.25, count)] * 2
        assert result["plain"] == (3.0, 1.25, count)  # = the plain normalisers of one batch per rank
