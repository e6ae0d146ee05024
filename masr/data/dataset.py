"""Utterances of a dump dir as a ``torch.utils.data.Dataset``, and their collation into batches.

A dump dir (written by :mod:`masr.features.extract`) holds ``feats.scp`` (utt -> ``<ark>:<offset>``),
``utt2num_frames``, ``cmvn.ark`` and the metadata files copied from the data dir (``utt2lang``,
``utt2spk``, ``text``, ...). Features are read lazily, one utterance at a time, by random access
into the arks; lengths come from ``utt2num_frames`` so that batching needs no feature reads.
CMVN is not applied here: it is part of the model (:class:`masr.features.cmvn.GlobalCMVN`).

Only ``<ark path>:<byte offset>`` entries are accepted in ``feats.scp``, and the arks are read as
plain files (:func:`masr.data.datadir.read_ark_entry`): an entry can never make the reader run a
command, as Kaldi's ``cmd |`` form would with ``kaldiio.load_mat``.
"""

import logging
import os

import numpy as np
import torch

from masr.data.datadir import DataDir, DataDirError, parse_ark_entry, read_ark_entry

logger = logging.getLogger(__name__)

#: Item keys that a metadata stream may not shadow.
RESERVED_KEYS = ("utt", "feats", "lengths")


class FeatsReadError(DataDirError):
    """An utterance whose features cannot be read from its ark; the message names it."""


