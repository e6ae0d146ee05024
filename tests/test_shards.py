"""masr.data.shards: the shard index and the sampler that gives each DDP rank its own shards."""

import collections

import pytest

from masr.data.datadir import DataDirError, read_kaldi_map
from masr.data.dataset import FeatsDataset
from masr.data.shards import ShardedBatchSampler, make_shards, read_shard_index, shard_of_items
from tests.helpers.dumps import make_dump_dir


def sampler(shard_of, lengths, rank=0, world=1, **kw):
    return ShardedBatchSampler(shard_of, lengths, max_batch_frames=300, num_buckets=3, seed=3, rank=rank,
                               world_size=world, **kw)


def toy(num_shards=7, per_shard=10):
    shard_of = [k for k in range(num_shards) for _ in range(per_shard)]
    lengths = [40 + (17 * i) % 80 for i in range(len(shard_of))]
    return shard_of, lengths


def test_make_shards_is_a_seeded_partition():
    utts = [f"u{i:02d}" for i in range(25)]
    shards = make_shards(utts, 10, seed=1)
    assert [len(s) for s in shards] == [10, 10, 5]
    assert sorted(u for s in shards for u in s) == utts
    assert make_shards(utts, 10, seed=1) == shards and make_shards(utts, 10, seed=2) != shards
    assert shards[0] != utts[:10]   # drawn from the whole set, not consecutive ids
    with pytest.raises(ValueError, match="shard_utts"):
        make_shards(utts, 0)


@pytest.mark.parametrize("world,buffer", [(1, 1), (2, 1), (3, 1), (2, 2), (3, 4)])
def test_ranks_read_disjoint_shards_and_run_the_same_number_of_batches(world, buffer):
    shard_of, lengths = toy()
    for epoch in range(3):
        ranks = [sampler(shard_of, lengths, r, world, shard_buffer=buffer) for r in range(world)]
        for s in ranks:
            s.set_epoch(epoch)
        batches = [list(s) for s in ranks]
        assert len({len(b) for b in batches}) == 1 and len(batches[0]) > 0
        shards = [{shard_of[i] for batch in b for i in batch} for b in batches]
        for r in range(world):
            for q in range(r + 1, world):
                assert not shards[r] & shards[q], (epoch, r, q)
        for r, b in enumerate(batches):
            groups = ranks[r].shards_of_rank(epoch, r)
            groups = [set(groups[k:k + buffer]) for k in range(0, len(groups), buffer)]
            for batch in b:
                # a batch never spans two groups of shard_buffer shards
                assert any({shard_of[i] for i in batch} <= group for group in groups)
                assert len(batch) * max(lengths[i] for i in batch) <= 300
        # 7 shards: each rank gets 7 // world of them; 7 % world left out of this epoch
        assert sum(len(s) for s in shards) == (7 // world) * world


def test_one_rank_sees_every_item_once_per_epoch_and_batches_change_between_epochs():
    shard_of, lengths = toy()
    s = sampler(shard_of, lengths)
    first, second = list(s), list(s)
    assert sorted(i for b in first for i in b) == list(range(len(lengths)))
    assert sorted(i for b in second for i in b) == list(range(len(lengths)))
    assert first != second


def test_a_larger_shard_buffer_leaves_fewer_part_filled_batches():
    shard_of, lengths = toy(num_shards=8, per_shard=12)
    counts = [len(sampler(shard_of, lengths, shard_buffer=b)) for b in (1, 4, 8)]
    assert counts[0] > counts[1] > counts[2]
    assert all(sum(len(batch) for batch in sampler(shard_of, lengths, shard_buffer=b)) == len(lengths)
               for b in (1, 4, 8))


def test_shard_assignment_changes_between_epochs():
    shard_of, lengths = toy(num_shards=8)
    s = sampler(shard_of, lengths, rank=0, world=2)
    assignments = {tuple(sorted(s.shards_of_rank(epoch, 0))) for epoch in range(6)}
    assert len(assignments) > 1


def test_resume_mid_epoch_continues_exactly():
    shard_of, lengths = toy()
    full = sampler(shard_of, lengths, rank=1, world=2)
    expected = list(full) + list(full)
    s = sampler(shard_of, lengths, rank=1, world=2)
    it = iter(s)
    head = [next(it) for _ in range(3)]
    state = s.state_dict()
    resumed = sampler(shard_of, lengths, rank=1, world=2)
    resumed.load_state_dict(state)
    assert head + list(resumed) + list(resumed) == expected


def test_weights_draw_within_each_shard():
    shard_of, lengths = toy(num_shards=4)
    weights = [0.0 if i % 2 else 1.0 for i in range(len(lengths))]
    s = sampler(shard_of, lengths, weights=weights)
    drawn = [i for b in s for i in b]
    assert len(drawn) == len(lengths) and all(i % 2 == 0 for i in drawn)
    assert collections.Counter(shard_of[i] for i in drawn) == collections.Counter(shard_of)


def test_more_ranks_than_shards_is_an_error():
    shard_of, lengths = toy(num_shards=2)
    with pytest.raises(ValueError, match="2 shard.*3 ranks.*--shard-utts"):
        sampler(shard_of, lengths, rank=0, world=3)


def test_shard_of_items_maps_each_utterance_to_its_ark(tmp_path):
    dump = make_dump_dir(str(tmp_path / "dump"), num_utts=10, shard_utts=4)
    arks = read_shard_index(dump)
    assert len(arks) == 3
    ds = FeatsDataset(dump)
    scp = read_kaldi_map(f"{dump}/feats.scp")
    assert [arks[k] for k in shard_of_items(ds)] == [scp[u].rsplit(":", 1)[0] for u in ds.utt_ids]


def test_a_dump_dir_without_shards_says_how_to_make_them(tmp_path):
    dump = make_dump_dir(str(tmp_path / "dump"), num_utts=4)
    with pytest.raises(DataDirError, match="no shards.tsv.*--shard-utts"):
        shard_of_items(FeatsDataset(dump))


def test_a_malformed_index_names_the_file_and_line(tmp_path):
    dump = make_dump_dir(str(tmp_path / "dump"), num_utts=4, shard_utts=2)
    with open(f"{dump}/shards.tsv", "a") as f:
        f.write("only-one-field\n")
    with pytest.raises(DataDirError, match=r"shards.tsv: line 4"):
        read_shard_index(dump)


def test_an_utterance_outside_the_listed_shards_is_named(tmp_path):
    dump = make_dump_dir(str(tmp_path / "dump"), num_utts=4, shard_utts=2)
    lines = open(f"{dump}/shards.tsv").read().splitlines()
    with open(f"{dump}/shards.tsv", "w") as f:
        f.write("\n".join(lines[:2]) + "\n")   # the second shard is no longer listed
    with pytest.raises(DataDirError, match="utterance 'spk.*' is in .*shard.000001.ark"):
        shard_of_items(FeatsDataset(dump))
