"""masr.losses: batch-hard triplet loss against a brute-force reference; ties, gradients, chunks, DDP."""

import os

import pytest
import torch
import torch.multiprocessing as mp

from masr.losses import gather_for_mining, hard_triplet_loss
from masr.train import distributed
from tests.helpers.ddp import free_port


# ---------------------------------------------------------------- reference (straight from the equations)

def _d(x, y):
    return 1.0 - float(torch.dot(x, y) / (x.norm() * y.norm()))


def reference(q, labels, margin, meta=None, alpha=1.0):
    """Per-anchor terms, k+ and k- (-1: no negative), with Python loops, in float64."""
    q = q.detach().double()
    p = q if meta is None else torch.cat([q, alpha * meta.detach().double()], dim=1)
    labels = labels.tolist()
    terms, pos, neg = [], [], []
    for i in range(len(labels)):
        k_pos, best = None, None
        for k in range(len(labels)):  # ascending k with a strict comparison: ties -> lowest index
            if labels[k] == labels[i]:
                dk = _d(p[i], p[k])
                if best is None or dk > best:
                    k_pos, best = k, dk
        k_neg, best = -1, None
        for k in range(len(labels)):
            if labels[k] != labels[i]:
                dk = _d(p[i], p[k])
                if best is None or dk < best:
                    k_neg, best = k, dk
        term = 0.0 if k_neg < 0 else max(0.0, margin + _d(q[i], q[k_pos]) - _d(q[i], q[k_neg]))
        terms.append(term)
        pos.append(k_pos)
        neg.append(k_neg)
    return terms, pos, neg


