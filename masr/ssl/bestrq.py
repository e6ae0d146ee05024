"""BEST-RQ (Chiu et al., "Self-supervised learning with random-projection quantizer for speech
recognition", ICML 2022).

- Targets: normalised filterbanks, ``stack`` consecutive frames concatenated (one target per
  encoder frame after the 4x subsampling), quantized by a frozen random projection + codebook
  (:class:`masr.ssl.quantizer.RandomProjectionQuantizer`); several codebooks give several targets.
- Masking: spans over the target frames (:func:`masr.ssl.masking.span_mask`), applied to the
  input features, whose masked frames are replaced by noise N(0, ``noise_std``^2). The paper
  masks each 10 ms frame with probability 0.01 and spans of 400 ms; the constructor defaults
  express both on 40 ms target frames (``mask_prob=0.04``, ``mask_span=10``: ~1/3 of the frames
  masked, as there). The CPU mini config overrides them (120 ms spans, see its comments).
- Encoder: :class:`masr.nnet.conformer.Conv2dSubsampling` (4x) + a conformer stack.
- Loss: cross-entropy of a softmax head per codebook, on masked, non-padded frames only,
  averaged over those frames and the codebooks.
"""

import torch
import torch.nn.functional as F

from masr.features.cmvn import CMVNStats, GlobalCMVN
from masr.nnet.conformer import Conv2dSubsampling, ConformerEncoder, make_pad_mask
from masr.ssl.base import SSLModel, SSLOutput, masked_prediction_loss
from masr.ssl.masking import span_mask
from masr.ssl.quantizer import RandomProjectionQuantizer


def load_cmvn(cmvn, input_dim):
    """A GlobalCMVN from a ``cmvn.ark`` path, or the identity when ``cmvn`` is None."""
    if cmvn is None:
        stats = CMVNStats(input_dim)
        stats.sum_sq[:] = 1.0
        stats.count = 1
    else:
        stats = CMVNStats.load(cmvn)
        if len(stats.sum) != input_dim:
            raise ValueError(f"{cmvn}: CMVN stats of dimension {len(stats.sum)}, model input_dim is {input_dim}")
    return GlobalCMVN(stats)


