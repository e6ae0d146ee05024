"""Sharded feature archives, and the batch sampler that gives each DDP rank its own shards.

For a corpus of thousands of hours, a multi-node ``torchrun`` job should not have every rank
seek into every feature file (the normal ``feats.scp`` random access reads utterances wherever
they lie). With ``--shard-utts N`` the features stage (:mod:`masr.features.extract`) writes
instead:

- ``<dump>/data/shard.<k>.ark``: shards of ``N`` utterances drawn at random from the whole set
  (seeded), so that every shard is a small sample of the corpus, with all its languages and
  speakers mixed (batch-hard triplet mining needs several languages in every batch);
- ``<dump>/shards.tsv``: the shard index (``ark``, ``utterances``, ``frames``), whose presence
  says the arks are such shuffled shards.

Everything else of the dump dir is unchanged (``feats.scp`` points into the shards), so any
reader of a dump dir still works. :class:`ShardedBatchSampler` then deals *shards*, not batches,
to ranks: in every epoch the shard order is shuffled (seeded, identical on every rank) and rank
``r`` of ``W`` takes shards ``r, r + W, ...``; its batches are made within its shards only, a
group of ``shard_buffer`` shards after another (batching over several shards at once gives
fuller length buckets, hence fewer part-filled batches; ``benchmarks/feature_reading.py``
measures it). Over an epoch, no feature file is read by two ranks. (Each rank still reads the
small text index, ``feats.scp`` and ``utt2num_frames``, as Lhotse's Shar readers read their
manifests.)

Every rank must run the same number of steps (DDP's all-reduce): since the batches are a pure
function of the index, each rank computes every rank's batch count and all stop after the
smallest. When the shard count is not a multiple of ``W``, the ``n % W`` shards left over at the
end of an epoch's shuffled order are not used in that epoch (other ones each epoch).
"""

import csv
import logging
import os
import random

from masr.data.datadir import DataDirError
from masr.data.sampler import DynamicBucketBatchSampler
from masr.utils.fileio import atomic_open

logger = logging.getLogger(__name__)

#: The shard index of a dump dir.
SHARDS_FILE = "shards.tsv"
SHARDS_HEADER = ("ark", "utterances", "frames")


def make_shards(utt_ids, shard_utts, seed=0):
    """Split utterances into shards of ``shard_utts``, drawn at random (seeded) from all of them.

    Arguments
    ---------
    utt_ids : list of str
    shard_utts : int
        Utterances per shard (the last shard may be smaller).
    seed : int

    Returns
    -------
    list of list of str
        Shards, each sorted (sequential reads follow the order of the ark).

    Example
    -------
    >>> shards = make_shards([f"u{i}" for i in range(5)], 2, seed=0)
    >>> [len(s) for s in shards], sorted(u for s in shards for u in s)
    ([2, 2, 1], ['u0', 'u1', 'u2', 'u3', 'u4'])
    """
    if shard_utts < 1:
        raise ValueError(f"shard_utts must be >= 1, got {shard_utts}")
    order = sorted(utt_ids)
    random.Random(seed).shuffle(order)
    return [sorted(order[k:k + shard_utts]) for k in range(0, len(order), shard_utts)]


def write_shard_index(dump_dir, rows):
    """Write ``<dump_dir>/shards.tsv`` atomically.

    Arguments
    ---------
    dump_dir : str
    rows : list of (str, int, int)
        ``(ark path as in feats.scp, utterances, frames)`` per shard, in shard order.
    """
    with atomic_open(os.path.join(dump_dir, SHARDS_FILE)) as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(SHARDS_HEADER)
        writer.writerows(rows)


def read_shard_index(dump_dir):
    """The arks listed in ``<dump_dir>/shards.tsv``, in shard order.

    Raises
    ------
    DataDirError
        No ``shards.tsv`` (the message says how to write one) or a malformed line (named).
    """
    path = os.path.join(dump_dir, SHARDS_FILE)
    if not os.path.isfile(path):
        raise DataDirError(f"{dump_dir}: no {SHARDS_FILE}: this dump dir was not written in shards; extract "
                           f"features with --shard-utts N (recipes: ./run.sh --shard-utts N --stage 2 --force true)")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    if not rows or tuple(rows[0]) != SHARDS_HEADER:
        raise DataDirError(f"{path}: line 1: expected the header {' '.join(SHARDS_HEADER)}")
    arks = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(SHARDS_HEADER):
            raise DataDirError(f"{path}: line {line}: expected {len(SHARDS_HEADER)} tab-separated fields, got {row}")
        arks.append(row[0])
    if len(set(arks)) != len(arks):
        raise DataDirError(f"{path}: an ark is listed twice")
    return arks


def shard_of_items(dataset):
    """The shard index (position in ``shards.tsv``) of every item of a ``FeatsDataset``.

    Raises
    ------
    DataDirError
        An utterance whose ``feats.scp`` entry points into an ark that is not a listed shard.
    """
    shard = {ark: k for k, ark in enumerate(read_shard_index(dataset.dump_dir))}
    result = []
    for utt, entry in zip(dataset.utt_ids, dataset.entries):
        ark = entry.rsplit(":", 1)[0]
        if ark not in shard:
            raise DataDirError(f"{dataset.dump_dir}/{dataset.SCP_FILE}: utterance '{utt}' is in '{ark}', "
                               f"which {SHARDS_FILE} does not list (features re-extracted without shards?)")
        result.append(shard[ark])
    return result


