"""Dynamic batching by total padded frames, with length buckets; resumable and DDP-aware.

How an epoch's batches are made (a pure function of the lengths, the settings, ``seed`` and
the epoch, so every DDP rank computes the same list without communicating):

1. Utterances are split into ``num_buckets`` buckets at the quantiles of the length
   distribution (equal-count buckets; equal lengths always share a bucket).
2. Within a bucket they are shuffled (seeded by ``seed + epoch``; no shuffle: kept in order),
   sorted by length within windows of ``SORT_WINDOW`` utterances, and batches are filled greedily: an utterance joins the current batch while
   ``batch_size * max_length <= max_batch_frames`` (and ``batch_size <= max_batch_size``).
   This padded size, not the sum of lengths, is what the budget bounds, so it is what the
   accelerator really allocates. An utterance longer than ``max_batch_frames`` on its own forms
   a batch of one (with a warning when the sampler is built).
3. The order of the batches is shuffled with ``random.Random(seed + epoch)``.

Weighted sampling (``weights``, e.g. per corpus and language of a pretraining mix,
``masr.corpora.mix.utterance_weights``): each epoch first draws ``len(lengths)`` utterances with
replacement, with probabilities proportional to ``weights`` (same RNG), and batches those; an
"epoch" is then that many draws, and an utterance may appear more than once or not at all.

Batch *composition* changes from epoch to epoch, not only batch order: batch-hard triplet
mining (MASR) would otherwise meet the same negatives every epoch. The global RNG is never used.

DDP: with ``world_size`` W, rank r takes batches r, r + W, r + 2W, ... of the epoch's list.
So that every rank runs the same number of steps (a rank with one more step would wait forever
in an all-reduce), only the first ``W * (len(batches) // W)`` batches are dealt: the up to W - 1
tail batches are dropped. The list is shuffled each epoch, so these are different batches each
epoch.

Resume: the sampler counts the batches it has yielded in the current epoch; ``state_dict()``
saved in the middle of an epoch and loaded into a new sampler makes its next ``__iter__`` go on
with the following batch. When an epoch's iteration completes the sampler moves to the next
epoch (``set_epoch`` with the next number is then a no-op) and the count restarts at 0. With a
``DataLoader`` using worker processes the loader fetches a few batches ahead, so the sampler's
count runs ahead of the training loop's: a trainer resuming exactly should then store its own
count of consumed batches as ``batches_done``.
"""

import bisect
import random
import warnings

import torch

#: Utterances sorted together inside a bucket (larger: less padding, less varied batches).
SORT_WINDOW = 200


