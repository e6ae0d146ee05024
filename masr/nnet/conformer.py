"""Conformer encoder with 4x convolutional time subsampling, invariant to padding.

The output for an utterance does not depend on how much padding it carries in a batch
(or on what the padded frames contain): the same utterance alone or padded in a batch gives
the same valid output frames (up to float round-off), and padded output frames are exactly 0.
This is ensured by

* :class:`Conv2dSubsampling`: valid (unpadded) convolutions, so an output frame
  ``t < output_length`` only sees input frames ``< length``; padded output frames are zeroed;
* self-attention: padded keys are masked (``-inf`` before the softmax, 0 after it);
* the convolution module: padded frames are set to 0 *before* the depthwise convolution, so
  they look exactly like the convolution's own zero padding at the end of a lone utterance
  (SpeechBrain 1.1.2's ``ConvolutionModule`` zeroes them only *after* the depthwise
  convolution, which leaks padding into valid frames; like it, we normalise with LayerNorm, not
  the BatchNorm of the original Conformer and of torchaudio's, whose batch statistics would
  depend on the padding in training mode);
* everything else acts frame by frame.

Two self-attention implementations, chosen with ``attention`` (same interface, same padding
invariance; the state dicts differ):

* ``"relpos_xl"``: SpeechBrain's Transformer-XL relative-position attention
  (:class:`speechbrain.nnet.attention.RelPosMHAXL`) with sinusoidal relative embeddings from
  :class:`RelPositionalEncoding`, a subclass of SpeechBrain's ``RelPosEncXL`` that fixes the
  sign of the sine for negative relative positions (see its docstring). An extra positional
  matmul and a pad-and-reshape "relative shift" around an unfused softmax(QK^T)V. The default
  of the constructors, so that encoders saved before ``attention`` existed load unchanged.
* ``"rope_sdpa"``: rotary position embeddings (Su et al., "RoFormer", 2021) on queries and
  keys, then :func:`torch.nn.functional.scaled_dot_product_attention`, which dispatches to the
  fused kernels (flash / cuDNN / memory-efficient on a GPU, the fused flash kernel on a CPU).
  The rotation makes q.k depend on the positions only through their difference, so attention
  stays relative (and direction-aware) without a positional matmul. Padded keys are excluded
  with a boolean mask. :class:`RoPESelfAttention`.

Reference: Gulati et al., "Conformer: Convolution-augmented Transformer for Speech
Recognition", Interspeech 2020.

Why this module is long: one architecture (subsampling, positional encodings, attention variants,
convolution module, layer, encoder) whose padding invariance is a property of all its parts
together, as in SpeechBrain's and ESPnet's conformer modules.
"""

import torch
import torch.nn.functional as F
from speechbrain.nnet.attention import RelPosEncXL, RelPosMHAXL
from torch import nn

__all__ = [
    "ATTENTION_TYPES",
    "Conv2dSubsampling",
    "ConformerEncoder",
    "ConformerLayer",
    "RelPositionalEncoding",
    "RoPESelfAttention",
    "RotaryEmbedding",
    "apply_rotary",
    "make_pad_mask",
    "num_parameters",
]


def make_pad_mask(lengths, max_len=None):
    """Boolean padding mask, True at padded positions.

    Arguments
    ---------
    lengths : torch.LongTensor
        (B,) number of valid frames of each sequence.
    max_len : int, optional
        Length of the mask (the padded time dimension); default ``lengths.max()``.

    Returns
    -------
    torch.BoolTensor
        (B, max_len), True where ``t >= lengths[b]``.

    Example
    -------
    >>> make_pad_mask(torch.tensor([3, 1]), max_len=4)
    tensor([[False, False, False,  True],
            [False,  True,  True,  True]])
    """
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() > 0 else 0
    steps = torch.arange(max_len, device=lengths.device)
    return steps.unsqueeze(0) >= lengths.unsqueeze(1)