class ShardedBatchSampler(DynamicBucketBatchSampler):
    """Dynamic batches made within shards, the shards dealt to DDP ranks (module docstring).

    Same interface as :class:`~masr.data.sampler.DynamicBucketBatchSampler` (``set_epoch``,
    ``state_dict``/``load_state_dict``, ``len``: batches of this rank in an epoch, equal on every
    rank), and the same batching (global length buckets, ``max_batch_frames``, windows sorted by
    length) applied to ``shard_buffer`` shards at a time. With ``weights`` each shard's items are
    drawn with replacement by weight, as many as the shard holds: as shards are random samples of
    the corpus this approximates the global weights (exactly only where every shard holds items of
    every weighted group; a group too small to appear in a shard loses that shard's share).

    Arguments
    ---------
    shard_of : list of int
        Shard of each item (e.g. :func:`shard_of_items`).
    lengths, max_batch_frames, num_buckets, seed, rank, world_size, drop_last, max_batch_size, weights
        As for ``DynamicBucketBatchSampler``.
    shard_buffer : int
        Shards whose utterances are batched together (read during the same stretch of the epoch).

    Example
    -------
    >>> shard_of = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    >>> lengths = [5] * 12
    >>> ranks = [ShardedBatchSampler(shard_of, lengths, 10, num_buckets=1, rank=r, world_size=2, shard_buffer=1)
    ...          for r in range(2)]
    >>> seen = [{shard_of[i] for batch in s for i in batch} for s in ranks]
    >>> sorted(seen[0] | seen[1]), seen[0] & seen[1]   # every shard used, by one rank only
    ([0, 1, 2, 3], set())
    >>> len(ranks[0]) == len(ranks[1]) == 4   # 2 shards of 3 items, batches of <= 2 items
    True
    """

    def __init__(self, shard_of, lengths, max_batch_frames, num_buckets=10, seed=0, rank=0, world_size=1,
                 drop_last=False, max_batch_size=None, weights=None, shard_buffer=4):
        super().__init__(lengths, max_batch_frames, num_buckets=num_buckets, shuffle=True, seed=seed, rank=rank,
                         world_size=world_size, drop_last=drop_last, max_batch_size=max_batch_size, weights=weights)
        if len(shard_of) != len(self.lengths):
            raise ValueError(f"ShardedBatchSampler: {len(shard_of)} shard ids for {len(self.lengths)} items")
        if shard_buffer < 1:
            raise ValueError(f"ShardedBatchSampler: shard_buffer must be >= 1, got {shard_buffer}")
        self.shard_buffer = int(shard_buffer)
        self.items_of_shard = {}
        for index, shard in enumerate(shard_of):
            self.items_of_shard.setdefault(int(shard), []).append(index)
        self.shards = sorted(self.items_of_shard)
        if len(self.shards) < self.world_size:
            raise ValueError(f"ShardedBatchSampler: {len(self.shards)} shard(s) for {self.world_size} ranks: "
                             f"write smaller shards (--shard-utts) so that every rank gets at least one")
        if len(self.shards) % self.world_size:
            logger.info("%d shards for %d ranks: %d shard(s) are left out of each epoch (other ones each epoch)",
                        len(self.shards), self.world_size, len(self.shards) % self.world_size)

    def shards_of_rank(self, epoch, rank):
        """The shards rank ``rank`` reads in ``epoch``, in reading order."""
        order = list(self.shards)
        random.Random(self.seed + epoch).shuffle(order)
        per_rank = len(order) // self.world_size
        return order[rank: per_rank * self.world_size: self.world_size]

    def group_batches(self, epoch, shards):
        """The batches of a group of shards in one epoch (a pure function of seed, epoch and shards)."""
        rng = random.Random(f"{self.seed}:{epoch}:{','.join(map(str, shards))}")
        items = []
        for shard in shards:
            in_shard = self.items_of_shard[shard]
            if self.weights is not None:
                shard_weights = [self.weights[i] for i in in_shard]
                in_shard = rng.choices(in_shard, weights=shard_weights, k=len(in_shard)) if sum(shard_weights) > 0 else []
            items.extend(in_shard)
        batches = self.make_batches(items, rng)
        rng.shuffle(batches)
        return batches

    def epoch_batches(self, epoch):
        raise NotImplementedError("ShardedBatchSampler has no global batch list: see rank_batches")

    def rank_batches(self, epoch, rank):
        """All batches of ``rank`` in ``epoch``, before the cut to the smallest rank's count."""
        shards = self.shards_of_rank(epoch, rank)
        groups = [shards[k:k + self.shard_buffer] for k in range(0, len(shards), self.shard_buffer)]
        return [batch for group in groups for batch in self.group_batches(epoch, group)]

    def _rank_batches(self):
        if self._cache[0] != self.epoch:
            counts = [len(self.rank_batches(self.epoch, r)) for r in range(self.world_size)]
            mine = self.rank_batches(self.epoch, self.rank)[: min(counts)]
            self._cache = (self.epoch, mine)
        return self._cache[1]
