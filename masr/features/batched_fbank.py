"""Kaldi-compatible log-mel filterbanks of a whole padded batch at once, on any device.

Why it exists: pretraining on hundreds of thousands of hours reads raw audio from shards and
computes the features on the fly, on the GPU, one padded batch at a time, instead of storing
them. :class:`BatchedFbank` gives, for every valid frame, the same values as
:func:`masr.features.fbank.compute_fbank` of that utterance alone (float32 rounding aside,
well under 1e-4), i.e. the features that ``masr.features.extract`` stores, so a model trained
on either can be fed the other; frames past an utterance's end are exactly 0.

It follows ``torchaudio.compliance.kaldi.fbank`` step by step, as ``compute_fbank`` calls it:
samples scaled by 32768, ``snip_edges`` framing, per-frame DC offset removal, pre-emphasis
(0.97, the first sample of a frame uses itself), povey window, zero padding to the next power
of two, power spectrum, mel filterbank (``kaldi.get_mel_banks``), ``log(max(x, eps))``.

Example
-------
>>> fb = BatchedFbank(FbankConfig())
>>> feats, frames = fb(torch.zeros(2, 16000).uniform_(-0.1, 0.1), torch.tensor([16000, 8000]))
>>> feats.shape, frames.tolist(), bool(feats[1, 48:].eq(0).all())
(torch.Size([2, 98, 80]), [98, 48], True)
"""

import torch
import torchaudio.compliance.kaldi as kaldi

from masr.features.fbank import FbankConfig

__all__ = ["BatchedFbank", "batched_num_frames"]

# Kaldi's defaults, as compute_fbank leaves them to torchaudio.
PREEMPHASIS = 0.97
SCALE = 32768.0


def batched_num_frames(lengths, config: FbankConfig):
    """:func:`masr.features.fbank.expected_num_frames` of a tensor of lengths (``snip_edges``).

    Arguments
    ---------
    lengths : torch.Tensor
        Samples per utterance, int64, shape (B,).
    config : FbankConfig

    Returns
    -------
    torch.Tensor
        Frames per utterance, int64, shape (B,); 0 where an utterance is shorter than one window.

    Example
    -------
    >>> batched_num_frames(torch.tensor([16000, 400, 399, 0]), FbankConfig()).tolist()
    [98, 1, 0, 0]
    """
    lengths = torch.as_tensor(lengths, dtype=torch.int64)
    win, shift = config.window_samples, config.shift_samples
    frames = 1 + torch.div(lengths - win, shift, rounding_mode="floor")
    return torch.where(lengths >= win, frames, torch.zeros_like(frames))


