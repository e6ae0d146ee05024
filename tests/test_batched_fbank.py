"""masr.features.batched_fbank: a padded batch gives, frame for frame, compute_fbank of each utterance."""

import os

import numpy as np
import pytest
import torch

from masr.features.batched_fbank import BatchedFbank, batched_num_frames
from masr.features.fbank import FbankConfig, compute_fbank, expected_num_frames

pytestmark = pytest.mark.usefixtures("one_thread")

FSDD = "/work/shared/data/fsdd/recordings"
TOL = 1e-4


def pad(utterances):
    """float32 (B, N) zero-padded batch and int64 (B,) lengths of a list of 1-D arrays."""
    lengths = [len(u) for u in utterances]
    waves = np.zeros((len(utterances), max(lengths)), dtype=np.float32)
    for i, u in enumerate(utterances):
        waves[i, :len(u)] = u
    return torch.from_numpy(waves), torch.tensor(lengths, dtype=torch.int64)


def check_batch(utterances, config, device):
    """Runs BatchedFbank on ``device`` and compares with compute_fbank per utterance; returns the max
    abs difference over every valid frame."""
    waves, lengths = pad(utterances)
    fb = BatchedFbank(config).to(device)
    feats, frame_lengths = fb(waves.to(device), lengths.to(device))
    feats, frame_lengths = feats.cpu(), frame_lengths.cpu()
    expected = [expected_num_frames(len(u), config) for u in utterances]
    assert frame_lengths.dtype == torch.int64 and frame_lengths.tolist() == expected
    assert feats.dtype == torch.float32
    assert feats.shape == (len(utterances), max(expected), config.num_mel_bins)
    worst = 0.0
    for i, u in enumerate(utterances):
        n = expected[i]
        assert feats[i, n:].eq(0).all(), f"utterance {i}: padded frames are not exactly 0"
        if n:
            ref = compute_fbank(np.asarray(u, dtype=np.float32), config)
            worst = max(worst, float(np.abs(feats[i, :n].numpy() - ref).max()))
    assert worst < TOL, f"max abs difference {worst:.3g} vs compute_fbank (tolerance {TOL})"
    return worst


def mixed_utterances(config, seed=0):
    rng = np.random.default_rng(seed)
    sr, win, shift = config.sample_rate, config.window_samples, config.shift_samples
    t = np.arange(int(0.7 * sr)) / sr
    return [
        rng.normal(0.0, 0.1, sr + 37).clip(-1, 1),              # noise, length not a multiple of the shift
        0.5 * np.sin(2 * np.pi * 440.0 * t) + 0.01,            # a sine with a DC offset
        rng.uniform(-0.3, 0.3, win),                           # exactly one window
        rng.normal(0.0, 0.05, win + 3 * shift + 11),           # a few frames, ragged end
        rng.normal(0.0, 0.2, int(0.45 * sr) + 1).clip(-1, 1),
    ]


def test_batch_equals_compute_fbank(device):
    cfg = FbankConfig()
    check_batch(mixed_utterances(cfg), cfg, device)


def test_other_bins_and_band_edges(device):
    cfg = FbankConfig(num_mel_bins=40, low_freq=60.0, high_freq=-400.0)
    check_batch(mixed_utterances(cfg, seed=1), cfg, device)
    cfg = FbankConfig(num_mel_bins=40, low_freq=100.0, high_freq=3800.0, sample_rate=8000)
    check_batch(mixed_utterances(cfg, seed=2), cfg, device)


def test_digital_silence_is_log_eps(device):
    cfg = FbankConfig()
    rng = np.random.default_rng(3)
    speech_then_silence = np.concatenate([rng.normal(0, 0.1, 4000), np.zeros(6000), rng.normal(0, 0.1, 3000)])
    check_batch([np.zeros(5000), speech_then_silence, np.zeros(cfg.window_samples)], cfg, device)
    waves, lengths = pad([np.zeros(5000)])
    feats, _ = BatchedFbank(cfg).to(device)(waves.to(device), lengths.to(device))
    assert torch.equal(feats.cpu(), torch.full_like(feats.cpu(), float(np.log(np.finfo(np.float32).eps))))


def test_dither_is_refused():
    with pytest.raises(ValueError, match="dither=0"):
        BatchedFbank(FbankConfig(dither=1.0))


def test_shorter_than_one_window_gives_zero_frames(device):
    cfg = FbankConfig()
    rng = np.random.default_rng(4)
    utterances = [rng.normal(0, 0.1, 3000), rng.normal(0, 0.1, cfg.window_samples - 1), np.zeros(0)]
    check_batch(utterances, cfg, device)
    waves, lengths = pad([rng.normal(0, 0.1, 100), np.zeros(7)])
    feats, frame_lengths = BatchedFbank(cfg).to(device)(waves.to(device), lengths.to(device))
    assert feats.shape == (2, 0, 80) and frame_lengths.tolist() == [0, 0]


def test_vectorised_frame_count():
    cfg = FbankConfig()
    lengths = [0, 1, 399, 400, 401, 559, 560, 16000, 16123]
    expected = [expected_num_frames(n, cfg) for n in lengths]
    assert batched_num_frames(torch.tensor(lengths), cfg).tolist() == expected


def test_length_beyond_the_padded_batch_is_refused():
    with pytest.raises(ValueError, match="exceeds the 500 samples"):
        BatchedFbank(FbankConfig())(torch.zeros(2, 500), torch.tensor([500, 501]))


def test_real_recordings(device):
    if not os.path.isdir(FSDD):
        pytest.skip(f"{FSDD} is absent (the shared data is not part of this repository)")
    import soundfile

    names = ["0_george_0.wav", "3_jackson_10.wav", "7_theo_25.wav", "9_yweweler_49.wav"]
    paths = [os.path.join(FSDD, n) for n in names if os.path.isfile(os.path.join(FSDD, n))]
    if not paths:
        pytest.skip(f"none of {names} in {FSDD}")
    utterances, rates = zip(*(soundfile.read(p, dtype="float32") for p in paths))
    cfg = FbankConfig(sample_rate=rates[0])
    assert set(rates) == {cfg.sample_rate} and all(u.ndim == 1 for u in utterances)
    check_batch(list(utterances), cfg, device)
