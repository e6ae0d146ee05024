"""SpeechBrain 1.1.2's BEST-RQ pretraining step, built from SpeechBrain's own classes, for speed
comparisons with :class:`masr.ssl.bestrq.BestRQ` (``benchmarks/pretrain_step.py --compare
speechbrain``).

What it mirrors
---------------
SpeechBrain's recipe ``recipes/LibriSpeech/self-supervised-learning/BEST-RQ/``
(``hparams/BEST-RQ.yaml`` and ``train.py``, authors Ryan Whetten, Jarod Duret), read at
github.com/speechbrain/speechbrain ``develop`` @ 9c826ef3 (2026-04-03); the yaml was last changed
in 20ee80a6 (2025-05-28, "Streaming recipe for BestRQ"), ``train.py`` in 0dbaf795 (2025-10-07,
blank lines only); both are identical on ``main`` (v1.1.0, 638ffd6c).
The helper :func:`speechbrain.lobes.models.BESTRQ.compute_mask` (called by the recipe's collate
function ``brq_mask_collate_fn``), ``RandomProjectionQuantizer``, ``ConvolutionFrontEnd`` and the
conformer classes installed here (speechbrain 1.1.2) are the ones used; their source is the same
as at that commit (``TransformerASR.py`` differs by one line: 1.1.2 passes ``max_len`` to
``length_to_mask``). Everything below is what ``BestRQBrain.compute_forward`` and
``compute_objectives`` compute per training batch, in the same order:

1. ``normalize``: ``InputNormalization(norm_type="sentence")`` of the filterbanks, with the
   relative lengths (per-utterance mean and std over the valid frames).
2. ``pad_feats``: zero-pad the time axis to a multiple of 4 (``pad_to_divisible_by``).
3. Targets: ``mask_idx = mask[::4] // 4``; the normalised frames, 4 consecutive 10 ms frames
   stacked (80 x 4 = 320 = ``p_input``), at the masked 40 ms frames only, go through the frozen
   ``RandomProjectionQuantizer(320, cb_dim=16, cb_vocab=8192)`` (Xavier projection, L2-normalised
   random codebook; nearest entry by the L2 distance to every entry, a (B, V, masked frames, 16)
   tensor).
4. Masking: the masked 10 ms input frames (the same indices for the whole batch) are replaced by
   noise N(``noise_mean`` = 0, ``noise_std`` = 0.1).
5. ``CNN``: ``ConvolutionFrontEnd`` with two blocks of one ``Conv2d`` (3x3, stride 2 in time and
   frequency, 128 then 32 channels, "same" padding), each followed by SpeechBrain's ``LayerNorm``
   over (frequency, channels), ``LeakyReLU`` and dropout 0.1 (the class defaults the yaml keeps).
   Time is subsampled 4x: **one encoder frame per 40 ms (25 Hz)**, as in masr (whose
   ``Conv2dSubsampling`` is two unpadded stride-2 Conv2d + ReLU, then a Linear), but with "same"
   padding, LayerNorm + LeakyReLU and 128/32 channels; the (T/4, 20 x 32 = 640) output is projected to ``d_model`` by
   ``TransformerASR.custom_src_module`` (Linear 640 -> d_model + dropout).
6. ``wrapper``: ``EncoderWrapper(TransformerASR(...))``, i.e. ``TransformerASR.encode`` only:
   ``encoder_module="conformer"``, ``attention_type="RelPosMHAXL"`` (Transformer-XL relative
   positions, ``RelPosEncXL``), ``normalize_before=True``, ``causal=False``,
   ``activation = conformer_activation = GELU`` (the conformer uses ``conformer_activation`` for its
   macaron FFNs and its convolution module), ``num_decoder_layers=0``, ``layerdrop_prob=0``,
   ``kernel_size`` left at TransformerASR's default 31 (the yaml does not set it), key-padding
   mask from the relative lengths, a final LayerNorm.
   Streaming (``streaming: True`` in the yaml): each training step draws a
   ``DynChunkTrainConfig`` from the yaml's ``DynChunkTrainConfigRandomSampler`` (probability 0.6 of
   chunked attention with chunks of 8-32 frames, then probability 0.75 of a left context of 2-32
   chunks); a chunked step also switches the conformer convolutions to Dynamic Chunk Convolution.
   In eval mode the yaml's ``valid_config`` (chunk 8, left context 16) is used, as the recipe
   does for validation.
7. ``linear``: ``speechbrain.nnet.linear.Linear(d_model, cb_vocab)`` on every frame, then the
   logits at ``mask_idx``.
8. Loss: ``F.cross_entropy`` over all (utterance, masked frame) pairs, mean reduction. The masked
   frames lie inside the shortest utterance, so no padding frame enters the loss.

Masking (``compute_mask``): one set of indices for the whole batch, drawn on the 10 ms frames of
the *shortest* utterance L: ``int(mask_prob * L + random.random())`` spans (at least one) of
``mask_length`` frames, starting at distinct multiples of ``mask_length``. With the recipe's
``mask_prob=0.15``, ``mask_length=4``, a span covers exactly one 40 ms frame and 0.15 x 4 = 60 %
of the shortest utterance's 40 ms frames are masked (fewer of the longer ones'). ``mask_span``
here is the recipe's ``mask_length``, in 10 ms input frames; it must be a multiple of 4 for the
recipe's ``mask[::4] // 4`` to address whole 40 ms frames.

Parameter count at the recipe's size (input 80, d_model 576, 12 layers, 8 heads, d_ffn 2048,
kernel 31, codebook 8192 x 16): **94,029,024** (94.0 M): CNN 49,696, TransformerASR (input
projection + 12 conformer layers + final norm) 89,252,544, linear head 4,726,784; the quantizer's
projection and codebook are buffers. SpeechBrain states "94M parameters" for this model in
``recipes/Libri-Light/self-supervised-learning/BEST-RQ/README.md`` (its yaml has the same model
section as the LibriSpeech one); ``tests/test_speechbrain_bestrq.py`` checks the count.

Where this differs from the recipe, and why
-------------------------------------------
- Input: log-mel filterbanks (B, T, input_dim) and absolute frame counts, not waveforms: the
  recipe computes ``Fbank(n_mels=80)`` on the GPU inside the step; masr's step also starts from
  filterbanks, so both sides are timed from the same input. The relative lengths the recipe
  passes (``wav_lens``) are ``lengths / T`` here (T before ``pad_feats``, as the recipe's are
  relative to the unpadded batch).
- The mask is drawn inside ``forward`` (with ``lengths.tolist()``, a host synchronisation when
  lengths live on a GPU), whereas the recipe draws it in the data loader's collate function; it
  costs one small CPU ``torch.arange`` per mask (0.15 x the shortest length: 75 for 5 s).
- ``forward`` does not modify ``feats`` (the recipe's in-place noise write goes to the normalised
  copy, as there).
- Input dimension: the yaml hard-codes ``input_shape: (8, 10, 80)`` for the CNN and
  ``input_size: 640`` for the transformer; here both follow ``input_dim`` (the CNN output size is
  measured by a dummy forward). The quantizer input is ``4 * input_dim``.
- Sizes are parameters (``d_model``, ``num_layers``, ``nhead``, ``d_ffn``, ``kernel_size``,
  ``codebook_size``, ``codebook_dim``, ``dropout`` = the yaml's ``transformer_dropout``,
  ``mask_prob``, ``mask_span``); every other choice is the recipe's. ``tgt_vocab`` (the yaml's
  ``output_neurons: 2048``) is passed but unused, as in the recipe (no decoder).
- Not part of the module (the caller's business, as in the benchmark): bf16 autocast
  (``precision: bf16``), AdamW (lr 8e-4, betas (0.9, 0.98), eps 1e-9, weight decay 0.01), Noam
  warm-up (25k steps), gradient clipping (``max_grad_norm: 10``), gradient accumulation (2).
- ``streaming`` is an attribute of the returned module (default ``True``, the yaml's value);
  ``model.streaming = False`` gives the recipe's ``streaming: False`` (full context every step).
  With it on, each step's attention mask and convolution path are random, as in the recipe.

Example
-------
>>> _ = torch.manual_seed(0); random.seed(0)
>>> model = build_speechbrain_bestrq(input_dim=20, d_model=32, num_layers=1, nhead=2, d_ffn=64,
...                                  kernel_size=3, codebook_size=16)
>>> loss = model(torch.randn(2, 100, 20), torch.tensor([100, 61]))
>>> loss.shape, bool(torch.isfinite(loss))
(torch.Size([]), True)
>>> loss.backward()
>>> model.frame_shift_ms
40
"""