class FeatsDataset(torch.utils.data.Dataset):
    """Utterances of a dump dir: features (random access through ``feats.scp``) + metadata.

    Arguments
    ---------
    dump_dir : str
        The dump dir (``feats.scp`` and ``utt2num_frames`` are required).
    streams : list of str
        Metadata streams to return with each item, as read by ``DataDir.stream``: ``"lang"``
        for ``utt2lang``, ``"text"`` for ``text``, ... Values are returned as strings.
    max_frames : int or None
        Utterances with more frames are dropped (``None``: no limit).
    min_frames : int
        Utterances with fewer frames are dropped.
    utts : collection of str or None
        Only these utterances are kept (``None``: all of ``feats.scp``), e.g. the utterances of
        some languages; ids absent from ``feats.scp`` are ignored.

    Attributes
    ----------
    utt_ids : list of str
        The kept utterances, sorted.
    num_frames : list of int
        Frames of each kept utterance, aligned with ``utt_ids`` (from ``utt2num_frames``).
    entries : list of str
        The ``feats.scp`` entry (``<ark path>:<byte offset>``) of each kept utterance.
    num_dropped : int
        Utterances removed by ``max_frames`` / ``min_frames``.

    Raises
    ------
    DataDirError
        A missing dump dir, ``feats.scp``, ``utt2num_frames`` or stream file (the message names
        the dump dir and the file), an utterance missing from one of them, a ``feats.scp`` entry
        that is not ``<ark path>:<byte offset>`` (file, line and utterance named), an empty
        ``feats.scp``, or ``max_frames`` / ``min_frames`` dropping every utterance (an empty
        dataset would leave a training loop without batches).

    A subclass may read another listing of ``<path>:<byte offset>`` entries (``SCP_FILE``) and
    load its items otherwise (``_load``), e.g. :class:`masr.features.onthefly.AudioShardDataset`.

    Example
    -------
    >>> import tempfile, kaldiio, numpy as np
    >>> from masr.data.datadir import write_kaldi_map
    >>> d = tempfile.mkdtemp()
    >>> feats = {"u1": np.ones((3, 2), np.float32), "u2": np.zeros((5, 2), np.float32)}
    >>> with kaldiio.WriteHelper(f"ark,scp:{d}/feats.ark,{d}/feats.scp") as w:
    ...     for utt, mat in feats.items():
    ...         w(utt, mat)
    >>> write_kaldi_map(f"{d}/utt2num_frames", {u: len(m) for u, m in feats.items()})
    >>> write_kaldi_map(f"{d}/utt2lang", {"u1": "hrv", "u2": "srp"})
    >>> ds = FeatsDataset(d, streams=["lang"])
    >>> len(ds), ds.utt_ids, ds.num_frames
    (2, ['u1', 'u2'], [3, 5])
    >>> item = ds[1]
    >>> item["utt"], tuple(item["feats"].shape), item["lang"]
    ('u2', (5, 2), 'srp')
    >>> FeatsDataset(d, max_frames=4).utt_ids
    ['u1']
    >>> FeatsDataset(d, utts={"u2"}).utt_ids
    ['u2']
    >>> FeatsDataset(d, max_frames=2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    masr.data.datadir.DataDirError: ...: all 2 utterances are longer than max_frames 2; raise max_frames
    """

    #: The listing of the dump dir read: utt -> ``<path>:<byte offset>``.
    SCP_FILE = "feats.scp"

    def __init__(self, dump_dir, streams=(), max_frames=None, min_frames=1, utts=None):
        self.dump_dir = os.fspath(dump_dir)
        self.streams = list(streams)
        for name in self.streams:
            if name in RESERVED_KEYS:
                raise ValueError(f"stream name '{name}' clashes with an item key {RESERVED_KEYS}")
        data = DataDir(self.dump_dir)
        scp_file = self.SCP_FILE
        other = {"feats.scp": ("audio.scp", "audio shards: set feature_source: audio_shards"),
                 "audio.scp": ("feats.scp", "stored features: set feature_source: feats")}.get(scp_file)
        if other and not data.has(scp_file) and data.has(other[0]):
            raise DataDirError(f"{self.dump_dir}: dump dir has no '{scp_file}' but '{other[0]}': it holds {other[1]} "
                               "in the config, or rerun the features stage (recipes: --feature-source)")
        scp = self._read(data, scp_file, "written by the features stage")
        if not scp:
            raise DataDirError(f"{self.dump_dir}: dump dir holds no utterances ({data.file(scp_file)} is empty; "
                               f"rerun the features stage on a data dir with utterances)")
        frames_map = self._read(data, "utt2num_frames", "written by the features stage")
        ark_sizes = {}  # checked now, not hours into training: the arks exist and hold the offsets
        for lineno, (utt, entry) in enumerate(scp.items(), start=1):
            try:
                ark, offset = parse_ark_entry(entry)
                if ark not in ark_sizes:
                    ark_sizes[ark] = os.path.getsize(ark) if os.path.isfile(ark) else None
                if ark_sizes[ark] is None:
                    raise ValueError(f"ark '{ark}' not found")
                if offset >= ark_sizes[ark]:
                    raise ValueError(f"offset {offset} is past the end of '{ark}' ({ark_sizes[ark]} bytes)")
            except ValueError as e:
                raise DataDirError(f"{data.file(scp_file)}:{lineno}: utterance '{utt}': {e}") from None

        utt_ids, num_frames, self.num_dropped = [], [], 0
        short = long = 0
        keep = None if utts is None else set(utts)
        for utt in sorted(scp):
            if keep is not None and utt not in keep:
                continue
            if utt not in frames_map:
                raise DataDirError(f"{data.file('utt2num_frames')}: utterance '{utt}' of {scp_file} is missing")
            try:
                n = int(frames_map[utt])
            except ValueError:
                raise DataDirError(f"{data.file('utt2num_frames')}: utterance '{utt}': "
                                   f"not an integer: '{frames_map[utt]}'") from None
            if n < min_frames or (max_frames is not None and n > max_frames):
                short += n < min_frames
                long += n >= min_frames
                self.num_dropped += 1
                continue
            utt_ids.append(utt)
            num_frames.append(n)
        if self.num_dropped and not utt_ids:
            raise DataDirError(f"{self.dump_dir}: {_all_dropped(short, long, min_frames, max_frames)}")
        if self.num_dropped:
            logger.info("%s: dropped %d of %d utterances outside [%s, %s] frames", self.dump_dir,
                        self.num_dropped, len(scp), min_frames, max_frames)
        self.utt_ids = utt_ids
        self.num_frames = num_frames
        self.entries = [scp[utt] for utt in utt_ids]

        self._stream_values = {}
        for name in self.streams:
            fname = "text" if name == "text" else f"utt2{name}"
            values = self._read(data, fname, f"metadata stream '{name}'")
            missing = [utt for utt in utt_ids if utt not in values]
            if missing:
                raise DataDirError(f"{data.file(fname)}: utterance '{missing[0]}' is missing "
                                   f"({len(missing)} of {len(utt_ids)} utterances have no '{name}')")
            self._stream_values[name] = [values[utt] for utt in utt_ids]

    def _read(self, data, fname, what):
        if not data.has(fname):
            raise DataDirError(f"{self.dump_dir}: dump dir has no '{fname}' ({what})")
        return data.read(fname)

    def __len__(self):
        return len(self.utt_ids)

    def __getitem__(self, i):
        """dict(utt=str, feats=FloatTensor (T, F), <stream>=str for each stream)."""
        item = {"utt": self.utt_ids[i], "feats": self._load(i)}
        for name, values in self._stream_values.items():
            item[name] = values[i]
        return item

    def _where(self, i):
        """The utterance ``i`` and its listing, for error messages."""
        return f"{self.dump_dir}/{self.SCP_FILE}: utterance '{self.utt_ids[i]}'"

    def _load(self, i):
        """The features of item ``i``, FloatTensor (T, F); FeatsReadError naming the utterance."""
        entry, where = self.entries[i], self._where(i)
        try:
            mat = read_ark_entry(entry)
        except Exception as e:  # a missing, truncated or garbled ark: report which utterance
            raise FeatsReadError(f"{where}: cannot read features from '{entry}': "
                                 f"{type(e).__name__}: {e}") from e
        mat = np.asarray(mat)
        if mat.ndim != 2 or mat.shape[0] != self.num_frames[i]:
            raise FeatsReadError(f"{where}: features from '{entry}' have shape {mat.shape}, "
                                 f"utt2num_frames says {self.num_frames[i]} frames")
        finite = np.isfinite(mat)
        if not finite.all():  # the features stage never writes them: a damaged or foreign dump
            bad = np.flatnonzero(~finite.all(axis=1))
            raise FeatsReadError(f"{where}: features from '{entry}' hold NaN/inf in {len(bad)} of {len(mat)} "
                                 f"frames (first at frame {bad[0]}); extract the features again")
        return torch.tensor(mat, dtype=torch.float32)


