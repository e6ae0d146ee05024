"""masr.losses ``mining_group_size``: the paper's Eq. 2 within groups of G utterances, against a brute force.

The reference loops over groups, anchors and candidates (strict comparisons in ascending order:
ties go to the lowest index) in float64; the loss of the batch is the group sums averaged over
the groups (``"sum"``) or the mean over the rows that have a negative (``"mean"``).
"""

from pathlib import Path

import pytest
import torch
import yaml

from masr.losses import hard_triplet_loss
from masr.model import MetadataStream

ROOT = Path(__file__).resolve().parents[1]


def _d(x, y):
    return 1.0 - float(torch.dot(x, y) / (x.norm() * y.norm()))


def grouped_reference(q, labels, margin, group_size, meta=None, alpha=1.0, reduction="sum"):
    """Eq. 2 per group with Python loops: (loss, per-row terms, k+, k- (-1: no negative))."""
    q = q.detach().double()
    p = q if meta is None else torch.cat([q, alpha * meta.detach().double()], dim=1)
    labels = labels.tolist()
    num = len(labels)
    terms, pos, neg, group_sums = [0.0] * num, [None] * num, [None] * num, []
    for start in range(0, num, group_size):  # the groups, in order; the last may be partial
        rows = range(start, min(num, start + group_size))
        group_sum = 0.0
        for i in rows:  # the anchors of the group
            k_pos, best = None, None
            for k in rows:  # candidates: the group only
                if labels[k] == labels[i] and (best is None or _d(p[i], p[k]) > best):
                    k_pos, best = k, _d(p[i], p[k])
            k_neg, best = -1, None
            for k in rows:
                if labels[k] != labels[i] and (best is None or _d(p[i], p[k]) < best):
                    k_neg, best = k, _d(p[i], p[k])
            term = 0.0 if k_neg < 0 else max(0.0, margin + _d(q[i], q[k_pos]) - _d(q[i], q[k_neg]))
            terms[i], pos[i], neg[i] = term, k_pos, k_neg
            group_sum += term
        group_sums.append(group_sum)
    if reduction == "sum":
        loss = sum(group_sums) / max(1, len(group_sums))  # every group counts equally
    else:
        with_neg = sum(k >= 0 for k in neg)
        loss = sum(terms) / with_neg if with_neg else 0.0
    return loss, terms, pos, neg


# uneven label composition: a one-label group, a three-label group, a partial group of two labels
UNEVEN = [0, 0, 0, 0, 1, 2, 1, 0, 3, 3, 1]


def _batch(labels, seed, dim=6, d_e=3):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.as_tensor(labels)
    num = labels.shape[0]
    return (torch.randn(num, dim, generator=gen, dtype=torch.float64), labels,
            torch.randn(num, d_e, generator=gen, dtype=torch.float64))


