"""80-dim log-mel filterbanks, Kaldi-compatible (``torchaudio.compliance.kaldi.fbank``)."""

import dataclasses

import numpy as np
import torch
import torchaudio.compliance.kaldi as kaldi


@dataclasses.dataclass
class FbankConfig:
    """Filterbank options, named as in Kaldi's ``compute-fbank-feats``.

    Arguments
    ---------
    num_mel_bins : int
        Mel channels (feature dimension).
    frame_length, frame_shift : float
        Window length and hop in milliseconds.
    sample_rate : int
        Audio is resampled to this rate before analysis.
    dither : float
        Kaldi's dither; 0 keeps features deterministic.
    low_freq, high_freq : float
        Mel filterbank edges in Hz; ``high_freq <= 0`` is an offset from Nyquist.
    """

    num_mel_bins: int = 80
    frame_length: float = 25.0
    frame_shift: float = 10.0
    sample_rate: int = 16000
    dither: float = 0.0
    low_freq: float = 20.0
    high_freq: float = 0.0

    @property
    def window_samples(self):
        return int(self.sample_rate * self.frame_length / 1000)

    @property
    def shift_samples(self):
        return int(self.sample_rate * self.frame_shift / 1000)


def expected_num_frames(num_samples, config):
    """Frames Kaldi produces for ``num_samples`` (``snip_edges=true``).

    Example
    -------
    >>> expected_num_frames(16000, FbankConfig()), expected_num_frames(100, FbankConfig())
    (98, 0)
    """
    if num_samples < config.window_samples:
        return 0
    return 1 + (num_samples - config.window_samples) // config.shift_samples


def first_non_finite(array):
    """Index along the first axis of the first row (or sample) holding NaN/inf; None if there is none.

    Example
    -------
    >>> first_non_finite(np.array([[0.0, 1.0], [2.0, np.nan]])), first_non_finite(np.zeros(3))
    (1, None)
    """
    bad = ~np.isfinite(np.asarray(array))
    rows = np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1)) if bad.size else []
    return int(rows[0]) if len(rows) else None


def compute_fbank(wave, config):
    """Log-mel filterbank of one utterance.

    Arguments
    ---------
    wave : numpy.ndarray
        float samples in [-1, 1] at ``config.sample_rate``, shape (N,).
    config : FbankConfig

    Returns
    -------
    numpy.ndarray
        float32, shape (T, num_mel_bins), T = ``expected_num_frames(N, config)``; every value finite.

    Raises
    ------
    ValueError
        Fewer samples than one window; NaN/inf samples; or a filterbank that overflows to inf
        (samples far outside [-1, 1]).

    Example
    -------
    >>> cfg = FbankConfig()
    >>> feats = compute_fbank(np.random.default_rng(0).uniform(-0.1, 0.1, 16000), cfg)
    >>> feats.shape, feats.dtype
    ((98, 80), dtype('float32'))
    """
    if expected_num_frames(len(wave), config) == 0:
        raise ValueError(f"{len(wave)} samples is shorter than one {config.frame_length} ms window")
    wave = np.asarray(wave, dtype=np.float32)
    if not np.isfinite(wave).all():
        raise ValueError(f"the audio holds NaN/inf samples (first at sample {first_non_finite(wave)})")
    # Kaldi works on 16-bit sample values; scaling keeps its energy floor and dither meaningful.
    x = torch.as_tensor(wave * 32768.0).unsqueeze(0)
    feats = kaldi.fbank(
        x,
        num_mel_bins=config.num_mel_bins,
        frame_length=config.frame_length,
        frame_shift=config.frame_shift,
        dither=config.dither,
        low_freq=config.low_freq,
        high_freq=config.high_freq,
        sample_frequency=config.sample_rate,
        energy_floor=0.0,
    ).numpy()
    if not np.isfinite(feats).all():
        raise ValueError(f"the filterbank holds NaN/inf values (first at frame {first_non_finite(feats)}; "
                         f"samples up to {np.abs(wave).max():.3g}, expected within [-1, 1])")
    return feats
