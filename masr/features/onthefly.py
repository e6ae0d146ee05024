"""Filterbanks computed on the fly from the audio shards of a dump dir, as a ``Dataset``.

A dump dir written with ``--audio-shards`` (:mod:`masr.features.extract`,
:mod:`masr.features.audio_shards`) holds ``audio.scp`` (utt -> ``<tar>:<offset>``) instead of
``feats.scp``, and ``fbank.json``, the filterbank options it was extracted with. Everything else is
that of a feature dump (``utt2num_frames``, ``cmvn.ark``, ``shards.tsv``, the metadata), so the
batch samplers and :func:`masr.data.shards.shard_of_items` work unchanged. Each item's audio is
read from its tar member, decoded and turned into the same filterbank as the features stage
computes (:func:`masr.features.fbank.compute_fbank` with the dump's options). Where the members
are lossless (FLAC and Opus files copied, 16-bit audio at or below the target rate) these equal the
filterbanks of a stored dump; for other sources (float, lossy or resampled audio, stored as 16-bit
FLAC) and for ``--audio-codec opus`` they are those of the member's audio, which is what the
dump's ``utt2num_frames`` and ``cmvn.ark`` were computed from (:mod:`masr.features.audio_shards`).

With ``return_wave=True`` the items hold the waveform instead, for filterbanks computed in batches
on the GPU; :func:`collate_waves` pads them.
"""

import json
import os

import numpy as np
import torch

from masr.audio import AudioError
from masr.data.datadir import DataDirError
from masr.data.dataset import FeatsDataset, FeatsReadError
from masr.features.audio_shards import AUDIO_SCP, FBANK_JSON, decode_member, read_member
from masr.features.fbank import FbankConfig, compute_fbank, expected_num_frames

#: Item keys of the waveform items that a metadata stream may not shadow (besides FeatsDataset's).
WAVE_KEYS = ("wave", "wave_lengths")


def read_fbank_config(dump_dir):
    """The :class:`FbankConfig` of an audio dump (``<dump_dir>/fbank.json``).

    Raises
    ------
    DataDirError
        A missing or malformed ``fbank.json`` (named).
    """
    path = os.path.join(dump_dir, FBANK_JSON)
    if not os.path.isfile(path):
        raise DataDirError(f"{dump_dir}: dump dir has no '{FBANK_JSON}' (written by the features stage "
                           f"with --audio-shards)")
    try:
        with open(path, encoding="utf-8") as f:
            return FbankConfig(**json.load(f))
    except (ValueError, TypeError) as e:
        raise DataDirError(f"{path}: not the filterbank options of an audio dump: {e}") from None


