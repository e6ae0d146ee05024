"""masr.data.sampler: dynamic batching by padded frames with length buckets, DDP, resume."""

import itertools
import random

import numpy as np
import pytest
import torch

from masr.data.sampler import DynamicBucketBatchSampler, padding_fraction


def lognormal_lengths(n=2000, seed=0):
    """Utterance lengths like speech corpora have: lognormal, clipped to 100..1500 frames."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(mean=6.0, sigma=0.6, size=n), 100, 1500).astype(int).tolist()


LENGTHS = lognormal_lengths()
BUDGET = 20000


def make(**kwargs):
    args = dict(lengths=LENGTHS, max_batch_frames=BUDGET, num_buckets=10, seed=7)
    args.update(kwargs)
    return DynamicBucketBatchSampler(**args)


def random_batches(lengths, budget, seed=0):
    """Greedy batches under the same budget, in random order: what no bucketing gives."""
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    batches, batch, longest = [], [], 0
    for i in order:
        if batch and (len(batch) + 1) * max(longest, lengths[i]) > budget:
            batches.append(batch)
            batch, longest = [], 0
        batch.append(i)
        longest = max(longest, lengths[i])
    return batches + [batch]


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("max_batch_size", [None, 7])
def test_every_index_exactly_once_per_epoch(shuffle, max_batch_size):
    s = make(shuffle=shuffle, max_batch_size=max_batch_size)
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s)
        assert sorted(itertools.chain.from_iterable(batches)) == list(range(len(LENGTHS)))
        if max_batch_size:
            assert max(len(b) for b in batches) <= max_batch_size


def test_frame_budget_respected_and_oversized_utterances_alone():
    lengths = LENGTHS[:300] + [25000, 31000]
    with pytest.warns(UserWarning, match="2 utterance"):
        s = make(lengths=lengths)
    batches = list(s)
    for b in batches:
        padded = len(b) * max(lengths[i] for i in b)
        assert padded <= BUDGET or len(b) == 1
    assert [300] in batches and [301] in batches
    assert sorted(itertools.chain.from_iterable(batches)) == list(range(302))


def test_padding_is_small_with_buckets_and_far_below_random_batching():
    batches = list(make())
    bucketed = padding_fraction(batches, LENGTHS)
    shuffled = padding_fraction(random_batches(LENGTHS, BUDGET), LENGTHS)
    assert bucketed < 0.1
    assert shuffled > 0.3 and bucketed < shuffled / 5
    # the budget is used well: batches are not made needlessly small
    total_padded = sum(len(b) * max(LENGTHS[i] for i in b) for b in batches)
    assert total_padded / (len(batches) * BUDGET) > 0.85


def test_padding_fraction_definition():
    assert padding_fraction([[0, 1], [2]], [1, 3, 4]) == pytest.approx(0.2)
    assert padding_fraction([], [1]) == 0.0


def test_order_depends_on_epoch_and_seed_only():
    a, b = make(), make()
    b.set_epoch(0)
    state = random.getstate(), torch.random.get_rng_state(), np.random.get_state()
    random.seed(123); torch.manual_seed(123); np.random.seed(123)
    first = list(a)
    random.seed(999); torch.manual_seed(999); np.random.seed(999)
    assert list(b) == first  # same seed and epoch; global RNGs do not matter
    random.setstate(state[0]); torch.random.set_rng_state(state[1]); np.random.set_state(state[2])
    assert list(a) != first  # a moved on to epoch 1 by itself
    c = make(); c.set_epoch(1)
    assert list(c) != first
    assert list(make(seed=8)) != first and len(make(seed=8)) == len(a)


def test_unshuffled_batches_come_in_increasing_length_and_repeat():
    s = make(shuffle=False)
    e0 = list(s)
    assert list(s) == e0
    maxima = [max(LENGTHS[i] for i in b) for b in e0]
    assert maxima == sorted(maxima)


@pytest.mark.parametrize("world_size", [2, 3])
def test_ddp_ranks_get_disjoint_equal_shares_of_the_same_batch_list(world_size):
    budget = 22000  # 49 batches: a tail of one batch for 2 and 3 ranks
    full = make(max_batch_frames=budget).epoch_batches(0)
    per_rank = len(full) // world_size
    assert len(full) % world_size != 0  # so that there is a tail to drop
    samplers = [make(max_batch_frames=budget, rank=r, world_size=world_size) for r in range(world_size)]
    ranks = [list(s) for s in samplers]
    assert all(len(batches) == per_rank == len(s) for s, batches in zip(samplers, ranks))
    for r, batches in enumerate(ranks):
        assert batches == full[r: per_rank * world_size: world_size]
    seen = [i for batches in ranks for b in batches for i in b]
    assert len(seen) == len(set(seen))  # disjoint
    tail = {i for b in full[per_rank * world_size:] for i in b}
    assert set(seen) | tail == set(range(len(LENGTHS))) and not set(seen) & tail


def test_exact_resume_mid_epoch():
    full = list(make())
    s = make()
    head = list(itertools.islice(iter(s), 5))
    state = s.state_dict()
    assert state == {"epoch": 0, "batches_done": 5}
    resumed = make()
    resumed.load_state_dict(state)
    assert len(resumed) == len(full)  # __len__ is the full epoch, not what remains
    assert head + list(resumed) == full


def test_resume_mid_epoch_then_continue_into_next_epoch():
    reference = make()
    reference.set_epoch(2)
    epoch2, epoch3 = list(reference), list(reference)
    assert reference.state_dict() == {"epoch": 4, "batches_done": 0}
    s = make()
    s.set_epoch(2)
    it = iter(s)
    head = [next(it) for _ in range(5)]
    resumed = make()
    resumed.load_state_dict(s.state_dict())
    resumed.set_epoch(2)  # a trainer re-entering the epoch it resumes in keeps the position
    assert head + list(resumed) == epoch2
    assert resumed.state_dict() == {"epoch": 3, "batches_done": 0}
    resumed.set_epoch(3)  # the same as not calling it
    assert list(resumed) == epoch3


def test_resume_on_one_ddp_rank():
    full = list(make(rank=1, world_size=2))
    s = make(rank=1, world_size=2)
    it = iter(s)
    head = [next(it) for _ in range(3)]
    resumed = make(rank=1, world_size=2)
    resumed.load_state_dict(s.state_dict())
    assert head + list(resumed) == full


def test_resume_at_epoch_end_and_bad_state():
    s = make()
    n = len(s)
    batches = list(itertools.islice(iter(s), n))  # consumer stops without asking for more
    resumed = make()
    resumed.load_state_dict(s.state_dict())
    assert list(resumed) == [] and resumed.state_dict() == {"epoch": 1, "batches_done": 0}
    assert batches == list(make())
    with pytest.raises(ValueError, match="batches_done"):
        make().load_state_dict({"epoch": 0, "batches_done": n + 1})
    s.set_epoch(5)
    assert s.state_dict() == {"epoch": 5, "batches_done": 0}


def test_drop_last_drops_only_incomplete_bucket_tails():
    lengths = [100] * 25 + [300] * 25  # two buckets: 10 + 10 + 5 and 8 * 3 + 1 utterances
    s = DynamicBucketBatchSampler(lengths, max_batch_frames=1000, num_buckets=2, drop_last=True)
    batches = list(s)
    assert sorted(map(len, batches)) == [3] * 8 + [10, 10]  # 5 of 100 and 1 of 300 frames dropped
    assert all((len(b) + 1) * max(lengths[i] for i in b) > 1000 for b in batches)
    kept = list(DynamicBucketBatchSampler(lengths, max_batch_frames=1000, num_buckets=2))
    assert sorted(map(len, kept)) == [1] + [3] * 8 + [5, 10, 10]


def test_invalid_settings():
    with pytest.raises(ValueError):
        make(rank=2, world_size=2)
    with pytest.raises(ValueError):
        make(max_batch_frames=0)
    with pytest.raises(ValueError):
        make(lengths=[3, -1])
    assert list(DynamicBucketBatchSampler([], max_batch_frames=10)) == []


def test_weighted_sampling_draws_by_weight_and_is_reproducible():
    lengths = [10] * 40
    weights = [0.0] * 20 + [1.0] * 10 + [3.0] * 10  # items 0-19 never, 30-39 three times as often as 20-29
    s = DynamicBucketBatchSampler(lengths, max_batch_frames=50, num_buckets=2, seed=3, weights=weights)
    counts = [0] * 40
    for epoch in range(20):
        s.set_epoch(epoch)
        for batch in s:
            for i in batch:
                counts[i] += 1
    assert sum(counts) == 20 * 40  # an epoch is len(lengths) draws
    assert sum(counts[:20]) == 0
    ratio = sum(counts[30:]) / sum(counts[20:30])
    assert 2.5 < ratio < 3.6, ratio
    again = DynamicBucketBatchSampler(lengths, max_batch_frames=50, num_buckets=2, seed=3, weights=weights)
    assert again.epoch_batches(7) == s.epoch_batches(7)


def test_weighted_sampling_resumes_mid_epoch():
    lengths = list(range(5, 45))
    weights = [1.0 + (i % 3) for i in range(40)]
    full = list(DynamicBucketBatchSampler(lengths, 60, num_buckets=3, seed=1, weights=weights))
    s = DynamicBucketBatchSampler(lengths, 60, num_buckets=3, seed=1, weights=weights)
    it = iter(s)
    head = [next(it), next(it)]
    resumed = DynamicBucketBatchSampler(lengths, 60, num_buckets=3, seed=1, weights=weights)
    resumed.load_state_dict(s.state_dict())
    assert head + list(resumed) == full


@pytest.mark.parametrize("weights", [[1.0, 2.0], [0.0, 0.0, 0.0], [1.0, -1.0, 1.0]])
def test_bad_weights_are_refused(weights):
    with pytest.raises(ValueError, match="weights"):
        DynamicBucketBatchSampler([3, 4, 5], 20, weights=weights)
