"""Two gloo ranks accumulate the same gradient statistics as one process on the concatenated batch."""
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from yolox.models.losses import EQLv2FocalLoss, EqualizedFocalLoss, EqualizedQualityFocalLoss

C = 5
N = 48
STEPS = 3


def _losses():
    return {
        "efl_hook": EqualizedFocalLoss(C, grad_mode="hook"),
        "efl_analytic": EqualizedFocalLoss(C, grad_mode="analytic"),
        "eqfl_hook": EqualizedQualityFocalLoss(C, grad_mode="hook"),
        "eqlv2_hook": EQLv2FocalLoss(C, grad_mode="hook"),
    }


def _batch(step):
    """Fixed random batch for a step: logits [N, C], binary and quality targets [N, C]."""
    gen = torch.Generator().manual_seed(100 + step)
    logits = torch.randn(N, C, generator=gen) * 2
    labels = torch.randint(0, C, (N,), generator=gen)
    fg = torch.rand(N, generator=gen) < 0.3
    fg[0] = fg[N // 2] = True  # both halves hold positives
    binary = torch.zeros(N, C)
    binary[fg.nonzero().squeeze(1), labels[fg]] = 1.0
    quality = binary * (torch.rand(N, 1, generator=gen) * 0.9 + 0.05)
    return logits, binary, quality


def _targets(name, binary, quality):
    return quality if name.startswith("eqfl") else binary


def _run_steps(losses, rows, world_size, steps=range(STEPS), skip_on_rank=None, rank=0):
    """Back-propagate summed / normaliser for each step on the given rows, then commit."""
    for step in steps:
        logits, binary, quality = _batch(step)
        # DDP normaliser: the total number of positives averaged over ranks.
        normalizer = float((binary > 0).sum()) / world_size
        for name, loss_fn in losses.items():
            targets = _targets(name, binary, quality)[rows]
            x = logits[rows].clone().requires_grad_(True)
            (loss_fn(x, targets, normalizer=normalizer) / normalizer).backward()
            loss_fn.commit_grad_stats(grad_scale=1.0, skip=skip_on_rank == rank)


def _state(losses):
    return {f"{name}.{k}": v.clone() for name, m in losses.items() for k, v in m.state_dict().items()}


def _worker(rank, world_size, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        losses = _losses()
        half = N // world_size
        rows = slice(rank * half, (rank + 1) * half)
        _run_steps(losses, rows, world_size, rank=rank)
        torch.save(_state(losses), f"{out_dir}/rank{rank}.pt")
        # One more step that only rank 1 marks as skipped (e.g. its AMP scaler saw inf): all ranks skip it.
        _run_steps(losses, rows, world_size, steps=[STEPS], skip_on_rank=1, rank=rank)
        torch.save(_state(losses), f"{out_dir}/rank{rank}_skipped.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_match_single_process(tmp_path):
    torch.set_num_threads(1)
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))

    single = _losses()
    _run_steps(single, slice(0, N), world_size=1)
    expected = _state(single)

    assert set(rank0) == set(expected) and len(expected) == 12
    for key, value in expected.items():
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=1e-6)
        torch.testing.assert_close(rank0[key], value, rtol=1e-5, atol=1e-6)
    # The statistics moved away from their initial values, so the later steps used per-class factors.
    assert (expected["efl_hook.pos_neg"] < 1).any() and (expected["efl_hook.neg_grad"] > 0).all()

    for r in range(2):
        skipped = torch.load(tmp_path / f"rank{r}_skipped.pt")
        for key, value in rank0.items():
            assert torch.equal(skipped[key], value), (r, key)