def num_parameters(module):
    """Number of trainable parameters of ``module``.

    Example
    -------
    >>> num_parameters(nn.Linear(4, 3))
    15
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class Conv2dSubsampling(nn.Module):
    """4x time subsampling: two Conv2d(kernel 3, stride 2, no padding)+ReLU over (time, freq),
    then Linear to d_model.

    The convolutions are *valid* (no padding), so output frame ``t`` covers input frames
    ``4t .. 4t+6`` and an output frame ``t < output_lengths(L)`` only sees input frames
    ``< L``: padded input frames (whatever they contain) do not change valid output frames.
    Padded output frames are set to 0.

    Lengths: ``L -> (L-1)//2 -> (L'-1)//2`` (the valid-conv arithmetic ``(L-3)//2 + 1``),
    so an utterance needs at least 7 frames to give 1 output frame. Shorter utterances in a
    batch get output length 0 (all their output frames are padding, i.e. 0); a batch whose
    time dimension is below 7 raises a ``ValueError``.

    Arguments
    ---------
    input_dim : int
        Number of input features F (e.g. filterbank channels); must be >= 7.
    d_model : int
        Output dimension.
    channels : int, optional
        Number of convolution channels; default ``d_model``.

    Example
    -------
    >>> sub = Conv2dSubsampling(input_dim=80, d_model=144)
    >>> x = torch.randn(2, 100, 80)
    >>> y, lengths = sub(x, torch.tensor([100, 60]))
    >>> y.shape
    torch.Size([2, 24, 144])
    >>> lengths
    tensor([24, 14])
    """

    min_frames = 7

    def __init__(self, input_dim, d_model, channels=None):
        super().__init__()
        if input_dim < self.min_frames:
            raise ValueError(
                f"input_dim must be >= {self.min_frames} for two valid 3x3 stride-2 "
                f"convolutions, got {input_dim}"
            )
        channels = d_model if channels is None else channels
        self.input_dim = input_dim
        self.d_model = d_model
        self.channels = channels
        self.conv1 = nn.Conv2d(1, channels, kernel_size=3, stride=2)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=2)
        freq_out = ((input_dim - 1) // 2 - 1) // 2
        self.out = nn.Linear(channels * freq_out, d_model)

    @staticmethod
    def output_lengths(lengths):
        """Number of valid output frames for ``lengths`` input frames (0 when < 7).

        Arguments
        ---------
        lengths : torch.LongTensor
            (B,) input lengths.

        Returns
        -------
        torch.LongTensor
            (B,) ``((L - 1) // 2 - 1) // 2``, clamped at 0.

        Example
        -------
        >>> Conv2dSubsampling.output_lengths(torch.tensor([0, 6, 7, 10, 11, 100]))
        tensor([ 0,  0,  1,  1,  2, 24])
        """
        lengths = torch.div(lengths - 1, 2, rounding_mode="floor").clamp(min=0)
        return torch.div(lengths - 1, 2, rounding_mode="floor").clamp(min=0)

    def forward(self, x, lengths):
        """Subsample ``x`` in time by 4 and project to ``d_model``.

        Arguments
        ---------
        x : torch.Tensor
            (B, T, F) input features; frames ``>= lengths[b]`` are ignored.
        lengths : torch.LongTensor
            (B,) number of valid input frames.

        Returns
        -------
        y : torch.Tensor
            (B, T', d_model) with ``T' = output_lengths(T)``; padded frames are 0.
        out_lengths : torch.LongTensor
            (B,) number of valid output frames.
        """
        if x.dim() != 3 or x.size(-1) != self.input_dim:
            raise ValueError(f"expected input (B, T, {self.input_dim}), got {tuple(x.shape)}")
        if x.size(1) < self.min_frames:
            raise ValueError(
                f"Conv2dSubsampling needs at least {self.min_frames} time frames "
                f"(one output frame), got a batch of {x.size(1)}"
            )
        y = F.relu(self.conv1(x.unsqueeze(1)))  # (B, C, T', F')
        y = F.relu(self.conv2(y))  # (B, C, T'', F'')
        b, c, t, f = y.shape
        y = self.out(y.transpose(1, 2).reshape(b, t, c * f))
        out_lengths = self.output_lengths(lengths)
        y = y.masked_fill(make_pad_mask(out_lengths, t).unsqueeze(-1), 0.0)
        return y, out_lengths


class RelPositionalEncoding(RelPosEncXL):
    """Sinusoidal relative positional embeddings for :class:`RelPosMHAXL`, direction-aware.

    Row ``m`` of the (1, 2T-1, D) output encodes the relative position ``r = T-1-m``
    (query index minus key index, as ``RelPosMHAXL.rel_shift`` expects) as
    ``[sin(r w_0), cos(r w_0), sin(r w_1), ...]`` (the ESPnet / Transformer-XL convention).
    SpeechBrain 1.1.2's ``RelPosEncXL`` uses ``sin(|r| w)`` for both signs, i.e. the same
    embedding for ``r`` and ``-r``, so attention cannot tell left from right context through
    the position term; this subclass restores the sign of the sine for ``r < 0``.

    Arguments
    ---------
    emb_dim : int
        Embedding dimension (even).

    Example
    -------
    >>> pe = RelPositionalEncoding(8)(torch.zeros(2, 5, 8))
    >>> pe.shape
    torch.Size([1, 9, 8])
    >>> torch.equal(pe[0, 2, 0::2], -pe[0, 6, 0::2])  # r = +2 vs r = -2
    True
    """

    @torch.no_grad()
    def make_pe(self, seq_len: int):
        """Positional embeddings (1, 2*seq_len-1, emb_dim) for relative positions
        ``seq_len-1, ..., 0, ..., -(seq_len-1)``."""
        pe = super().make_pe(seq_len).clone()
        pe[:, seq_len:, 0::2] = -pe[:, seq_len:, 0::2]
        return pe


def apply_rotary(x, cos, sin):
    """Rotate consecutive channel pairs of ``x`` by position-dependent angles (RoPE).

    Channels ``2i`` and ``2i+1`` of the frame at position ``t`` are rotated by ``t * w_i``:
    ``(a, b) -> (a cos - b sin, a sin + b cos)``. For rotated queries and keys,
    ``<R_s q, R_t k> = <q, R_{t-s} k>``: the attention score depends on the positions only
    through ``t - s``.

    Arguments
    ---------
    x : torch.Tensor
        (B, H, T, d) queries or keys, ``d`` even.
    cos, sin : torch.Tensor
        (T, d // 2) from :class:`RotaryEmbedding`.

    Returns
    -------
    torch.Tensor
        (B, H, T, d), dtype of ``x``.

    Example
    -------
    >>> cos, sin = RotaryEmbedding(2)(3, torch.device("cpu"))
    >>> apply_rotary(torch.tensor([[[[1.0, 0.0]] * 3]]), cos, sin)[0, 0, :, 0]
    tensor([ 1.0000,  0.5403, -0.4161])
    """
    pairs = x.float().unflatten(-1, (-1, 2))
    a, b = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1)
    return rotated.flatten(-2).to(x.dtype)


class RotaryEmbedding(nn.Module):
    """Angles of rotary position embeddings: ``t * w_i``, ``w_i = base^(-2i/d)``.

    Arguments
    ---------
    head_dim : int
        Channels per attention head (even).
    base : float
        Wavelength base (RoFormer: 10000).

    Example
    -------
    >>> cos, sin = RotaryEmbedding(8)(5, torch.device("cpu"))
    >>> cos.shape, float(cos[0, 0]), float(sin[1, 0])  # position 0 is not rotated
    (torch.Size([5, 4]), 1.0, 0.8414709568023682)
    """

    def __init__(self, head_dim, base=10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head dimension, got {head_dim}")
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, length, device):
        """(cos, sin), each (length, head_dim // 2) float32, for positions 0 .. length-1."""
        angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), self.inv_freq.to(device))
        return angles.cos(), angles.sin()


class RoPESelfAttention(nn.Module):
    """Multi-head self-attention with rotary positions and fused scaled-dot-product attention.

    One projection gives queries, keys and values; queries and keys are rotated
    (:func:`apply_rotary`); :func:`torch.nn.functional.scaled_dot_product_attention` computes
    softmax(QK^T / sqrt(d)) V with padded keys masked out, and dropout on the attention weights
    while training.

    Arguments
    ---------
    d_model : int
        Model dimension.
    nhead : int
        Number of heads (must divide ``d_model``; ``d_model / nhead`` even).
    dropout : float
        Dropout on the attention weights (training only).

    Example
    -------
    >>> att = RoPESelfAttention(16, 2)
    >>> x = torch.randn(2, 7, 16)
    >>> rope = RotaryEmbedding(8)(7, x.device)
    >>> att(x, make_pad_mask(torch.tensor([7, 4])), rope).shape
    torch.Size([2, 7, 16])
    """

    def __init__(self, d_model, nhead, dropout=0.0):
        super().__init__()
        if d_model % nhead:
            raise ValueError(f"nhead={nhead} must divide d_model={d_model}")
        self.nhead, self.head_dim, self.dropout = nhead, d_model // nhead, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x, key_padding_mask, rope):
        """Attend.

        Arguments
        ---------
        x : torch.Tensor
            (B, T, D).
        key_padding_mask : torch.BoolTensor or None
            (B, T), True at padded frames (never attended to). A row needs one valid frame.
        rope : tuple of torch.Tensor
            (cos, sin) of :class:`RotaryEmbedding` for T positions.

        Returns
        -------
        torch.Tensor
            (B, T, D).
        """
        batch, time, dim = x.shape
        q, k, v = self.qkv(x).view(batch, time, 3, self.nhead, self.head_dim).permute(2, 0, 3, 1, 4)
        cos, sin = rope
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, time, dim))


