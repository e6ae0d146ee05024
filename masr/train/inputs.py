"""What a pretraining run reads: stored filterbanks, or audio shards with filterbanks computed on
the fly.

Two config keys choose (both declared in every pretraining YAML):

- ``feature_source: feats``: the dump dir holds the features stage's arks (``feats.scp``), read
  by :class:`masr.data.dataset.FeatsDataset`: fastest per step, 115 MB of disk per hour of audio.
- ``feature_source: audio_shards``: the dump dir holds the encoded audio in shuffled tar shards
  (``audio.scp``, written by ``masr.features.extract --audio-shards``; FLAC or Opus, a few MB
  per hour), read by :class:`masr.features.onthefly.AudioShardDataset`, which computes the same
  filterbanks as the features stage (its ``fbank.json``, and the model's CMVN of ``cmvn.ark``).
  ``fbank_device`` says where:

  - ``cpu``: in the DataLoader workers (``num_workers`` of them, one utterance at a time);
  - ``cuda``: on the training GPU, one padded batch at once
    (:class:`masr.features.batched_fbank.BatchedFbank`); the workers then only read and decode.

Batches, their order and the sampler's resumable state are the same for both sources (the
sampler sees the same frame counts, from ``utt2num_frames``), so exact resume, weighted sampling
of a mix and sharded DDP (``sharded: true``: each rank reads its own tar shards) work alike.
"""

import functools

import torch

from masr.data.dataset import FeatsDataset, collate_feats
from masr.features.fbank import expected_num_frames

#: Values of the ``feature_source`` and ``fbank_device`` config keys.
FEATURE_SOURCES = ("feats", "audio_shards")
FBANK_DEVICES = ("cpu", "cuda")


def check_input_settings(feature_source, fbank_device, device):
    """Raise ValueError on an unknown ``feature_source`` / ``fbank_device``, or ``fbank_device: cuda``
    when training does not run on a CUDA device."""
    if feature_source not in FEATURE_SOURCES:
        raise ValueError(f"feature_source must be one of {FEATURE_SOURCES}, got {feature_source!r}")
    if fbank_device not in FBANK_DEVICES:
        raise ValueError(f"fbank_device must be one of {FBANK_DEVICES}, got {fbank_device!r}")
    if fbank_device == "cuda" and feature_source != "audio_shards":
        raise ValueError("fbank_device: cuda computes filterbanks from audio: it needs feature_source: audio_shards")
    if fbank_device == "cuda" and device.type != "cuda":
        raise ValueError(f"fbank_device: cuda, but training runs on {device}; use fbank_device: cpu")


def collate_waves_with_frames(items, fbank_config):
    """:func:`masr.features.onthefly.collate_waves`, plus ``lengths``: each utterance's frame count
    (what the trainer counts, and what the batched filterbank gives back)."""
    from masr.features.onthefly import collate_waves

    batch = collate_waves(items)
    batch["lengths"] = torch.tensor([expected_num_frames(int(n), fbank_config) for n in batch["wave_lengths"]],
                                    dtype=torch.long)
    return batch


class OnDeviceFbank(torch.nn.Module):
    """Turn a batch of padded waveforms into the batch of filterbanks the model takes, on the batch's
    device (a GPU), outside autocast: features are computed in float32 as the features stage does.

    Arguments
    ---------
    fbank_config : masr.features.fbank.FbankConfig
        The dump dir's filterbank options.
    pad_multiple : int
        Round the padded number of frames up to a multiple of this (as ``collate_feats`` does).
    """

    def __init__(self, fbank_config, pad_multiple=1):
        super().__init__()
        from masr.features.batched_fbank import BatchedFbank

        self.fbank = BatchedFbank(fbank_config)
        self.pad_multiple = pad_multiple

    def forward(self, batch):
        waves = batch["wave"]
        with torch.autocast(waves.device.type, enabled=False):
            feats, lengths = self.fbank(waves.float(), batch["wave_lengths"])
        extra = -feats.shape[1] % self.pad_multiple
        if extra:
            feats = torch.nn.functional.pad(feats, (0, 0, 0, extra))
        out = {k: v for k, v in batch.items() if k not in ("wave", "wave_lengths")}
        out.update(feats=feats, lengths=lengths)
        return out


def pretraining_input(dump_dir, streams, feature_source, fbank_device, max_frames, pad_multiple=1):
    """The dataset and collate function of a pretraining (or validation) dump dir, and the module that
    turns a collated batch into filterbanks on the training device (None when the batch already
    holds them).

    Arguments
    ---------
    dump_dir : str
    streams : list of str
        Metadata streams of each item (``lang``, ``geo``, ...).
    feature_source : str
        ``feats`` or ``audio_shards`` (module docstring).
    fbank_device : str
        ``cpu`` or ``cuda``: where on-the-fly filterbanks are computed.
    max_frames : int or None
        Longer utterances are dropped.
    pad_multiple : int
        Padded lengths are rounded up to a multiple of this.

    Returns
    -------
    dataset : masr.data.dataset.FeatsDataset
        A :class:`~masr.features.onthefly.AudioShardDataset` for audio shards.
    collate : callable
        list of items -> batch (picklable, for DataLoader workers).
    on_device : OnDeviceFbank or None
        For ``fbank_device: cuda``; move it to the device and apply it to each batch there.
    """
    if feature_source == "feats":
        return (FeatsDataset(dump_dir, streams=streams, max_frames=max_frames),
                functools.partial(collate_feats, pad_multiple=pad_multiple), None)
    from masr.features.onthefly import AudioShardDataset

    on_gpu = fbank_device == "cuda"
    dataset = AudioShardDataset(dump_dir, streams=streams, max_frames=max_frames, return_wave=on_gpu)
    if not on_gpu:
        return dataset, functools.partial(collate_feats, pad_multiple=pad_multiple), None
    collate = functools.partial(collate_waves_with_frames, fbank_config=dataset.fbank)
    return dataset, collate, OnDeviceFbank(dataset.fbank, pad_multiple)