class DynamicBucketBatchSampler(torch.utils.data.Sampler):
    """Batches of dataset indices whose padded size is bounded by ``max_batch_frames``.

    Usable as ``torch.utils.data.DataLoader(dataset, batch_sampler=sampler, ...)``.

    Arguments
    ---------
    lengths : list of int
        Length (frames) of each dataset item, e.g. ``FeatsDataset.num_frames``.
    max_batch_frames : int
        Bound on ``batch_size * max_length_in_batch`` for every batch.
    num_buckets : int
        Number of length buckets (quantiles of ``lengths``).
    shuffle : bool
        Shuffle the batch order (and ties within buckets) each epoch; if False, batches come
        in increasing length order and are the same every epoch.
    seed : int
        Base seed; the epoch's RNG is seeded with ``seed + epoch``.
    rank, world_size : int
        This process's DDP rank and the number of processes (see the module docstring).
    drop_last : bool
        Drop the last batch of each bucket when it is incomplete, i.e. when it could have
        taken one more utterance as long as its longest (the analogue of
        ``torch.utils.data.BatchSampler``'s ``drop_last``; the dropped utterances are mostly
        the same ones every epoch).
    max_batch_size : int or None
        Also bound the number of utterances per batch.
    weights : list of float or None
        Sampling weight of each item (see the module docstring); None: every item once per epoch.

    Example
    -------
    >>> lengths = [3, 9, 4, 2, 10, 8]
    >>> s = DynamicBucketBatchSampler(lengths, max_batch_frames=18, num_buckets=2, shuffle=False)
    >>> list(s)  # buckets {2, 3, 4} and {8, 9, 10}; 3 * 4 <= 18, 2 * 9 <= 18 < 3 * 10
    [[3, 0, 2], [5, 1], [4]]
    >>> len(s), padding_fraction(list(s), lengths)
    (3, 0.1)
    >>> s = DynamicBucketBatchSampler(lengths, max_batch_frames=18, num_buckets=2, seed=1)
    >>> it = iter(s); first = next(it)
    >>> state = s.state_dict(); state
    {'epoch': 0, 'batches_done': 1}
    >>> resumed = DynamicBucketBatchSampler(lengths, max_batch_frames=18, num_buckets=2, seed=1)
    >>> resumed.load_state_dict(state)
    >>> full = list(DynamicBucketBatchSampler(lengths, max_batch_frames=18, num_buckets=2, seed=1))
    >>> [first] + list(resumed) == full
    True
    """

    def __init__(self, lengths, max_batch_frames, num_buckets=10, shuffle=True, seed=0, rank=0,
                 world_size=1, drop_last=False, max_batch_size=None, weights=None):
        self.lengths = [int(n) for n in lengths]
        if weights is not None:
            weights = [float(w) for w in weights]
            if len(weights) != len(self.lengths) or min(weights, default=0) < 0 or not sum(weights) > 0:
                raise ValueError("DynamicBucketBatchSampler: weights must be one non-negative number per item, "
                                 "not all 0")
        self.weights = weights
        if any(n < 0 for n in self.lengths):
            raise ValueError("DynamicBucketBatchSampler: negative length")
        if max_batch_frames <= 0:
            raise ValueError(f"max_batch_frames must be positive, got {max_batch_frames}")
        if num_buckets < 1:
            raise ValueError(f"num_buckets must be >= 1, got {num_buckets}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if max_batch_size is not None and max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.max_batch_frames = int(max_batch_frames)
        self.num_buckets = int(num_buckets)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.drop_last = bool(drop_last)
        self.max_batch_size = max_batch_size
        self.epoch = 0
        self.batches_done = 0
        self._cache = (None, None)  # (epoch, this rank's batches)

        self._bucket_of = self._assign_buckets()
        too_long = [n for n in self.lengths if n > self.max_batch_frames]
        if too_long:
            warnings.warn(f"DynamicBucketBatchSampler: {len(too_long)} utterance(s) longer than "
                          f"max_batch_frames={self.max_batch_frames} (up to {max(too_long)} frames) "
                          f"each form a batch of their own", stacklevel=2)

    def _assign_buckets(self):
        """Bucket index of every item: equal-count buckets cut at length quantiles."""
        ordered = sorted(self.lengths)
        n = len(ordered)
        bounds = sorted({ordered[(k * n) // self.num_buckets] for k in range(1, self.num_buckets)}) if n else []
        # bucket b holds lengths in [bounds[b-1], bounds[b]): equal lengths share a bucket
        return [bisect.bisect_right(bounds, length) for length in self.lengths]

    def _full(self, size, longest):
        """Whether a batch of ``size`` items up to ``longest`` frames can take no further one."""
        if self.max_batch_size is not None and size >= self.max_batch_size:
            return True
        return (size + 1) * longest > self.max_batch_frames

    def epoch_batches(self, epoch):
        """All batches of an epoch, before they are dealt to ranks (identical on every rank).

        Arguments
        ---------
        epoch : int

        Returns
        -------
        list of list of int
            Batches of dataset indices, in iteration order.
        """
        rng = random.Random(self.seed + epoch)
        if self.weights is None:
            drawn = range(len(self.lengths))
        else:
            drawn = rng.choices(range(len(self.lengths)), weights=self.weights, k=len(self.lengths))
        batches = self.make_batches(drawn, rng)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def make_batches(self, indices, rng):
        """Cut items into batches within length buckets (steps 1-2 of the module docstring).

        Arguments
        ---------
        indices : iterable of int
            The items to batch (an item may repeat, e.g. after weighted draws).
        rng : random.Random
            Shuffles each bucket (when ``shuffle``); the batch order is left to the caller.

        Returns
        -------
        list of list of int
            Batches, bucket after bucket.
        """
        buckets = {}
        for index in indices:
            buckets.setdefault(self._bucket_of[index], []).append(index)
        batches = []
        for bucket in sorted(buckets):
            indices = buckets[bucket]
            if self.shuffle:
                # New batch compositions every epoch (batch-hard triplet mining needs varied
                # batches): shuffle the bucket, then sort only within windows of SORT_WINDOW
                # utterances, which keeps padding low without fixing who shares a batch.
                rng.shuffle(indices)
                indices = [i for start in range(0, len(indices), SORT_WINDOW)
                           for i in sorted(indices[start:start + SORT_WINDOW], key=self.lengths.__getitem__)]
            else:
                indices.sort(key=self.lengths.__getitem__)
            batch, longest = [], 0
            for index in indices:
                length = self.lengths[index]
                new_longest = max(longest, length)
                too_big = (len(batch) + 1) * new_longest > self.max_batch_frames
                too_many = self.max_batch_size is not None and len(batch) >= self.max_batch_size
                if batch and (too_big or too_many):
                    batches.append(batch)
                    batch, new_longest = [], length
                batch.append(index)
                longest = new_longest
            if batch and not (self.drop_last and not self._full(len(batch), longest)):
                batches.append(batch)
        return batches

    def _rank_batches(self):
        if self._cache[0] != self.epoch:
            batches = self.epoch_batches(self.epoch)
            per_rank = len(batches) // self.world_size
            self._cache = (self.epoch, batches[self.rank: per_rank * self.world_size: self.world_size])
        return self._cache[1]

    def set_epoch(self, epoch):
        """Select the epoch whose batches the next ``__iter__`` yields.

        Setting the epoch the sampler is already in keeps its position (so calling
        ``set_epoch(epoch)`` after ``load_state_dict`` does not restart the epoch); another epoch
        starts from its first batch.
        """
        epoch = int(epoch)
        if epoch != self.epoch:
            self.epoch, self.batches_done = epoch, 0

    def __iter__(self):
        """Yield this rank's remaining batches of the current epoch, then move to the next epoch."""
        batches = self._rank_batches()
        while self.batches_done < len(batches):
            batch = batches[self.batches_done]
            self.batches_done += 1
            yield list(batch)
        self.epoch, self.batches_done = self.epoch + 1, 0

    def __len__(self):
        """Batches this rank yields in a full epoch (the same on every rank)."""
        return len(self._rank_batches())

    def state_dict(self):
        """Position for a checkpoint: ``dict(epoch=..., batches_done=...)`` (this rank's batches)."""
        return {"epoch": self.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state):
        """Restore a position saved by :meth:`state_dict` (same lengths and settings)."""
        epoch, done = int(state["epoch"]), int(state["batches_done"])
        self.epoch, self.batches_done = epoch, 0
        if not 0 <= done <= len(self):
            raise ValueError(f"DynamicBucketBatchSampler.load_state_dict: batches_done={done} is outside "
                             f"[0, {len(self)}] (different lengths or settings than when saved?)")
        self.batches_done = done


def padding_fraction(batches, lengths):
    """Share of a padded batch tensor's frames that are padding, over all batches.

    Arguments
    ---------
    batches : list of list of int
        Batches of indices into ``lengths``.
    lengths : list of int
        Length of each item.

    Returns
    -------
    float
        ``(padded frames - real frames) / padded frames``, where a batch's padded frames are
        ``batch_size * max_length``; 0.0 for no batches.

    Example
    -------
    >>> padding_fraction([[0, 1], [2]], [1, 3, 4])  # (2 * 3 + 4 - 8) / (2 * 3 + 4)
    0.2
    """
    real = padded = 0
    for batch in batches:
        sizes = [lengths[i] for i in batch]
        real += sum(sizes)
        padded += len(sizes) * max(sizes, default=0)
    return (padded - real) / padded if padded else 0.0