#: Values of the ``attention`` argument of :class:`ConformerLayer` / :class:`ConformerEncoder`.
ATTENTION_TYPES = ("relpos_xl", "rope_sdpa")


def _check_attention(attention):
    if attention not in ATTENTION_TYPES:
        raise ValueError(f"attention must be one of {', '.join(ATTENTION_TYPES)}; got '{attention}'")


class _FeedForward(nn.Module):
    """Pre-norm Conformer feed-forward module: LayerNorm, Linear, Swish, Dropout, Linear,
    Dropout."""

    def __init__(self, d_model, d_ffn, dropout):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d_model),
            nn.Linear(d_model, d_ffn),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(d_ffn, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.net(x)


class _ConvModule(nn.Module):
    """Pre-norm Conformer convolution module with padded frames zeroed before the depthwise
    convolution: LayerNorm, pointwise conv (2D), GLU, zero padding, depthwise conv,
    LayerNorm, Swish, pointwise conv, Dropout."""

    def __init__(self, d_model, kernel_size, dropout):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.norm_in = nn.LayerNorm(d_model)
        self.pointwise_in = nn.Linear(d_model, 2 * d_model)
        self.depthwise = nn.Conv1d(
            d_model, d_model, kernel_size, padding=kernel_size // 2, groups=d_model
        )
        self.norm_mid = nn.LayerNorm(d_model)
        self.pointwise_out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, pad_mask):
        y = F.glu(self.pointwise_in(self.norm_in(x)), dim=-1)
        if pad_mask is not None:
            y = y.masked_fill(pad_mask.unsqueeze(-1), 0.0)
        y = self.depthwise(y.transpose(1, 2)).transpose(1, 2)
        y = F.silu(self.norm_mid(y))
        return self.dropout(self.pointwise_out(y))


