"""all_reduce_norm: every rank ends with the mean of the ranks' BatchNorm statistics."""
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from yolox.utils import all_reduce_norm


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
