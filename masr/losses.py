"""Batch-hard triplet loss of MASR / LASR, with chunked mining and a DDP gather.

MASR (paper sections 3.2-3.4) mines, per metadata stream, batch-hard triplets in the space
p = [q ; alpha e] (projection q of the utterance embedding, fixed metadata encoding e) and computes
the triplet loss on q alone. LASR is the special case without e: mining and loss on h itself.

Cost: the mining is B x B matrix products and masked reductions done ``chunk_size`` anchors at a
time under ``torch.no_grad()`` (peak extra memory O(chunk_size x B), no Python loop over anchors);
the loss then gathers only the rows q[k+] and q[k-] of each anchor, so autograd stores O(A x d),
never a B x B tensor. With ``mining_group_size`` the mining is restricted to consecutive groups of
rows (the paper's batches of 16) by a same-group mask on the same chunked distances.
"""

import torch
import torch.nn.functional as F

_EPS = 1e-12  # norm floor of the cosine (as in torch.nn.functional.normalize)


def _compute_dtype(dtype):
    """float32 for half / bfloat16 / float32 inputs, float64 for float64 inputs."""
    return torch.promote_types(dtype, torch.float32)


def _mine(p, labels, anchors, chunk_size, groups=None):
    """Batch-hard mining on p for the given anchors, ``chunk_size`` anchors at a time.

    ``groups`` (B,) holds each row's mining-group id (None: one group, the whole batch): the
    positives and negatives of an anchor are the rows of its own group only, by a same-group mask
    on the (c, B) distances (no Python loop over groups).

    Returns (pos_index, neg_index, has_negative), each of shape (A,); neg_index is -1 where the
    anchor has no negative. Ties go to the lowest index: ``torch.argmax`` / ``torch.argmin`` return
    the first extremal index on CPU and CUDA (documented; ATen's ``GreaterOrNan`` / ``LessOrNan``
    reduce ops break equal values by ``idx_a < idx_b``), and the tests check it on exact ties.
    """
    num_anchors = anchors.shape[0]
    pos_index = torch.empty(num_anchors, dtype=torch.long, device=p.device)
    neg_index = torch.empty(num_anchors, dtype=torch.long, device=p.device)
    has_negative = torch.empty(num_anchors, dtype=torch.bool, device=p.device)
    pn = F.normalize(p, dim=1, eps=_EPS)
    for start in range(0, num_anchors, chunk_size):
        idx = anchors[start:start + chunk_size]
        # (c, B) cosine distances 1 - pn_i.pn_k: negating the (c, D) factor is exact and cheaper
        # than negating the (c, B) product
        dist = torch.mm(pn[idx].neg_(), pn.t()).add_(1.0)
        same = labels[idx].unsqueeze(1) == labels.unsqueeze(0)  # (c, B); the anchor is its own positive
        if groups is None:
            not_negative = same
        else:
            in_group = groups[idx].unsqueeze(1) == groups.unsqueeze(0)  # (c, B)
            not_negative = same | ~in_group
            same &= in_group
            del in_group
        # hardest positive: the farthest one (the anchor itself is always a candidate)
        pos_index[start:start + chunk_size] = torch.where(same, dist, float("-inf")).argmax(dim=1)
        # hardest negative: the nearest one; rows without a negative are all +inf
        dist.masked_fill_(not_negative, float("inf"))
        nearest = dist.argmin(dim=1)
        neg_index[start:start + chunk_size] = nearest
        has_negative[start:start + chunk_size] = ~not_negative.gather(1, nearest.unsqueeze(1)).squeeze(1)
        del dist, same, not_negative
    neg_index.masked_fill_(~has_negative, -1)
    return pos_index, neg_index, has_negative


def _check_group_size(mining_group_size):
    """None, or a positive int (not a bool); raises ValueError otherwise."""
    if mining_group_size is None:
        return None
    if isinstance(mining_group_size, bool) or not isinstance(mining_group_size, int) or mining_group_size < 1:
        raise ValueError(f"mining_group_size must be a positive int or None, not {mining_group_size!r}")
    return mining_group_size