def _all_dropped(short, long, min_frames, max_frames):
    """Why the frame limits kept no utterance: ``short`` were below ``min_frames``, ``long`` above
    ``max_frames``."""
    if not short:
        return f"all {long} utterances are longer than max_frames {max_frames}; raise max_frames"
    if not long:
        return f"all {short} utterances are shorter than min_frames {min_frames}; lower min_frames"
    return (f"all {short + long} utterances are outside [min_frames {min_frames}, max_frames {max_frames}] "
            f"({short} shorter, {long} longer); widen the range")


def collate_feats(items, pad_multiple=1):
    """Pad a list of dataset items into a batch.

    Arguments
    ---------
    items : list of dict
        Items of :class:`FeatsDataset`: ``utt``, ``feats`` (T, F) and any stream strings.
    pad_multiple : int
        Round the padded length up to a multiple of this (e.g. 64 frames), so that a compiled
        model sees a bounded number of distinct shapes. The models are invariant to padding.

    Returns
    -------
    dict
        ``utt`` (list of str), ``feats`` (B, T_max, F) float32 zero-padded after each
        utterance's end, ``lengths`` (B,) int64 frames, and for each stream a list of str.

    Example
    -------
    >>> b = collate_feats([{"utt": "a", "feats": torch.ones(2, 3), "lang": "hrv"},
    ...                    {"utt": "b", "feats": torch.ones(4, 3), "lang": "srp"}])
    >>> b["utt"], tuple(b["feats"].shape), b["lengths"].tolist(), b["lang"]
    (['a', 'b'], (2, 4, 3), [2, 4], ['hrv', 'srp'])
    >>> b["feats"][0, :, 0].tolist()
    [1.0, 1.0, 0.0, 0.0]
    >>> tuple(collate_feats([{"utt": "a", "feats": torch.ones(5, 3)}], pad_multiple=4)["feats"].shape)
    (1, 8, 3)
    """
    if not items:
        raise ValueError("collate_feats: empty batch")
    feats = [item["feats"] for item in items]
    lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
    time = -(-int(lengths.max()) // pad_multiple) * pad_multiple
    padded = feats[0].new_zeros((len(feats), time, feats[0].shape[1]), dtype=torch.float32)
    for b, f in enumerate(feats):
        padded[b, : f.shape[0]] = f
    batch = {"utt": [item["utt"] for item in items], "feats": padded, "lengths": lengths}
    for key in items[0]:
        if key not in ("utt", "feats"):
            batch[key] = [item[key] for item in items]
    return batch