def _labels(pattern, num, gen):
    if pattern == "equal":
        return torch.zeros(num, dtype=torch.long)
    if pattern == "distinct":
        return torch.randperm(num, generator=gen)
    return torch.randint(0, max(1, num // 3), (num,), generator=gen)  # random, with repeats


# ---------------------------------------------------------------- values and indices vs the reference

@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("alpha", [None, 0.5, 2.0])
@pytest.mark.parametrize("pattern", ["equal", "distinct", "random"])
@pytest.mark.parametrize("num", [1, 2, 7, 64])
def test_matches_reference(num, pattern, alpha, reduction):
    gen = torch.Generator().manual_seed(1000 * num + len(pattern))
    q = torch.randn(num, 16, generator=gen, dtype=torch.float64)
    labels = _labels(pattern, num, gen)
    meta = None if alpha is None else torch.randn(num, 5, generator=gen, dtype=torch.float64)
    margin = 0.3
    loss, info = hard_triplet_loss(q, labels, margin, meta=meta, alpha=alpha or 1.0, reduction=reduction,
                                   return_info=True)
    terms, pos, neg = reference(q, labels, margin, meta, alpha or 1.0)
    with_neg = sum(k >= 0 for k in neg)
    expected = sum(terms) if reduction == "sum" else (sum(terms) / with_neg if with_neg else 0.0)
    assert loss.shape == () and loss.dtype == torch.float64
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert info["pos_index"].tolist() == pos
    assert info["neg_index"].tolist() == neg
    assert info["has_negative"].tolist() == [k >= 0 for k in neg]
    assert info["active"].tolist() == [t > 0 for t in terms]
    if pattern == "distinct":
        assert pos == list(range(num))  # the anchors are their own positives


def test_float32_and_bfloat16_inputs():
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(64, 32, generator=gen)
    labels = torch.randint(0, 8, (64,), generator=gen)
    meta = torch.randn(64, 7, generator=gen)
    terms, pos, neg = reference(q, labels, 0.2, meta, 0.5)
    loss, info = hard_triplet_loss(q, labels, 0.2, meta=meta, alpha=0.5, return_info=True)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(sum(terms), abs=1e-5)
    assert info["pos_index"].tolist() == pos and info["neg_index"].tolist() == neg
    qb = q.bfloat16().requires_grad_()
    loss_b = hard_triplet_loss(qb, labels, 0.2, meta=meta.bfloat16(), alpha=0.5)
    assert loss_b.dtype == torch.float32  # distances in float32
    assert loss_b.item() == pytest.approx(sum(reference(qb.float(), labels, 0.2, meta.bfloat16().float(), 0.5)[0]),
                                          abs=1e-4)
    loss_b.backward()
    assert qb.grad.dtype == torch.bfloat16 and qb.grad.abs().sum() > 0


# ---------------------------------------------------------------- edge cases and ties

def test_edge_cases():
    q = torch.randn(1, 4, requires_grad=True)
    loss, info = hard_triplet_loss(q, torch.tensor([3]), 0.5, return_info=True)
    assert loss.item() == 0.0 and info["neg_index"].tolist() == [-1] and info["pos_index"].tolist() == [0]
    loss.backward()  # still connected to q (a DDP rank must take part in the backward)
    assert torch.equal(q.grad, torch.zeros_like(q))
    q = torch.randn(6, 4)
    for reduction in ("sum", "mean"):
        loss, info = hard_triplet_loss(q, torch.full((6,), 2), 0.5, reduction=reduction, return_info=True)
        assert loss.item() == 0.0
        assert not info["has_negative"].any() and not info["active"].any()
        assert info["neg_index"].tolist() == [-1] * 6
    loss, info = hard_triplet_loss(q, torch.arange(6), 0.5, return_info=True)
    assert info["pos_index"].tolist() == list(range(6))
    # all distinct: L = sum_i [margin - min_k d(q_i, q_k)]_+
    expected = sum(max(0.0, 0.5 - min(_d(q[i], q[k]) for k in range(6) if k != i)) for i in range(6))
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    empty = hard_triplet_loss(q, torch.arange(6), 0.5, anchors=torch.empty(0, dtype=torch.long))
    assert empty.item() == 0.0
    with pytest.raises(ValueError):
        hard_triplet_loss(q, torch.arange(6), 0.5, reduction="max")


def test_ties_go_to_the_lowest_index():
    a, b, c = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.6, 0.8, 0.0])
    # rows: 0 anchor a (label 0); 1, 2, 3 identical negatives b; 4, 5 identical positives c; 6 = copy of 0
    q = torch.stack([a, b, b, b, c, c, a, -a])
    labels = torch.tensor([0, 1, 1, 1, 0, 0, 0, 2])
    for chunk_size in (1, 3, 1024):
        _, info = hard_triplet_loss(q, labels, 0.2, chunk_size=chunk_size, return_info=True)
        pos, neg = info["pos_index"].tolist(), info["neg_index"].tolist()
        assert pos[0] == 4 and neg[0] == 1  # tie between 4 / 5 and between 1 / 2 / 3
        assert pos[6] == 4 and neg[6] == 1
        assert pos[1] == 1 and pos[2] == 1 and pos[3] == 1  # identical positives at d = 0, anchor included
        assert pos[4] == 0 and pos[5] == 0  # rows 0 and 6 are equally far
        assert neg[7] == 1  # d(-a, b) = 1 < d(-a, c) = 1.6 < d(-a, a) = 2
        _, ref_pos, ref_neg = reference(q, labels, 0.2)
        assert pos == ref_pos and neg == ref_neg
    # ties in the mining space p = [q ; alpha e]
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    meta = torch.tensor([[0.0], [1.0], [1.0]])
    _, info = hard_triplet_loss(q, torch.tensor([0, 1, 2]), 0.2, meta=meta, alpha=2.0, return_info=True)
    assert info["neg_index"].tolist() == [1, 2, 1]


# ---------------------------------------------------------------- gradients