class BestRQ(SSLModel):
    """BEST-RQ pretraining model.

    Arguments
    ---------
    input_dim : int
        Filterbank dimension.
    d_model, num_layers, nhead, d_ffn, kernel_size, dropout :
        Conformer sizes (the paper uses w2v-BERT's 0.6B conformer: see the paper-sized config
        ``egs/mini/conf/pretrain_bestrq_paper.yaml``).
    attention : str
        Self-attention of the conformer: ``"relpos_xl"`` or ``"rope_sdpa"``
        (:mod:`masr.nnet.conformer`).
    subsampling_channels : int or None
        Channels of the two convolutions of the 4x subsampling; None: ``d_model``. Their cost grows
        with its square: at d_model 256 the d_model-channel front-end costs more FLOPs than six
        conformer blocks (``benchmarks/pretrain_step.py``).
    stack : int
        Input frames per target frame (= the subsampling factor, 4).
    codebook_dim, codebook_size, num_codebooks : int
        Quantizer settings (paper: 16, 8192, 1).
    mask_prob, mask_span : float, int
        Span masking on target frames (see the module docstring).
    noise_std : float
        Standard deviation of the noise replacing masked input frames.
    quantizer_seed : int
        Seed of the frozen quantizer.
    cmvn : str or None
        ``cmvn.ark`` of the training set (saved with the model as buffers); None = identity.

    Example
    -------
    >>> model = BestRQ(input_dim=20, d_model=32, num_layers=1, nhead=2, d_ffn=64, kernel_size=3,
    ...                codebook_size=16)
    >>> out = model(torch.randn(2, 100, 20), torch.tensor([100, 60]))
    >>> out.frames.shape, out.lengths.tolist(), out.loss.ndim
    (torch.Size([2, 24, 32]), [24, 14], 0)
    >>> model.embed(torch.randn(2, 100, 20), torch.tensor([100, 60])).shape
    torch.Size([2, 32])
    """

    def __init__(self, input_dim=80, d_model=256, num_layers=4, nhead=4, d_ffn=1024, kernel_size=15, dropout=0.1,
                 stack=4, codebook_dim=16, codebook_size=8192, num_codebooks=1, mask_prob=0.04, mask_span=10,
                 noise_std=0.1, quantizer_seed=0, cmvn=None, attention="relpos_xl",
                 subsampling_channels=None):
        super().__init__()
        self.save_hparams(locals())
        if stack != 4:
            raise ValueError(f"stack={stack}: targets must align with the 4x subsampled encoder frames (stack 4)")
        self.stack, self.mask_prob, self.mask_span, self.noise_std = stack, mask_prob, mask_span, noise_std
        self.num_codebooks, self.codebook_size = num_codebooks, codebook_size
        self.cmvn = load_cmvn(cmvn, input_dim)
        self.quantizer = RandomProjectionQuantizer(input_dim * stack, codebook_dim, codebook_size, num_codebooks,
                                                   seed=quantizer_seed)
        self.subsampling = Conv2dSubsampling(input_dim, d_model, channels=subsampling_channels)
        self.encoder = ConformerEncoder(d_model, num_layers, nhead, d_ffn, kernel_size=kernel_size, dropout=dropout,
                                        attention=attention)
        self.head = torch.nn.Linear(d_model, num_codebooks * codebook_size)
        self.d_model = d_model

    def _normalise(self, feats, lengths):
        x = self.cmvn(feats)
        return x.masked_fill(make_pad_mask(lengths, x.shape[1]).unsqueeze(-1), 0.0)

    def targets(self, x, lengths):
        """Quantizer targets of normalised features x (B, T, F): (B, T // stack, num_codebooks),
        and the number of complete target frames per utterance (B,)."""
        batch, time, dim = x.shape
        n = time // self.stack
        stacked = x[:, : n * self.stack].reshape(batch, n, self.stack * dim)
        return self.quantizer(stacked), lengths // self.stack

    @property
    def num_layers(self):
        return len(self.encoder.layers)

    def encode(self, feats, lengths, layer=None):
        x = self._normalise(feats, lengths)
        frames, out_lengths = self.subsampling(x, lengths)
        return SSLOutput(self.encoder(frames, out_lengths, num_layers=layer), out_lengths)

    @torch.compiler.disable
    def _mask(self, x, usable, targets):
        """Draw the span mask over the target frames of ``targets`` (B, T // stack, num_codebooks) and
        replace the masked input frames of x by noise.

        Returns the mask and the targets cut to the encoder's output frames (B, T'), T' =
        ``Conv2dSubsampling.output_lengths(T)`` <= T // stack (the mask is False beyond ``usable``),
        and the noised x. Outside ``torch.compile``'s graphs: cheap, it keeps the masks of a compiled
        model the same random draws as eager execution's, and the compiled encoder graph then gets
        mask and targets of exactly its output length (slicing them to a length computed inside the
        graph would make the graph specialise on every padded length)."""
        mask = span_mask(usable, targets.shape[1], self.mask_prob, self.mask_span)
        input_mask = mask.repeat_interleave(self.stack, dim=1)
        input_mask = F.pad(input_mask, (0, x.shape[1] - input_mask.shape[1]))
        noise = torch.randn_like(x) * self.noise_std
        frames = int(self.subsampling.output_lengths(torch.tensor(x.shape[1])))
        return (mask[:, :frames].contiguous(), targets[:, :frames].contiguous(),
                torch.where(input_mask.unsqueeze(-1), noise, x))

    def forward(self, feats, lengths):
        x = self._normalise(feats, lengths)
        targets, target_lengths = self.targets(x, lengths)
        out_lengths = self.subsampling.output_lengths(lengths)
        # a target frame can be predicted where both the target and an encoder frame exist
        usable = torch.minimum(target_lengths, out_lengths)
        selected, wanted, x = self._mask(x, usable, targets)
        frames, out_lengths = self.subsampling(x, lengths)
        frames = self.encoder(frames, out_lengths)
        # the head only sees the masked frames (~1/3): its cost with an 8192-entry codebook
        # is that of a feed-forward layer
        picked = self.head(frames[selected]).view(-1, self.num_codebooks, self.codebook_size)
        wanted = wanted[selected]  # (M, num_codebooks)
        loss, accuracy, majority = masked_prediction_loss(picked, wanted, frames)
        metrics = {
            "accuracy": accuracy.detach(),
            "majority_baseline": majority.detach(),
            "masked_fraction": (selected.sum() / usable.sum().clamp(min=1)).detach(),
        }
        return SSLOutput(frames, out_lengths, loss, metrics)