import random

import torch
import torch.nn.functional as F
from speechbrain.core import Stage
from speechbrain.lobes.models.BESTRQ import compute_mask
from speechbrain.lobes.models.convolution import ConvolutionFrontEnd
from speechbrain.lobes.models.transformer.TransformerASR import EncoderWrapper, TransformerASR
from speechbrain.nnet.linear import Linear
from speechbrain.nnet.quantisers import RandomProjectionQuantizer
from speechbrain.processing.features import InputNormalization
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig, DynChunkTrainConfigRandomSampler

# The recipe's own settings, from recipes/LibriSpeech/self-supervised-learning/BEST-RQ/hparams/BEST-RQ.yaml
# (speechbrain develop @ 9c826ef3; file last changed in 20ee80a6). kernel_size is not in the yaml:
# TransformerASR's default (31) applies.
RECIPE = {
    "source": "speechbrain/speechbrain recipes/LibriSpeech/self-supervised-learning/BEST-RQ/hparams/BEST-RQ.yaml"
              " @ 9c826ef3 (last changed 20ee80a6)",
    "n_mels": 80,
    "hop_length_ms": 10,
    "frame_shift_ms": 40,  # encoder frames, after the CNN's 4x subsampling
    "d_model": 576,
    "num_layers": 12,
    "nhead": 8,
    "d_ffn": 2048,
    "kernel_size": 31,
    "dropout": 0.1,  # transformer_dropout
    "activation": "GELU",
    "attention_type": "RelPosMHAXL",
    "cnn_out_channels": (128, 32),
    "cnn_input_size": 640,
    "codebook_size": 8192,  # cb_vocab
    "codebook_dim": 16,  # cb_dim
    "quantizer_input": 320,  # p_input = 4 stacked 80-dim frames
    "mask_prob": 0.15,
    "mask_span": 4,  # mask_length, in 10 ms frames
    "noise_mean": 0.0,
    "noise_std": 0.1,
    "streaming": True,
    "max_batch_len_s": 400,  # seconds of audio per GPU batch (dynamic batching)
    "grad_accumulation_factor": 2,
    "total_batch_target_s": 7200,  # "seconds_per_batch * nb_gpus * grad_accumulation ~ 7200 s"
    "precision": "bf16",
    "lr": 8e-4,
    "warmup_steps": 25000,
    "optimizer_step_limit": 300000,
    "max_grad_norm": 10,
    "num_parameters": 94_029_024,  # computed with build_speechbrain_bestrq() at these sizes
}