def hard_triplet_loss(q, labels, margin, meta=None, alpha=1.0, reduction="sum", chunk_size=1024,
                      anchors=None, return_info=False, mining_group_size=None, world_size=1):
    """Batch-hard triplet loss with mining on p = [q ; alpha e] and the loss on q.

    With the cosine distance d(x, y) = 1 - x.y / (|x| |y|) and p_i = [q_i ; alpha e_i] (p_i = q_i
    when ``meta`` is None, i.e. LASR), for each anchor i with mining group g(i):

    .. math::

        k^+_i = \\arg\\max_{k \\in g(i): \\phi_k = \\phi_i} d(p_i, p_k), \\qquad
        k^-_i = \\arg\\min_{k \\in g(i): \\phi_k \\neq \\phi_i} d(p_i, p_k)

        t_i = [\\gamma + d(q_i, q_{k^+_i}) - d(q_i, q_{k^-_i})]_+, \\qquad
        L_g = \\sum_{i \\in g} t_i                                              (Eq. 2)

    The positives include the anchor itself (an anchor with a unique label has k+ = i, d = 0, and
    still pushes its nearest negative beyond the margin); an anchor without a negative in its
    group contributes t_i = 0; ties go to the lowest index. The choice of k+ / k- is not
    differentiated and ``meta`` carries no gradient: gradients flow through q only. Distances are
    computed in float32 (float64 for float64 input) whatever the dtype of q.

    **Without groups** (``mining_group_size=None``, the default) the group of every anchor is the
    whole batch q, and the loss is over the given anchors: ``"sum"`` is sum_i t_i, ``"mean"`` that
    sum divided by the number of those anchors that have a negative (0 if none). Under DDP each
    rank's loss is then over its own anchors: the ranks' ``"sum"`` losses add up to the loss of
    the global batch in one process, and ``world_size`` is not used.

    **With groups** (``mining_group_size=G``, the paper's reading of Eq. 2 with its batches of 16
    utterances): the B rows of q, in their order (under DDP the gathered order of
    :func:`gather_for_mining`: rank 0's rows, then rank 1's, ...), are split into consecutive
    disjoint groups, row k in group k // G: n_groups = ceil(B / G) groups, the last one partial
    (B mod G rows) when G does not divide B; groups may straddle two ranks. Positives and
    negatives are mined within the anchor's group only. The loss of the whole batch is

    - ``"sum"``: L = (1 / n_groups) sum_g L_g, the group sums of Eq. 2 averaged over the groups.
      Every group counts equally, the partial last one and groups without any negative (L_g = 0)
      included, so L is on the scale of the paper's sum over one batch of G whatever B is;
    - ``"mean"``: L = sum_i t_i / N, the mean over the N rows of the batch that have a negative
      in their group (0 if none): as without groups, with the mining restricted to groups.

    The value returned is this call's anchors' share of L times ``world_size``:
    ``world_size * sum_{i in anchors} t_i / D`` with D = n_groups (``"sum"``) or N (``"mean"``),
    D counted on the whole batch q, so with all rows as anchors and ``world_size=1`` it is L.
    Under DDP, where each rank passes the gathered batch, its own rows as ``anchors`` and the
    number of ranks as ``world_size``, the ranks' losses therefore average to L (what the trainer
    logs); the all-gather's backward hands each rank ``world_size`` times dL/dq on its own rows,
    and DDP's averaging of the parameter gradients over the ranks divides by ``world_size`` again:
    the DDP-averaged gradient is exactly that of L on the global batch in a single process.

    Arguments
    ---------
    q : torch.Tensor
        (B, d) projections q = W h (or h itself for LASR).
    labels : torch.LongTensor
        (B,) label ids phi of the stream.
    margin : float
        gamma, the triplet margin.
    meta : torch.Tensor or None
        (B, d_e) metadata encodings e, used for the mining only.
    alpha : float
        Weight of e in the mining space p.
    reduction : str
        ``"sum"`` or ``"mean"`` (see above).
    chunk_size : int
        Anchors mined at a time; peak extra memory is O(chunk_size x B).
    anchors : torch.LongTensor or None
        (A,) row indices of q acting as anchors (default: all rows). Under DDP, q is the gathered
        global batch and the anchors are this rank's rows (see :func:`gather_for_mining`).
    return_info : bool
        Also return the mining diagnostics.
    mining_group_size : int or None
        G, the size of the mining groups; None: the whole batch is one group (see above).
    world_size : int
        Number of DDP ranks whose gradients are averaged (1 in a single process); scales the
        grouped loss as above. Only used with ``mining_group_size``.

    Returns
    -------
    loss : torch.Tensor
        Scalar loss (float32, or float64 for float64 q).
    info : dict
        Only with ``return_info=True``; tensors of shape (A,) over the anchors:
        ``pos_index`` (k+), ``neg_index`` (k-, -1 where there is no negative), ``active``
        (bool, hinge > 0) and ``has_negative`` (bool), all within the anchors' groups.

    Example
    -------
    >>> q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [-1.0, 0.0]])
    >>> labels = torch.tensor([0, 1, 1, 2])
    >>> loss, info = hard_triplet_loss(q, labels, margin=0.2, return_info=True)
    >>> info["pos_index"].tolist(), info["neg_index"].tolist()
    ([0, 2, 1, 3], [2, 0, 0, 1])
    >>> round(loss.item(), 4), info["active"].tolist()  # anchor 3's nearest negative is beyond the margin
    (1.3911, [True, True, True, False])
    >>> meta = torch.tensor([[1.0], [-1.0], [-1.0], [1.0]])
    >>> hard_triplet_loss(q, labels, 0.2, meta=meta, alpha=2.0, return_info=True)[1]["neg_index"].tolist()
    [3, 0, 0, 0]
    >>> # groups of 3: rows {0, 1, 2} and the partial {3}, where row 3 has no negative
    >>> loss, info = hard_triplet_loss(q, labels, 0.2, mining_group_size=3, return_info=True)
    >>> info["neg_index"].tolist(), round(2 * loss.item(), 4)  # L = (L_0 + L_1) / 2, L_1 = 0
    ([2, 0, 0, -1], 1.3911)
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', not {reduction!r}")
    if q.dim() != 2:
        raise ValueError(f"q must be (B, d), got shape {tuple(q.shape)}")
    num = q.shape[0]
    labels = labels.reshape(-1)
    if labels.shape[0] != num:
        raise ValueError(f"labels has {labels.shape[0]} entries for {num} rows of q")
    if meta is not None and (meta.dim() != 2 or meta.shape[0] != num):
        raise ValueError(f"meta must be (B, d_e) with B = {num}, got shape {tuple(meta.shape)}")
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    group_size = _check_group_size(mining_group_size)
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive int, not {world_size!r}")
    device = q.device
    dtype = _compute_dtype(q.dtype)
    labels = labels.to(device)
    if anchors is None:
        anchors = torch.arange(num, device=device)
    else:
        anchors = torch.as_tensor(anchors, dtype=torch.long, device=device).reshape(-1)
    groups = None if group_size is None else torch.arange(num, device=device) // group_size

    with torch.no_grad():
        p = q.detach().to(dtype)
        if meta is not None:
            p = torch.cat([p, alpha * meta.detach().to(device=device, dtype=dtype)], dim=1)
        pos_index, neg_index, has_negative = _mine(p, labels, anchors, chunk_size, groups)
        del p

    # the loss on the A selected pairs only: O(A x d) in the autograd graph
    qn = F.normalize(q.to(dtype), dim=1, eps=_EPS)
    anchor_rows = qn[anchors]
    d_pos = 1.0 - (anchor_rows * qn[pos_index]).sum(dim=1)
    d_pos = torch.where(pos_index == anchors, torch.zeros_like(d_pos), d_pos)  # d(q_i, q_i) = 0 exactly
    d_neg = 1.0 - (anchor_rows * qn[neg_index.clamp(min=0)]).sum(dim=1)
    hinge = torch.relu(margin + d_pos - d_neg)
    hinge = torch.where(has_negative, hinge, torch.zeros_like(hinge))
    loss = hinge.sum()
    if group_size is None:
        if reduction == "mean":
            loss = loss / has_negative.sum().clamp(min=1).to(dtype)
    else:
        num_groups = -(-num // group_size)  # ceil(B / G), the partial last group included
        if reduction == "sum":
            loss = loss * (world_size / max(1, num_groups))
        else:
            loss = loss * world_size / _rows_with_negative(labels, groups, num_groups).clamp(min=1).to(dtype)
    if not return_info:
        return loss
    info = dict(pos_index=pos_index, neg_index=neg_index, active=(hinge.detach() > 0) & has_negative,
                has_negative=has_negative)
    return loss, info


def _rows_with_negative(labels, groups, num_groups):
    """Number of rows of the batch whose group holds another label (0-dim long tensor, no sync).

    Every row of a group has a negative in it iff the group holds two distinct labels, i.e. iff
    its smallest and largest labels differ.
    """
    if labels.numel() == 0:
        return torch.zeros((), dtype=torch.long, device=labels.device)
    low = labels.new_zeros(num_groups).scatter_reduce(0, groups, labels, "amin", include_self=False)
    high = labels.new_zeros(num_groups).scatter_reduce(0, groups, labels, "amax", include_self=False)
    return (low != high)[groups].sum()


def gather_for_mining(q, labels, meta=None):
    """The global batch for mining under ``torch.distributed``, and this rank's rows in it.

    q is all-gathered with autograd (``torch.distributed.nn.functional.all_gather``): the
    backward sums, over ranks, the gradients every rank's loss sends to a row, and returns them to
    the rank that owns the row; so after all ranks' backward, each rank's ``q.grad`` is the
    gradient of the global loss (the sum of the ranks' losses) with respect to its own rows. labels
    and meta are gathered without gradient. Ranks may hold different batch sizes: each pads to the
    largest one (all_gather needs equal shapes) and the padding is dropped after the gather. All
    ranks must call this (it is a collective), with ``meta`` None on all of them or on none.

    Arguments
    ---------
    q : torch.Tensor
        (B_r, d) this rank's projections.
    labels : torch.LongTensor
        (B_r,) this rank's labels.
    meta : torch.Tensor or None
        (B_r, d_e) this rank's metadata encodings.

    Returns
    -------
    q_all : torch.Tensor
        (sum_r B_r, d) rows of rank 0, then rank 1, ...
    labels_all : torch.LongTensor
        (sum_r B_r,)
    meta_all : torch.Tensor or None
        (sum_r B_r, d_e)
    anchors : torch.LongTensor
        Indices of this rank's rows in the gathered batch. Without an initialised process group
        the inputs are returned unchanged with ``arange(B_r)``.

    Example
    -------
    >>> q, labels = torch.randn(3, 4), torch.tensor([0, 1, 0])
    >>> q_all, labels_all, meta_all, anchors = gather_for_mining(q, labels)  # no process group
    >>> q_all is q, meta_all, anchors.tolist()
    (True, None, [0, 1, 2])
    """
    import torch.distributed as dist

    num = q.shape[0]
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return q, labels, meta, torch.arange(num, device=q.device)
    from torch.distributed.nn.functional import all_gather as autograd_all_gather

    world, rank = dist.get_world_size(), dist.get_rank()
    device = q.device
    size = torch.tensor([num], dtype=torch.long, device=device)
    sizes = [torch.empty_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    sizes = [int(s.item()) for s in sizes]
    largest = max(sizes)

    def pad(x):
        if x.shape[0] == largest:
            return x.contiguous()
        return torch.cat([x, x.new_zeros((largest - x.shape[0],) + tuple(x.shape[1:]))])

    def gather_no_grad(x):
        parts = [torch.empty_like(pad(x)) for _ in range(world)]
        dist.all_gather(parts, pad(x.detach()))
        return torch.cat([part[:n] for part, n in zip(parts, sizes)])

    q_parts = autograd_all_gather(pad(q))
    q_all = torch.cat([part[:n] for part, n in zip(q_parts, sizes)])
    labels_all = gather_no_grad(labels.to(device))
    meta_all = gather_no_grad(meta.to(device)) if meta is not None else None
    offset = sum(sizes[:rank])
    anchors = torch.arange(offset, offset + num, device=device)
    return q_all, labels_all, meta_all, anchors
