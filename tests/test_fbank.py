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


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_an_error(bad):
    x = np.random.default_rng(3).uniform(-0.5, 0.5, 4000)
    x[1234] = bad
    with pytest.raises(ValueError, match=r"NaN/inf samples \(first at sample 1234\)"):
        compute_fbank(x, FbankConfig())


def test_a_filterbank_that_overflows_is_an_error_not_inf_features():
    # finite samples far outside [-1, 1] overflow float32 in the power spectrum
    x = np.random.default_rng(4).uniform(-1e30, 1e30, 4000)
    with pytest.raises(ValueError, match=r"filterbank holds NaN/inf values \(first at frame 0; "
                                         r"samples up to \S+e\+\d+, expected within \[-1, 1\]\)"):
        compute_fbank(x, FbankConfig())