class AudioShardDataset(FeatsDataset):
    """Utterances of an audio dump dir: filterbanks computed from the audio shards + metadata.

    Arguments
    ---------
    dump_dir : str
        The dump dir (``audio.scp``, ``fbank.json`` and ``utt2num_frames`` are required).
    streams, max_frames, min_frames, utts
        As for :class:`masr.data.dataset.FeatsDataset` (frames are filterbank frames).
    return_wave : bool
        Items hold ``wave`` (N,) float32 samples at ``fbank.sample_rate`` instead of ``feats``.

    Attributes
    ----------
    utt_ids, num_frames, entries, num_dropped
        As for ``FeatsDataset`` (``entries`` from ``audio.scp``).
    fbank : FbankConfig
        The options the dump was extracted with.

    Raises
    ------
    DataDirError
        As ``FeatsDataset`` (naming ``audio.scp``), or a missing or malformed ``fbank.json``.

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> from masr.data.datadir import write_data_dir
    >>> from masr.features.extract import extract_features
    >>> d = tempfile.mkdtemp()
    >>> for utt, n in (("s1_a", 8000), ("s1_b", 4000)):
    ...     sf.write(f"{d}/{utt}.wav", np.random.default_rng(0).uniform(-.1, .1, n), 16000)
    >>> write_data_dir(f"{d}/data", {"wav.scp": {u: f"{d}/{u}.wav" for u in ("s1_a", "s1_b")},
    ...                              "utt2spk": {"s1_a": "s1", "s1_b": "s1"}})
    >>> _ = extract_features(f"{d}/data", f"{d}/dump", FbankConfig(), shard_utts=1, audio_shards=True)
    >>> ds = AudioShardDataset(f"{d}/dump", streams=["spk"])
    >>> ds.utt_ids, ds.num_frames
    (['s1_a', 's1_b'], [48, 23])
    >>> item = ds[1]
    >>> item["utt"], tuple(item["feats"].shape), item["spk"]
    ('s1_b', (23, 80), 's1')
    >>> tuple(AudioShardDataset(f"{d}/dump", return_wave=True)[1]["wave"].shape)
    (4000,)
    """

    SCP_FILE = AUDIO_SCP

    def __init__(self, dump_dir, streams=(), max_frames=None, min_frames=1, utts=None, return_wave=False):
        dump_dir = os.fspath(dump_dir)
        clash = [name for name in streams if name in WAVE_KEYS] if return_wave else []
        if clash:
            raise ValueError(f"stream name '{clash[0]}' clashes with an item key {WAVE_KEYS}")
        super().__init__(dump_dir, streams=streams, max_frames=max_frames, min_frames=min_frames, utts=utts)
        self.fbank = read_fbank_config(self.dump_dir)
        self.return_wave = return_wave

    def __getitem__(self, i):
        """dict(utt=str, feats=FloatTensor (T, F) or wave=FloatTensor (N,), <stream>=str per stream)."""
        if not self.return_wave:
            return super().__getitem__(i)
        item = {"utt": self.utt_ids[i], "wave": torch.from_numpy(self._wave(i)[0])}
        for name, values in self._stream_values.items():
            item[name] = values[i]
        return item

    def _wave(self, i):
        """(samples, FeatsReadError message prefix) of item ``i``, its frame count checked."""
        entry, where = self.entries[i], self._where(i)
        try:
            # at most the samples of one frame more than utt2num_frames says (checked before decoding)
            most = (self.num_frames[i] + 1) * self.fbank.shift_samples + self.fbank.window_samples
            wave = decode_member(read_member(entry), self.fbank.sample_rate, max_samples=most)
        except (OSError, ValueError, AudioError) as e:  # a missing tar, a bad member, undecodable audio
            raise FeatsReadError(f"{where}: cannot read audio from '{entry}': {type(e).__name__}: {e}") from e
        frames = expected_num_frames(len(wave), self.fbank)
        if frames != self.num_frames[i]:
            raise FeatsReadError(f"{where}: the audio from '{entry}' gives {frames} frames ({len(wave)} samples), "
                                 f"utt2num_frames says {self.num_frames[i]}; extract the dump again")
        return wave, where

    def _load(self, i):
        """The filterbank of item ``i``, FloatTensor (T, F); FeatsReadError naming the utterance."""
        wave, where = self._wave(i)
        try:
            feats = compute_fbank(wave, self.fbank)
        except ValueError as e:  # NaN/inf: a damaged or foreign member
            raise FeatsReadError(f"{where}: {e}") from None
        return torch.from_numpy(np.ascontiguousarray(feats))


def collate_waves(items, pad_multiple=1):
    """Pad a list of waveform items (``AudioShardDataset(..., return_wave=True)``) into a batch.

    Arguments
    ---------
    items : list of dict
        ``utt``, ``wave`` (N,) and any stream strings.
    pad_multiple : int
        Round the padded length up to a multiple of this many samples.

    Returns
    -------
    dict
        ``utt`` (list of str), ``wave`` (B, N_max) float32 zero-padded after each utterance's
        end, ``wave_lengths`` (B,) int64 samples, and for each stream a list of str.

    Example
    -------
    >>> b = collate_waves([{"utt": "a", "wave": torch.ones(3), "lang": "hrv"},
    ...                    {"utt": "b", "wave": torch.ones(5), "lang": "srp"}])
    >>> b["utt"], tuple(b["wave"].shape), b["wave_lengths"].tolist(), b["lang"]
    (['a', 'b'], (2, 5), [3, 5], ['hrv', 'srp'])
    >>> b["wave"][0].tolist()
    [1.0, 1.0, 1.0, 0.0, 0.0]
    """
    if not items:
        raise ValueError("collate_waves: empty batch")
    waves = [item["wave"] for item in items]
    lengths = torch.tensor([w.shape[0] for w in waves], dtype=torch.long)
    size = -(-int(lengths.max()) // pad_multiple) * pad_multiple
    padded = torch.zeros((len(waves), size), dtype=torch.float32)
    for b, w in enumerate(waves):
        padded[b, : w.shape[0]] = w
    batch = {"utt": [item["utt"] for item in items], "wave": padded, "wave_lengths": lengths}
    for key in items[0]:
        if key not in ("utt", "wave"):
            batch[key] = [item[key] for item in items]
    return batch
