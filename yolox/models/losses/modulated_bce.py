"""One fused kernel for the focal family (FL, QFL, EFL, EQFL): a dense pass for negatives, a sparse fix-up.

All four losses are the same per-element expression

    L_ij = r_i * a_ij * w_j * |y_ij - p_ij|^gamma_j * BCE(x_ij, y_ij),     p = sigmoid(x)

with a = alpha for y > 0 and 1 - alpha for y = 0 (FL, EFL; a = 1 for QFL, EQFL), w_j the EFL weighting
factor (1 for FL, QFL), r_i an optional per-row (anchor) weight (1 by default) and gamma_j a scalar
(FL, QFL) or per class (EFL, EQFL). Its derivative is

    dL/dx = r_i * a * w_j * sign(p - y) * |p - y|^(gamma_j - 1) * ((p - y)^2 + gamma_j * p * (1 - p) * BCE).

Why a custom kernel: with 1203 classes nearly every element is a negative (y = 0; one positive per
foreground anchor row), where the expression reduces to a * w_j * p^gamma_j * softplus(x). Evaluating that
reduced form densely, in place, and then correcting the few y != 0 elements by gather/scatter takes about
a third of the passes over [N, C] that the general formula (or autograd through it) needs; forward also
evaluates the gradient so that backward is one multiply.

Since the dense pass never reads the targets, they may be given sparsely: the (rows, cols) of the
positives and their values, every other target being 0 (no dense [N, C] target tensor at all). Logits of a
lower precision (float16 / bfloat16 under autocast) are cast to float32 chunk by chunk, so no float32 copy
of the whole [N, C] is made either.
"""
import torch
import torch.nn.functional as F

__all__ = ["modulated_bce_sum"]

_CHUNK_ELEMENTS = 1 << 20  # 4 MiB of float32 per buffer: cache-sized on CPU
_CHUNK_ELEMENTS_GPU = 1 << 24  # GPUs have no page-fault cost (caching allocator); fewer, larger launches