class BatchedFbank(torch.nn.Module):
    """Log-mel filterbanks of a zero-padded batch, equal per utterance to ``compute_fbank``.

    Arguments
    ---------
    config : FbankConfig
        The options of the stored features; ``dither`` must be 0 (dither is random, so the
        features would differ from the stored ones).

    Example
    -------
    >>> fb = BatchedFbank(FbankConfig(num_mel_bins=40, sample_rate=8000))
    >>> waves = torch.zeros(3, 4000).uniform_(-0.5, 0.5)
    >>> feats, frames = fb(waves, torch.tensor([4000, 1000, 100]))
    >>> feats.shape, feats.dtype, frames.tolist()
    (torch.Size([3, 48, 40]), torch.float32, [48, 11, 0])
    """

    def __init__(self, config: FbankConfig):
        super().__init__()
        if config.dither != 0.0:
            raise ValueError(f"BatchedFbank needs dither=0 (got {config.dither}): on-the-fly features must "
                             f"equal the stored ones, and dither adds random noise")
        self.config = config
        self.window_size = config.window_samples
        self.shift = config.shift_samples
        if self.window_size < 2 or self.shift < 1:
            raise ValueError(f"window of {self.window_size} and shift of {self.shift} samples: "
                             f"frame_length/frame_shift too small for {config.sample_rate} Hz")
        self.fft_size = kaldi._next_power_of_2(self.window_size)
        window = torch.hann_window(self.window_size, periodic=False, dtype=torch.float32).pow(0.85)
        self.register_buffer("window", window, persistent=False)
        banks, _ = kaldi.get_mel_banks(config.num_mel_bins, self.fft_size, float(config.sample_rate),
                                       config.low_freq, config.high_freq, 100.0, -500.0, 1.0)
        # (F, fft_size // 2 + 1): kaldi pads the Nyquist column with zeros.
        banks = torch.nn.functional.pad(banks.to(torch.float32), (0, 1))
        self.register_buffer("mel_banks", banks, persistent=False)
        self.eps = torch.finfo(torch.float32).eps

    def forward(self, waves, lengths):
        """Filterbanks of every utterance of the batch.

        Arguments
        ---------
        waves : torch.Tensor
            float samples in [-1, 1], zero-padded, shape (B, N).
        lengths : torch.Tensor
            Valid samples per utterance, int64, shape (B,), each <= N.

        Returns
        -------
        feats : torch.Tensor
            float32, shape (B, T, num_mel_bins), T = max of ``frame_lengths``; frames at or past
            an utterance's ``frame_lengths`` are exactly 0.
        frame_lengths : torch.Tensor
            int64, shape (B,), :func:`batched_num_frames` of ``lengths`` (0 for an utterance
            shorter than one window).

        Example
        -------
        >>> feats, frames = BatchedFbank(FbankConfig())(torch.zeros(1, 560), torch.tensor([560]))
        >>> feats.shape, frames.tolist(), round(feats[0, 0, 0].item(), 2)
        (torch.Size([1, 2, 80]), [2], -15.94)
        """
        if waves.dim() != 2:
            raise ValueError(f"waves must be (B, N), got shape {tuple(waves.shape)}")
        lengths = torch.as_tensor(lengths, device=waves.device).to(torch.int64)
        if lengths.shape != waves.shape[:1]:
            raise ValueError(f"lengths must be ({waves.shape[0]},), got shape {tuple(lengths.shape)}")
        batch, num_samples = waves.shape
        frame_lengths = batched_num_frames(lengths, self.config)
        # One device sync for both maxima.
        num_frames, longest = torch.stack((frame_lengths, lengths)).amax(dim=1).tolist() if batch else (0, 0)
        if longest > num_samples:
            raise ValueError(f"a length exceeds the {num_samples} samples of the padded batch")
        num_bins = self.mel_banks.shape[0]
        if num_frames == 0:
            return waves.new_zeros(batch, 0, num_bins, dtype=torch.float32), frame_lengths

        x = waves.to(torch.float32) * SCALE
        # (B, T, W) view: by snip_edges a valid frame covers only samples < its utterance's length.
        frames = x.unfold(1, self.window_size, self.shift)[:, :num_frames]
        # Written in place into the zero-padded FFT input (half the memory traffic of kaldi's steps;
        # the same float32 operations, so the same values).
        fft_input = x.new_zeros(batch, num_frames, self.fft_size)
        body = fft_input[..., :self.window_size]
        torch.sub(frames, frames.mean(dim=2, keepdim=True), out=body)  # DC offset
        previous = body[..., :-1] * PREEMPHASIS
        body[..., :1].sub_(body[..., :1] * PREEMPHASIS)  # the first sample uses itself
        body[..., 1:].sub_(previous)
        body.mul_(self.window)
        spectrum = torch.fft.rfft(fft_input).abs().square_()  # (B, T, fft_size // 2 + 1)
        feats = torch.mm(spectrum.reshape(-1, spectrum.shape[-1]), self.mel_banks.T)
        feats = feats.clamp_min_(self.eps).log_().reshape(batch, num_frames, num_bins)
        valid = torch.arange(num_frames, device=waves.device) < frame_lengths[:, None]
        return feats.masked_fill_(~valid[..., None], 0.0), frame_lengths