class ConformerLayer(nn.Module):
    """Conformer block (Gulati et al. 2020): x + FFN/2 -> x + MHSA (relative positions)
    -> x + conv module -> x + FFN/2 -> LayerNorm, all sub-modules pre-norm.

    Padded frames never influence valid frames: they are masked as attention keys and set to
    0 before the depthwise convolution (whose normalisation is LayerNorm, not BatchNorm).
    Padded output frames hold unspecified values (:class:`ConformerEncoder` zeroes them).

    Arguments
    ---------
    d_model : int
        Model dimension.
    nhead : int
        Number of attention heads (must divide ``d_model``).
    d_ffn : int
        Hidden size of the feed-forward modules.
    kernel_size : int
        Depthwise convolution kernel size (odd).
    dropout : float
        Dropout in the feed-forward, attention (weights and output) and convolution modules.
    attention : str
        ``"relpos_xl"`` (SpeechBrain's RelPosMHAXL) or ``"rope_sdpa"``
        (:class:`RoPESelfAttention`); see the module docstring.

    Example
    -------
    >>> layer = ConformerLayer(d_model=64, nhead=4, d_ffn=256, kernel_size=15)
    >>> x = torch.randn(2, 30, 64)
    >>> pad_mask = make_pad_mask(torch.tensor([30, 20]))
    >>> pos_embs = RelPositionalEncoding(64)(x)
    >>> layer(x, pad_mask, pos_embs).shape
    torch.Size([2, 30, 64])
    >>> layer = ConformerLayer(d_model=64, nhead=4, d_ffn=256, kernel_size=15, attention="rope_sdpa")
    >>> layer(x, pad_mask, RotaryEmbedding(16)(30, x.device)).shape
    torch.Size([2, 30, 64])
    """

    def __init__(self, d_model, nhead, d_ffn, kernel_size=31, dropout=0.1, attention="relpos_xl"):
        super().__init__()
        _check_attention(attention)
        self.attention_type = attention
        self.ffn1 = _FeedForward(d_model, d_ffn, dropout)
        self.norm_att = nn.LayerNorm(d_model)
        if attention == "relpos_xl":
            self.attention = RelPosMHAXL(d_model, nhead, dropout=dropout)
        else:
            self.attention = RoPESelfAttention(d_model, nhead, dropout=dropout)
        self.dropout_att = nn.Dropout(dropout)
        self.conv = _ConvModule(d_model, kernel_size, dropout)
        self.ffn2 = _FeedForward(d_model, d_ffn, dropout)
        self.norm_out = nn.LayerNorm(d_model)

    def forward(self, x, pad_mask, pos_embs):
        """Apply the block.

        Arguments
        ---------
        x : torch.Tensor
            (B, T, D) input.
        pad_mask : torch.BoolTensor or None
            (B, T), True at padded frames. A row should have at least one valid frame
            (:class:`ConformerEncoder` takes care of empty sequences).
        pos_embs : torch.Tensor or tuple
            ``relpos_xl``: (1, 2T-1, D) relative positional embeddings
            (:class:`RelPositionalEncoding`); ``rope_sdpa``: (cos, sin) of
            :class:`RotaryEmbedding` for T positions.

        Returns
        -------
        torch.Tensor
            (B, T, D).
        """
        x = x + 0.5 * self.ffn1(x)
        y = self.norm_att(x)
        if self.attention_type == "relpos_xl":
            y = self.attention(
                y, y, y, pos_embs=pos_embs, key_padding_mask=pad_mask, return_attn_weights=False
            )
        else:
            y = self.attention(y, pad_mask, pos_embs)
        x = x + self.dropout_att(y)
        x = x + self.conv(x, pad_mask)
        x = x + 0.5 * self.ffn2(x)
        return self.norm_out(x)