class _ModulatedBCESum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gamma, weight, alpha, rows, cols, pos_targets, stats_sink, row_weight, stats_regroup):
        # Everything is computed in float32, whatever the dtype of x (see modulated_bce_sum).
        neg_a = 1.0 if alpha is None else 1.0 - alpha
        pos_a = 1.0 if alpha is None else alpha
        need_grad = ctx.needs_input_grad[0]
        gamma_row = gamma.view(1, -1) if torch.is_tensor(gamma) else gamma

        # Dense pass: every element as a negative, L = neg_a * w * p^gamma * softplus(x), and its gradient
        # neg_a * w * p^gamma * (p + gamma * (1 - p) * softplus). Done in row chunks of ~1M elements with
        # reused buffers: a fresh [N, C] tensor costs more in page faults than the arithmetic, and small
        # chunks stay in cache. softplus = -log(sigmoid(-x)): sigmoid and log are vectorised on CPU,
        # PyTorch's softplus / log1p / logsigmoid are several times slower.
        n, c = x.shape
        chunk = _CHUNK_ELEMENTS if x.device.type == "cpu" else _CHUNK_ELEMENTS_GPU
        rows_per_chunk = max(1, min(n, chunk // max(c, 1)))
        f32 = torch.float32
        buffers = [x.new_empty(rows_per_chunk, c, dtype=f32) for _ in range(4)]
        # Lower-precision logits: a float32 copy of one chunk at a time, never of the whole [N, C].
        x_chunk32 = x.new_empty(rows_per_chunk, c, dtype=f32) if x.dtype != f32 else None
        grad = torch.empty(x.shape, dtype=f32, device=x.device) if need_grad else None
        col_sums = x.new_zeros(c, dtype=f32)
        stats_sink = stats_sink if need_grad else None
        regrouped = stats_sink is not None and stats_regroup > 1
        neg_grad_cols = x.new_zeros(c, dtype=f32) if stats_sink is not None and not regrouped else None
        # The released layout needs the |grad| column sums per anchor slot (row % na) instead: [na, C].
        slot_grad = x.new_zeros(stats_regroup, c, dtype=f32) if regrouped else None
        grad_scale = weight.view(1, -1) * neg_a if weight is not None else neg_a
        for start in range(0, n, rows_per_chunk):
            xc = x[start:start + rows_per_chunk]
            if x_chunk32 is not None:
                xc = x_chunk32[:xc.shape[0]].copy_(xc)
            p, q, elem, p_pow = (b[:xc.shape[0]] for b in buffers)
            torch.sigmoid(xc, out=p)
            torch.neg(xc, out=q).sigmoid_()  # 1 - p, exact for large x
            # elem holds the negated terms (-softplus, then -loss): negation is exact and sign-symmetric in
            # every product and sum below, so leaving it out (col_sums are negated once, at the end; the
            # gradient subtracts) gives the same bits with one pass over the chunk fewer.
            torch.log(q, out=elem)  # -softplus(x)
            if torch.is_tensor(gamma) or gamma != 2.0:
                torch.add(xc, elem, out=p_pow).mul_(gamma_row).exp_()  # exp(gamma * log p)
            else:
                torch.mul(p, p, out=p_pow)
            elem.mul_(p_pow)
            rw = None if row_weight is None else row_weight[start:start + rows_per_chunk]
            if rw is None:
                col_sums += elem.sum(0)
            else:
                col_sums.addmv_(elem.t(), rw)
            if need_grad:
                gc = grad[start:start + rows_per_chunk]
                torch.mul(p_pow, p, out=gc)
                gc.sub_(elem.mul_(q).mul_(gamma_row)).mul_(grad_scale)
                if rw is not None:
                    gc.mul_(rw[:, None])
                if slot_grad is not None:  # while the chunk is in cache; every term here is >= 0
                    _add_slot_sums(slot_grad, gc, start)
                elif stats_sink is not None:
                    neg_grad_cols += gc.sum(0)
        del buffers, x_chunk32
        col_sums.neg_()
        loss = (col_sums * weight).sum() if weight is not None else col_sums.sum()
        loss = loss * neg_a

        # Sparse fix-up at (rows, cols), which cover every y != 0: swap the negative form for the general
        # one. Elements with y = 0 are recomputed to the same value, so any superset of the non-zero
        # targets works.
        if rows.numel():
            xs, ys = x[rows, cols].to(f32), pos_targets
            gs = gamma[cols] if torch.is_tensor(gamma) else gamma
            ws = weight[cols] if weight is not None else 1.0
            if row_weight is not None:
                ws = ws * row_weight[rows]
            a_s = torch.where(ys > 0, pos_a, neg_a)
            ps = torch.sigmoid(xs)
            d = ps - ys
            abs_d = d.abs()
            bce = F.binary_cross_entropy_with_logits(xs, ys, reduction="none")
            general = a_s * ws * abs_d.pow(gs) * bce
            as_negative = neg_a * ws * ps.pow(gs) * F.softplus(xs)
            loss = loss + (general - as_negative).sum()
            if need_grad:
                general_grad = a_s * ws * torch.sign(d) * abs_d.pow(gs - 1.0) * (d * d + gs * ps * (1.0 - ps) * bce)
                grad[rows, cols] = general_grad
                if stats_sink is not None:
                    negative_grad = neg_a * ws * ps.pow(gs) * (ps + gs * (1.0 - ps) * F.softplus(xs))
                    if slot_grad is not None:  # the dense pass summed the negative form: swap it for |general|
                        slot_grad.view(-1).index_add_(0, (rows % stats_regroup) * c + cols,
                                                      general_grad.abs() - negative_grad)
                    else:
                        neg_grad_cols.index_add_(0, cols, -negative_grad)
        if slot_grad is not None:
            ctx.stats = (_released_stats(grad, rows, cols, slot_grad), stats_sink)
        elif stats_sink is not None:
            pos_grad_cols = x.new_zeros(c, dtype=f32)
            if rows.numel():
                pos_grad_cols.index_add_(0, cols, general_grad.abs())
            ctx.stats = (torch.stack([pos_grad_cols, neg_grad_cols.clamp_(min=0)]), stats_sink)
        if need_grad:
            ctx.save_for_backward(grad)
            ctx.x_dtype = x.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        # The saved gradient is scaled in place (no new [N, C] buffer), so it can serve one backward only.
        if getattr(ctx, "consumed", False):
            raise RuntimeError("the focal-family loss supports a single backward (no retain_graph reuse)")
        ctx.consumed = True
        if getattr(ctx, "stats", None) is not None:
            # The statistics of |dL/dx| per class, in the units of the real gradient (normaliser, loss
            # weight and AMP scale are all in grad_output): what a hook on x would read, without a pass.
            stats, sink = ctx.stats
            sink(stats * grad_output.abs())
        (grad,) = ctx.saved_tensors
        # Scaled in float32, then cast once: the same values as autograd through a float32 copy of x.
        return grad.mul_(grad_output).to(ctx.x_dtype), None, None, None, None, None, None, None, None, None


def _add_slot_sums(slot_sums, chunk, start):
    """``slot_sums[a] += `` the column sums of the chunk's rows in anchor slot ``a`` (global row ``r`` has
    slot ``r % na``).

    Args:
        slot_sums: [na, C] float32 accumulator, updated in place.
        chunk: [R, C] float32 rows ``start .. start + R - 1`` of the gradient. The chunk size need not be a
            multiple of na (so the chunking, and the loss, stay those of the per-class layout): the rows of
            whole locations are summed in one pass as [R', na * C], the at most 2 (na - 1) rows of partial
            locations at its ends one by one (single rows: too small for a parallel pass).
        start: the global index of the chunk's first row.
    """
    na, c = slot_sums.shape
    rows = chunk.shape[0]
    lead = min((-start) % na, rows)  # rows before the chunk's first whole location
    whole = (rows - lead) // na * na
    if whole:
        slot_sums.view(-1).add_(chunk[lead:lead + whole].reshape(-1, na * c).sum(0))
    for j in list(range(lead)) + list(range(lead + whole, rows)):
        slot_sums[(start + j) % na] += chunk[j]


def _released_stats(grad, rows, cols, slot_abs_sums):
    """The released collector's statistic (``stats_layout="released"``, see ``grad_stats``) without a
    regrouped copy of the gradient.

    The collector reads each location's [na, C] block of rows as if it were laid out [C, na]: its element
    (anchor a', class c') is the true element (anchor k % na, class k // na), k = a' * C + c'. So

    - its column sums are those of the per-slot |grad| sums read the same way: ``S.t().reshape(na, C).sum(0)``;
    - its positive (row, class) elements are P gathers from the gradient at the mapped positions.

    Args:
        grad: [N, C] float32 gradient (unscaled by the incoming grad_output), rows in locations of na.
        rows, cols: [P] positives (row, class), as the collector's one-hot targets.
        slot_abs_sums: [na, C] float32, S[a, c] = sum over the rows r with r % na == a of |grad[r, c]|.
    Returns:
        [2, C] float32: per class, the sums of |grad| as read over the positives and over all others.
    """
    na, c = slot_abs_sums.shape
    read_cols = slot_abs_sums.t().reshape(na, c).sum(0)
    pos = grad.new_zeros(c)
    if rows.numel():
        slot = rows % na
        k = slot * c + cols
        pos.index_add_(0, cols, grad[rows - slot + k % na, k // na].abs())
    return torch.stack([pos, (read_cols - pos).clamp_(min=0)])


def modulated_bce_sum(x, y, gamma=2.0, weight=None, alpha=None, pos_index=None, index_covers_targets=False,
                      stats_sink=None, row_weight=None, pos_targets=None, stats_regroup=1):
    """sum_ij a_ij * w_j * |y_ij - sigmoid(x_ij)|^gamma_j * BCE(x_ij, y_ij) (see the module docstring).

    The targets come either dense (``y``) or sparse (``y=None``, ``pos_index`` and ``pos_targets``: the
    values at pos_index, every other target 0); both give the same loss, gradient and statistics.

    Args:
        x: [N, C] logits, float32 or a lower float dtype (computed in float32, cast chunk by chunk).
        y: [N, C] targets in [0, 1] (0/1 for FL / EFL, IoU quality for QFL / EQFL), or None for sparse
            targets.
        gamma: float, or [C] tensor of per-class focusing factors (>= 1); not differentiated.
        weight: None or [C] per-class weighting factor; not differentiated.
        alpha: None (no balancing) or the positives' alpha; negatives get 1 - alpha.
        pos_index: optional (rows, cols) covering every non-zero target, e.g. from the statistics' split;
            saves a search of y (checked by a count; y is searched when it does not cover them). With
            sparse targets: the [P] rows and [P] columns of the positives (required; no duplicates).
        index_covers_targets: True when the caller guarantees that pos_index covers them (skips the check);
            implied by sparse targets.
        stats_sink: optional callable; during backward it receives a [2, C] float32 tensor with the per-class
            sums of |dL_total/dx| over the elements of pos_index and over all others (the gradient
            statistics of EFL / EQFL), gathered inside the dense pass. Requires index_covers_targets.
        row_weight: None or [N] non-negative per-row factor on every element of the row (loss, gradient
            and statistics alike); not differentiated.
        pos_targets: with ``y=None``, the [P] targets at pos_index, in [0, 1]; not differentiated.
        stats_regroup: 1 for the per-class statistics; na > 1 for the released layout's (``grad_stats``):
            the rows come in locations of na anchors, each read as [class][anchor]. The sink then receives
            the sums over the regrouped gradient, still without a pass over [N, C] of its own.
    Returns:
        float32 scalar. Backward gives the closed-form gradient with respect to x only, in x's dtype.
    """
    f32 = torch.float32
    if torch.is_tensor(gamma):
        gamma = gamma.detach().reshape(-1).to(f32)
    if weight is not None:
        weight = weight.detach().reshape(-1).to(f32)
    if row_weight is not None:
        row_weight = row_weight.detach().reshape(-1).to(f32)
        if row_weight.shape[0] != x.shape[0]:
            raise ValueError(f"row_weight has {row_weight.shape[0]} entries for {x.shape[0]} rows")
    if y is None:
        if pos_index is None or pos_targets is None:
            raise ValueError("sparse targets (y=None) need both pos_index and pos_targets")
        rows, cols = pos_index
        pos_targets = pos_targets.detach().reshape(-1).to(f32)
        if not rows.shape[0] == cols.shape[0] == pos_targets.shape[0]:
            raise ValueError(f"pos_index has {rows.shape[0]} rows and {cols.shape[0]} columns for "
                             f"{pos_targets.shape[0]} pos_targets")
    else:
        if pos_targets is not None:
            raise ValueError("give the targets either dense (y) or sparse (pos_targets), not both")
        if stats_sink is not None and not (index_covers_targets and pos_index is not None):
            raise ValueError("stats_sink needs a pos_index that covers the non-zero targets")
        y = y.detach()
        if pos_index is None or (not index_covers_targets
                                 and int(torch.count_nonzero(y)) != int(torch.count_nonzero(y[pos_index]))):
            pos_index = y.nonzero(as_tuple=True)
        rows, cols = pos_index
        pos_targets = y[rows, cols].to(f32)
    stats_regroup = int(stats_regroup)
    if stats_regroup < 1 or (stats_sink is not None and x.shape[0] % stats_regroup):
        raise ValueError(f"{x.shape[0]} rows are not whole locations of {stats_regroup} anchors")
    return _ModulatedBCESum.apply(x, gamma, weight, alpha, rows, cols, pos_targets, stats_sink, row_weight,
                                  stats_regroup)
