"""masr.features.fbank: Kaldi-compatible 80-dim log-mel filterbanks."""

import numpy as np
import pytest

from masr.features.fbank import FbankConfig, compute_fbank, expected_num_frames


@pytest.mark.parametrize("num_samples", [400, 401, 560, 16000, 16123])
def test_shape_follows_kaldi_framing(num_samples):
    cfg = FbankConfig()
    feats = compute_fbank(np.random.default_rng(0).uniform(-0.5, 0.5, num_samples), cfg)
    assert feats.shape == (1 + (num_samples - 400) // 160, 80) == (expected_num_frames(num_samples, cfg), 80)
    assert feats.dtype == np.float32 and np.isfinite(feats).all()


def test_tone_energy_lands_in_the_right_mel_band():
    cfg = FbankConfig()
    t = np.arange(16000) / 16000
    low, high = (compute_fbank(0.3 * np.sin(2 * np.pi * f * t), cfg).mean(axis=0) for f in (300.0, 4000.0))
    assert np.argmax(low) < np.argmax(high)
    assert np.argmax(low) < 20 < np.argmax(high)


def test_deterministic_without_dither():
    x = np.random.default_rng(1).uniform(-0.5, 0.5, 8000)
    np.testing.assert_array_equal(compute_fbank(x, FbankConfig()), compute_fbank(x, FbankConfig()))


def test_too_short_is_an_error():
    with pytest.raises(ValueError, match="shorter than one 25.0 ms window"):
        compute_fbank(np.zeros(100), FbankConfig())


def test_other_dimensions_and_rates():
    cfg = FbankConfig(num_mel_bins=40, sample_rate=8000)
    assert compute_fbank(np.random.default_rng(2).uniform(-1, 1, 8000), cfg).shape == (98, 40)