class ConformerEncoder(nn.Module):
    """Stack of ConformerLayers (no subsampling inside).

    The relative positional embeddings are computed once per forward pass and shared by all
    layers. The output does not depend on padding: valid frames of an utterance are the same
    alone or padded in a batch (up to float round-off), and padded output frames are exactly
    0. Sequences of length 0 are allowed (all-zero output).

    Arguments
    ---------
    d_model : int
        Model dimension.
    num_layers : int
        Number of :class:`ConformerLayer` blocks.
    nhead : int
        Number of attention heads.
    d_ffn : int
        Hidden size of the feed-forward modules.
    kernel_size : int
        Depthwise convolution kernel size (odd).
    dropout : float
        Dropout rate.
    attention : str
        ``"relpos_xl"`` or ``"rope_sdpa"`` (see the module docstring).

    Example
    -------
    >>> sub = Conv2dSubsampling(input_dim=80, d_model=64)
    >>> enc = ConformerEncoder(d_model=64, num_layers=2, nhead=4, d_ffn=256, kernel_size=15)
    >>> feats = torch.randn(3, 120, 80)
    >>> x, lengths = sub(feats, torch.tensor([120, 90, 50]))
    >>> y = enc(x, lengths)
    >>> y.shape, lengths
    (torch.Size([3, 29, 64]), tensor([29, 21, 11]))
    >>> bool((y[2, 11:] == 0).all())
    True
    >>> enc = ConformerEncoder(d_model=64, num_layers=2, nhead=4, d_ffn=256, kernel_size=15,
    ...                        attention="rope_sdpa")
    >>> enc(x, lengths).shape
    torch.Size([3, 29, 64])
    """

    def __init__(self, d_model, num_layers, nhead, d_ffn, kernel_size=31, dropout=0.1,
                 attention="relpos_xl"):
        super().__init__()
        _check_attention(attention)
        self.attention_type = attention
        if attention == "relpos_xl":
            self.pos_enc = RelPositionalEncoding(d_model)
        else:
            self.pos_enc = RotaryEmbedding(d_model // nhead)
        self.layers = nn.ModuleList(
            ConformerLayer(d_model, nhead, d_ffn, kernel_size=kernel_size, dropout=dropout,
                           attention=attention)
            for _ in range(num_layers)
        )

    def forward(self, x, lengths, num_layers=None):
        """Encode ``x``.

        Arguments
        ---------
        x : torch.Tensor
            (B, T, D) input; frames ``>= lengths[b]`` are ignored.
        lengths : torch.LongTensor
            (B,) number of valid frames.
        num_layers : int or None
            Run only the first ``num_layers`` blocks (the output of an intermediate layer, e.g.
            for probes); None runs them all.

        Returns
        -------
        torch.Tensor
            (B, T, D), padded frames set to 0.
        """
        pad_mask = make_pad_mask(lengths, x.size(1))
        # An empty sequence would mask every attention key (softmax of all -inf: NaN, whose
        # gradient is NaN even after masking). Let it attend to its frame 0 instead; rows are
        # independent and its output is zeroed below, so nothing else sees it.
        att_mask = pad_mask.clone()
        att_mask[:, 0] &= lengths > 0
        if self.attention_type == "relpos_xl":
            pos_embs = self.pos_enc(x).to(dtype=x.dtype)
        else:
            pos_embs = self.pos_enc(x.size(1), x.device)
        if num_layers is not None and not 0 <= num_layers <= len(self.layers):
            raise ValueError(f"num_layers={num_layers}: the encoder has {len(self.layers)} layers")
        for layer in self.layers[:num_layers]:
            # Zero padded frames entering each layer so that they stay bounded (they never
            # reach valid frames anyway).
            x = x.masked_fill(pad_mask.unsqueeze(-1), 0.0)
            x = layer(x, att_mask, pos_embs)
        return x.masked_fill(pad_mask.unsqueeze(-1), 0.0)