PAD_TO_DIVISIBLE_BY = 4  # the yaml's pad_to_divisible_by (the CNN's time subsampling)


def pad_feats(feats, divis_by):
    """Zero-pads the time axis of (B, T, C) features to a multiple of ``divis_by``: the recipe's
    ``train.py:pad_feats`` (it lives in the recipe script, not in the package)."""
    padding_needed = (divis_by - (feats.shape[1] % divis_by)) % divis_by
    return F.pad(feats, (0, 0, 0, padding_needed))


class SpeechBrainBestRQ(torch.nn.Module):
    """The recipe's per-step computation: see the module docstring. Built by
    :func:`build_speechbrain_bestrq`; ``forward(feats, lengths)`` returns the scalar loss.

    Arguments
    ---------
    CNN, wrapper, Quantizer, linear, normalize : torch.nn.Module
        The recipe's ``modules`` (same names as in its yaml).
    mask_prob : float
        Masks per 10 ms frame of the shortest utterance (the recipe's ``mask_prob``).
    mask_span : int
        Frames per mask, 10 ms frames (the recipe's ``mask_length``).
    dynchunktrain_config_sampler : DynChunkTrainConfigRandomSampler
        Streaming configuration sampler, used when ``self.streaming`` is True.
    """

    frame_shift_ms = 10 * PAD_TO_DIVISIBLE_BY

    def __init__(self, CNN, wrapper, Quantizer, linear, normalize, mask_prob, mask_span,
                 dynchunktrain_config_sampler, noise_mean=0.0, noise_std=0.1):
        super().__init__()
        self.CNN, self.wrapper, self.Quantizer, self.linear, self.normalize = CNN, wrapper, Quantizer, linear, normalize
        self.mask_prob, self.mask_span = mask_prob, mask_span
        self.noise_mean, self.noise_std = noise_mean, noise_std
        self.dynchunktrain_config_sampler = dynchunktrain_config_sampler
        self.streaming = True

    def forward(self, feats, lengths):
        """Training loss of one batch.

        Arguments
        ---------
        feats : torch.Tensor
            (B, T, input_dim) filterbanks.
        lengths : torch.Tensor
            (B,) valid frames per utterance (absolute).

        Returns
        -------
        torch.Tensor
            Scalar cross-entropy over the masked frames.
        """
        stage = Stage.TRAIN if self.training else Stage.VALID
        dynchunktrain_config = self.dynchunktrain_config_sampler(stage) if self.streaming else None
        # brq_mask_collate_fn: one mask for the batch, from the frame counts (on the host)
        mask = compute_mask(tuple(feats.shape), [int(n) for n in lengths.tolist()], self.mask_prob,
                            self.mask_span).to(feats.device)
        wav_lens = lengths.to(device=feats.device, dtype=torch.float32) / feats.shape[1]

        feats = self.normalize(feats, wav_lens)
        feats = pad_feats(feats, PAD_TO_DIVISIBLE_BY)

        mask_idx = mask[::PAD_TO_DIVISIBLE_BY] // PAD_TO_DIVISIBLE_BY
        B, T, C = feats.shape
        targets = self.Quantizer(feats.view(B, T // PAD_TO_DIVISIBLE_BY, -1)[:, mask_idx, :])

        noise = torch.normal(mean=self.noise_mean, std=self.noise_std, size=(B, mask.shape[0], C),
                             device=feats.device)
        feats[:, mask, :] = noise

        src = self.CNN(feats)
        enc_out = self.wrapper(src, wav_lens, dynchunktrain_config=dynchunktrain_config)
        logits = self.linear(enc_out)[:, mask_idx, :]
        B, T, C = logits.shape
        return F.cross_entropy(logits.reshape(B * T, C), targets.reshape(B * T))


def build_speechbrain_bestrq(input_dim=80, d_model=576, num_layers=12, nhead=8, d_ffn=2048,
                             kernel_size=31, codebook_size=8192, codebook_dim=16, dropout=0.1, mask_prob=0.15,
                             mask_span=4) -> torch.nn.Module:
    """SpeechBrain's BEST-RQ recipe model (see the module docstring) at the given sizes; the
    defaults are the recipe's.

    Arguments
    ---------
    input_dim : int
        Filterbank dimension (the recipe: 80).
    d_model, num_layers, nhead, d_ffn, kernel_size : int
        Conformer sizes.
    codebook_size, codebook_dim : int
        Quantizer codebook entries and dimension (the yaml's ``cb_vocab``, ``cb_dim``).
    dropout : float
        The yaml's ``transformer_dropout`` (the CNN keeps its class default 0.1, as in the yaml).
    mask_prob : float
        Masks per 10 ms frame of the batch's shortest utterance.
    mask_span : int
        Frames per mask, in 10 ms input frames (a multiple of 4).

    Returns
    -------
    SpeechBrainBestRQ
        ``model(feats, lengths)`` is the scalar loss.
    """
    if mask_span % PAD_TO_DIVISIBLE_BY:
        raise ValueError(f"mask_span={mask_span}: must be a multiple of {PAD_TO_DIVISIBLE_BY} (10 ms frames), "
                         "the recipe's mask[::4] // 4 addresses whole 40 ms frames")
    cnn = ConvolutionFrontEnd(
        input_shape=(8, 10, input_dim),
        num_blocks=2,
        num_layers_per_block=1,
        out_channels=(128, 32),
        kernel_sizes=(3, 3),
        strides=(2, 2),
        residuals=(False, False),
    )
    with torch.no_grad():
        cnn_out = cnn(torch.zeros(1, 8, input_dim))
    cnn_size = cnn_out.shape[2] * cnn_out.shape[3]  # 640 for 80 mels, the yaml's input_size
    transformer = TransformerASR(
        input_size=cnn_size,
        tgt_vocab=2048,  # output_neurons; unused without a decoder
        d_model=d_model,
        nhead=nhead,
        num_encoder_layers=num_layers,
        num_decoder_layers=0,
        d_ffn=d_ffn,
        dropout=dropout,
        activation=torch.nn.GELU,
        conformer_activation=torch.nn.GELU,
        encoder_module="conformer",
        attention_type="RelPosMHAXL",
        normalize_before=True,
        causal=False,
        layerdrop_prob=0.0,
        kernel_size=kernel_size,
    )
    sampler = DynChunkTrainConfigRandomSampler(
        chunkwise_prob=0.6,
        chunk_size_min=8,
        chunk_size_max=32,
        limited_left_context_prob=0.75,
        left_context_chunks_min=2,
        left_context_chunks_max=32,
        valid_config=DynChunkTrainConfig(chunk_size=8, left_context_size=16),
    )
    return SpeechBrainBestRQ(
        CNN=cnn,
        wrapper=EncoderWrapper(transformer),
        Quantizer=RandomProjectionQuantizer(input_dim=PAD_TO_DIVISIBLE_BY * input_dim, cb_dim=codebook_dim,
                                            cb_vocab=codebook_size),
        linear=Linear(input_size=d_model, n_neurons=codebook_size),
        normalize=InputNormalization(norm_type="sentence"),
        mask_prob=mask_prob,
        mask_span=mask_span,
        dynchunktrain_config_sampler=sampler,
    )


def num_parameters(model):
    """Trainable parameters of a model (the quantizer's are buffers and not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


if __name__ == "__main__":  # pragma: no cover - quick look at the recipe-sized model
    torch.manual_seed(0)
    random.seed(0)
    print(f"recipe size: {num_parameters(build_speechbrain_bestrq()):,} parameters")