def _random_labels(num, seed):
    return torch.randint(0, 3, (num,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("alpha", [None, 0.7])  # LASR (no meta) and MASR mining
@pytest.mark.parametrize("labels, group_size", [
    (UNEVEN, 4),                   # uneven groups, the last one partial (11 = 2 x 4 + 3)
    (UNEVEN, 5),                   # partial last group of one row: no negative there
    (_random_labels(23, 1), 4),    # 23 = 5 x 4 + 3
    (_random_labels(16, 2), 16),   # G = B
    (_random_labels(16, 3), 40),   # G > B
    (_random_labels(9, 4), 1),     # G = 1
    (_random_labels(32, 5), 16),   # the paper's groups, two full ones
])
def test_matches_brute_force(labels, group_size, alpha, reduction):
    q, labels, meta = _batch(labels, seed=len(labels) + group_size)
    meta = None if alpha is None else meta
    for chunk_size in (3, 1024):
        loss, info = hard_triplet_loss(q, labels, 0.4, meta=meta, alpha=alpha or 1.0, reduction=reduction,
                                       chunk_size=chunk_size, mining_group_size=group_size, return_info=True)
        expected, terms, pos, neg = grouped_reference(q, labels, 0.4, group_size, meta, alpha or 1.0, reduction)
        assert loss.shape == () and loss.dtype == torch.float64
        assert loss.item() == pytest.approx(expected, abs=1e-9)
        assert info["pos_index"].tolist() == pos
        assert info["neg_index"].tolist() == neg
        assert info["has_negative"].tolist() == [k >= 0 for k in neg]
        assert info["active"].tolist() == [t > 0 for t in terms]
        size = group_size  # mined within the anchor's group
        assert all(k // size == i // size for i, k in enumerate(pos))
        assert all(k < 0 or k // size == i // size for i, k in enumerate(neg))


def test_uneven_groups_by_hand():
    q, labels, meta = _batch(UNEVEN, seed=0)
    _, info = hard_triplet_loss(q, labels, 0.4, mining_group_size=4, return_info=True)
    # group 0 (rows 0-3) has one label: no negatives; groups 1 and 2 have
    assert info["has_negative"].tolist() == [False] * 4 + [True] * 7
    assert info["neg_index"].tolist()[:4] == [-1] * 4
    _, terms, _, _ = grouped_reference(q, labels, 0.4, 4)
    loss_sum = hard_triplet_loss(q, labels, 0.4, mining_group_size=4)
    loss_mean = hard_triplet_loss(q, labels, 0.4, mining_group_size=4, reduction="mean")
    assert sum(terms) > 0
    assert loss_sum.item() == pytest.approx(sum(terms) / 3, abs=1e-12)  # 3 groups, the empty and partial ones too
    assert loss_mean.item() == pytest.approx(sum(terms) / 7, abs=1e-12)  # 7 rows with a negative


def test_group_as_large_as_the_batch_is_ungrouped():
    for num, group_size in ((16, 16), (16, 17), (7, 1000)):
        q, labels, meta = _batch(_random_labels(num, num), seed=num)
        for reduction in ("sum", "mean"):
            for kwargs in ({}, {"meta": meta, "alpha": 0.5}):
                ungrouped = hard_triplet_loss(q, labels, 0.3, reduction=reduction, return_info=True, **kwargs)
                grouped = hard_triplet_loss(q, labels, 0.3, reduction=reduction, return_info=True,
                                            mining_group_size=group_size, **kwargs)
                assert grouped[0].item() == pytest.approx(ungrouped[0].item(), abs=1e-12)
                for key in ungrouped[1]:
                    assert torch.equal(grouped[1][key], ungrouped[1][key]), key


def test_group_of_one_has_no_negatives():
    q = torch.randn(9, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    labels = torch.arange(9) % 3
    for reduction in ("sum", "mean"):
        loss, info = hard_triplet_loss(q, labels, 0.5, reduction=reduction, mining_group_size=1, return_info=True)
        assert loss.item() == 0.0
        assert info["pos_index"].tolist() == list(range(9)) and info["neg_index"].tolist() == [-1] * 9
        assert not info["has_negative"].any() and not info["active"].any()
        loss.backward()  # still connected to q
        assert torch.equal(q.grad, torch.zeros_like(q))
    empty = hard_triplet_loss(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), 0.5, mining_group_size=4)
    assert empty.item() == 0.0
    empty = hard_triplet_loss(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), 0.5, mining_group_size=4,
                              reduction="mean")
    assert empty.item() == 0.0


def test_ties_go_to_the_lowest_index_within_the_group():
    a, b, c = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.6, 0.8, 0.0])
    # groups of 4: [a b b c | c a b b | a c]; rows 1 / 2 and 6 / 7 are tied negatives, rows 3 / 4 / 9
    # tied positives of a: ungrouped, rows 4 and 5 would pick row 1 and row 5 row 3
    q = torch.stack([a, b, b, c, c, a, b, b, a, c])
    labels = torch.tensor([0, 1, 1, 0, 0, 0, 1, 1, 0, 0])
    for chunk_size in (1, 3, 1024):
        _, info = hard_triplet_loss(q, labels, 0.2, mining_group_size=4, chunk_size=chunk_size, return_info=True)
        pos, neg = info["pos_index"].tolist(), info["neg_index"].tolist()
        assert neg[0] == 1 and neg[3] == 1  # tie between rows 1 and 2
        assert neg[4] == 6 and neg[5] == 6  # tie between rows 6 and 7, not row 1 of the group before
        assert pos[1] == 1 and pos[6] == 6  # identical positives at d = 0: the lowest index
        assert pos[0] == 3 and pos[5] == 4 and pos[8] == 9
        assert neg[8] == -1 and neg[9] == -1  # the partial group holds one label
        _, _, ref_pos, ref_neg = grouped_reference(q, labels, 0.2, 4)
        assert pos == ref_pos and neg == ref_neg


def test_ddp_shares_combine_to_the_single_process_loss_and_gradient():
    """Two simulated ranks (5 and 7 rows) on the gathered batch: the ranks' losses average to L,
    and the sum of their parameter gradients (the all-gather backward) over 2 (DDP's average) is
    the single-process gradient of L; groups straddle the ranks (G = 3, 4) or end partially (G = 5)."""
    sizes = (5, 7)
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(12, 6, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (12,), generator=gen)
    meta = torch.randn(12, 4, generator=gen, dtype=torch.float64)
    theta0 = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    starts = (0, sizes[0])
    for group_size in (3, 4, 5):
        for reduction in ("sum", "mean"):
            for kwargs in ({}, {"meta": meta, "alpha": 0.5}):
                theta = theta0.clone().requires_grad_()
                loss, info = hard_triplet_loss(x @ theta, labels, 0.4, reduction=reduction, return_info=True,
                                               mining_group_size=group_size, **kwargs)
                loss.backward()
                single = theta.grad.clone()
                theta = theta0.clone().requires_grad_()
                q_all = x @ theta  # what gather_for_mining returns on every rank
                rank_losses = []
                for start, size in zip(starts, sizes):
                    anchors = torch.arange(start, start + size)
                    loss_r, info_r = hard_triplet_loss(q_all, labels, 0.4, reduction=reduction, anchors=anchors,
                                                       return_info=True, mining_group_size=group_size,
                                                       world_size=2, **kwargs)
                    rank_losses.append(loss_r)
                    for key in info:
                        assert torch.equal(info_r[key], info[key][start:start + size]), key
                sum(rank_losses).backward()
                assert sum(r.item() for r in rank_losses) / 2 == pytest.approx(loss.item(), abs=1e-12)
                torch.testing.assert_close(theta.grad / 2, single, atol=1e-12, rtol=0)
                assert loss.item() > 0


def test_invalid_group_sizes():
    q, labels = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    for bad in (0, -2, 2.5, 16.0, True, "16"):
        with pytest.raises(ValueError, match="mining_group_size"):
            hard_triplet_loss(q, labels, 0.2, mining_group_size=bad)
        with pytest.raises(ValueError, match="stream 'lang'.*mining_group_size"):
            MetadataStream("lang", {"kind": "onehot"}, input_dim=3, mining_group_size=bad)
    with pytest.raises(ValueError, match="world_size"):
        hard_triplet_loss(q, labels, 0.2, mining_group_size=2, world_size=0)
    with pytest.raises(ValueError, match="stream 'geo': reduction"):
        MetadataStream("geo", {"kind": "onehot"}, input_dim=3, reduction="max")
    assert MetadataStream("lang", {"kind": "onehot"}, input_dim=3, mining_group_size=16).mining_group_size == 16
    assert MetadataStream("lang", {"kind": "onehot"}, input_dim=3).mining_group_size is None


# ---------------------------------------------------------------- egs/mix configs: the paper's reading

class _TagIgnoringLoader(yaml.SafeLoader):
    """Reads hyperpyyaml files as plain data (``!new:``, ``!ref`` ... give their node's value)."""


def _construct_tagged(loader, suffix, node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_TagIgnoringLoader.add_multi_constructor("!", _construct_tagged)


@pytest.mark.parametrize("name", ["continue_lasr", "continue_masr", "continue_geomasr", "continue_textmasr"])
def test_mix_continuations_use_groups_of_16_and_group_sums(name):
    text = (ROOT / "egs" / "mix" / "conf" / f"{name}.yaml").read_text()
    config = yaml.load(text, Loader=_TagIgnoringLoader)
    streams = {s["name"]: s for s in config["model"]["streams"]}
    assert streams["lang"]["weight"] == 16.0
    for stream in streams.values():
        assert stream["mining_group_size"] == 16, (name, stream["name"])
        assert stream["reduction"] == "sum", (name, stream["name"])
        MetadataStream(stream["name"], {"kind": "onehot"}, input_dim=4, reduction=stream["reduction"],
                       mining_group_size=stream["mining_group_size"])  # valid