def _separated_batch(seed=0, num=8, dim=5, d_e=3):
    """A float64 batch whose mining is stable under gradcheck's perturbations and off the hinge kink."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 3][:num])
    for _ in range(100):
        q = torch.randn(num, dim, generator=gen, dtype=torch.float64)
        meta = torch.randn(num, d_e, generator=gen, dtype=torch.float64)
        p = torch.cat([q, 0.7 * meta], 1)
        pn = torch.nn.functional.normalize(p, dim=1)
        dist = 1 - pn @ pn.t()
        same = labels[:, None] == labels[None, :]
        ok = True
        for i in range(num):
            for mask, pick in ((same, max), (~same, min)):
                vals = sorted(dist[i][mask[i]].tolist())
                ok &= len(vals) < 2 or (vals[-1] - vals[-2] > 1e-2 if pick is max else vals[1] - vals[0] > 1e-2)
        _, pos, neg = reference(q, labels, 0.4, meta, 0.7)
        raw = [0.4 + _d(q[i], q[pos[i]]) - _d(q[i], q[neg[i]]) for i in range(num)]  # before the hinge
        if ok and all(abs(r) > 1e-2 for r in raw) and sum(r > 0 for r in raw) >= 3:
            return q, labels, meta
    raise AssertionError("no well-separated batch found")


def test_gradcheck_and_no_gradient_to_meta():
    q, labels, meta = _separated_batch()
    for reduction in ("sum", "mean"):
        assert torch.autograd.gradcheck(
            lambda x: hard_triplet_loss(x, labels, 0.4, meta=meta, alpha=0.7, reduction=reduction, chunk_size=3),
            (q.clone().requires_grad_(),), eps=1e-6, atol=1e-7)
    q = q.clone().requires_grad_()
    meta = meta.clone().requires_grad_()
    loss = hard_triplet_loss(q, labels, 0.4, meta=meta, alpha=0.7)
    loss.backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert meta.grad is None or torch.equal(meta.grad, torch.zeros_like(meta))


def test_chunked_equals_unchunked():
    gen = torch.Generator().manual_seed(5)
    q0 = torch.randn(64, 24, generator=gen)
    labels = torch.randint(0, 6, (64,), generator=gen)
    meta = torch.randn(64, 7, generator=gen)
    anchors = torch.tensor([60, 2, 33, 7, 8, 19, 41])
    for kwargs in ({}, {"anchors": anchors}):
        out = []
        for chunk_size in (3, 1024):
            q = q0.clone().requires_grad_()
            loss, info = hard_triplet_loss(q, labels, 0.3, meta=meta, alpha=2.0, chunk_size=chunk_size,
                                           return_info=True, **kwargs)
            loss.backward()
            out.append((loss, info, q.grad))
        (l1, i1, g1), (l2, i2, g2) = out
        assert torch.equal(l1, l2) and torch.equal(g1, g2)
        for key in i1:
            assert torch.equal(i1[key], i2[key]), key


def test_anchor_subset_is_the_sum_of_its_terms():
    gen = torch.Generator().manual_seed(7)
    q = torch.randn(20, 8, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 4, (20,), generator=gen)
    meta = torch.randn(20, 3, generator=gen, dtype=torch.float64)
    terms, _, _ = reference(q, labels, 0.5, meta, 0.5)
    _, full = hard_triplet_loss(q, labels, 0.5, meta=meta, alpha=0.5, return_info=True)
    subset = torch.tensor([3, 17, 0, 11, 12])
    loss, info = hard_triplet_loss(q, labels, 0.5, meta=meta, alpha=0.5, anchors=subset, return_info=True)
    assert loss.item() == pytest.approx(sum(terms[i] for i in subset.tolist()), abs=1e-9)
    single = sum(hard_triplet_loss(q, labels, 0.5, meta=meta, alpha=0.5, anchors=torch.tensor([i])).item()
                 for i in subset.tolist())
    assert loss.item() == pytest.approx(single, abs=1e-9)
    for key in info:
        assert torch.equal(info[key], full[key][subset]), key
    mean = hard_triplet_loss(q, labels, 0.5, meta=meta, alpha=0.5, anchors=subset, reduction="mean")
    assert mean.item() == pytest.approx(loss.item() / info["has_negative"].sum().item(), abs=1e-9)


# ---------------------------------------------------------------- DDP (2 gloo processes, unequal batches)

SIZES = (5, 7)
GROUPED = ((4, "sum"), (5, "mean"))  # G = 4: a group straddles the ranks; G = 5: a partial last group


def _theta():
    """A linear map shared by the ranks: q = x theta, whose DDP-averaged gradient is checked."""
    return torch.randn(6, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def _ddp_worker(rank, world, port, q_global, labels_global, meta_global, out_dir):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        start = sum(SIZES[:rank])
        rows = slice(start, start + SIZES[rank])
        q = q_global[rows].clone().requires_grad_()
        q_all, labels_all, meta_all, anchors = gather_for_mining(q, labels_global[rows], meta_global[rows])
        loss, info = hard_triplet_loss(q_all, labels_all, 0.4, meta=meta_all, alpha=0.5, chunk_size=2,
                                       anchors=anchors, return_info=True)
        loss.backward()
        # and without metadata (LASR), the same gather with meta=None
        h = q_global[rows].clone().requires_grad_()
        h_all, _, none, anchors_h = gather_for_mining(h, labels_global[rows])
        loss_h = hard_triplet_loss(h_all, labels_all, 0.4, anchors=anchors_h)
        loss_h.backward()
        # mining within groups of the gathered batch, scaled by the world size; DDP averages the
        # parameter gradients over the ranks (done here by hand)
        grouped = {}
        for group_size, reduction in GROUPED:
            theta = _theta().requires_grad_()
            z_all, z_labels, z_meta, z_anchors = gather_for_mining(q_global[rows] @ theta, labels_global[rows],
                                                                   meta_global[rows])
            loss_g, info_g = hard_triplet_loss(z_all, z_labels, 0.4, meta=z_meta, alpha=0.5, reduction=reduction,
                                               anchors=z_anchors, return_info=True, mining_group_size=group_size,
                                               world_size=world)
            loss_g.backward()
            grad = theta.grad.clone()
            dist.all_reduce(grad)
            grouped[group_size] = dict(loss=loss_g.detach(), grad=grad / world, info=info_g)
        torch.save(dict(loss=loss.detach(), grad=q.grad, q_all=q_all.detach(), labels_all=labels_all,
                        meta_all=meta_all, anchors=anchors, info=info, meta_none=none is None,
                        loss_h=loss_h.detach(), grad_h=h.grad, grouped=grouped), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        distributed.cleanup()  # barrier, then destroy: no rank tears down mid-transfer


def test_ddp_gather_matches_single_process(tmp_path):
    gen = torch.Generator().manual_seed(11)
    total = sum(SIZES)
    q_global = torch.randn(total, 6, generator=gen, dtype=torch.float64)
    labels_global = torch.randint(0, 3, (total,), generator=gen)
    meta_global = torch.randn(total, 4, generator=gen, dtype=torch.float64)
    mp.spawn(_ddp_worker, args=(2, free_port(), q_global, labels_global, meta_global, str(tmp_path)),
             nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]

    q = q_global.clone().requires_grad_()
    loss, info = hard_triplet_loss(q, labels_global, 0.4, meta=meta_global, alpha=0.5, return_info=True)
    loss.backward()
    h = q_global.clone().requires_grad_()
    loss_h = hard_triplet_loss(h, labels_global, 0.4)
    loss_h.backward()
    assert loss.item() > 0 and loss_h.item() > 0

    start = 0
    for rank, out in enumerate(ranks):
        rows = slice(start, start + SIZES[rank])
        assert torch.equal(out["q_all"], q_global)  # padding dropped, rank order kept
        assert torch.equal(out["labels_all"], labels_global) and torch.equal(out["meta_all"], meta_global)
        assert out["anchors"].tolist() == list(range(start, start + SIZES[rank]))
        assert out["meta_none"]
        for key in info:
            assert torch.equal(out["info"][key], info[key][rows]), key
        # each rank's grad = the gradient of the global loss (sum over ranks) restricted to its rows
        torch.testing.assert_close(out["grad"], q.grad[rows], atol=1e-12, rtol=0)
        torch.testing.assert_close(out["grad_h"], h.grad[rows], atol=1e-12, rtol=0)
        start += SIZES[rank]
    assert sum(out["loss"].item() for out in ranks) == pytest.approx(loss.item(), abs=1e-12)
    assert sum(out["loss_h"].item() for out in ranks) == pytest.approx(loss_h.item(), abs=1e-12)
    # gradient really crosses ranks: some rank-0 anchor picks a rank-1 row, or the reverse
    assert any((i < 5) != (k < 5) for i, k in enumerate(info["neg_index"].tolist()))
    # grouped: the ranks' losses average to the single-process loss, the DDP-averaged gradient is its gradient
    for group_size, reduction in GROUPED:
        theta = _theta().requires_grad_()
        loss_g, info_g = hard_triplet_loss(q_global @ theta, labels_global, 0.4, meta=meta_global, alpha=0.5,
                                           reduction=reduction, return_info=True, mining_group_size=group_size)
        loss_g.backward()
        assert loss_g.item() > 0
        outs = [out["grouped"][group_size] for out in ranks]
        assert sum(o["loss"].item() for o in outs) / 2 == pytest.approx(loss_g.item(), abs=1e-12)
        start = 0
        for rank, o in enumerate(outs):
            torch.testing.assert_close(o["grad"], theta.grad, atol=1e-12, rtol=0)
            for key in info_g:
                assert torch.equal(o["info"][key], info_g[key][start:start + SIZES[rank]]), key
            start += SIZES[rank]
