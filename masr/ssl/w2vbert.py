"""w2v-BERT (Chung et al., "w2v-BERT: Combining Contrastive Learning and Masked Language Modeling
for Self-Supervised Speech Pre-Training", ASRU 2021).

w2v-BERT trains, end to end and in one pass, a wav2vec 2.0 contrastive task and a BERT-style
masked prediction task whose targets are the token ids the contrastive task's quantizer learns:

- Feature encoder: :class:`masr.nnet.conformer.Conv2dSubsampling` (two 2D convolutions of
  stride 2, 4x in time) on CMVN-normalised filterbanks, then a LayerNorm.
- Masking: spans over the subsampled frames (:func:`masr.ssl.masking.span_mask`); masked frames
  are replaced by a learned mask embedding.
- Quantizer (:class:`GumbelVectorQuantizer`), on the *unmasked* feature-encoder output: a
  wav2vec 2.0 Gumbel-softmax product quantizer (G groups of V entries; straight-through hard
  Gumbel in training, its temperature annealed with the number of training forwards; argmax in
  eval). Its outputs are the quantized vectors (contrastive targets) and the per-group token ids
  (MLM targets).
- Contrastive module: a linear projection of the masked features + ``num_contrastive_layers``
  conformer blocks. Its output, projected, must pick the quantized vector of the same frame among
  ``num_negatives`` distractors drawn uniformly (with replacement) from the other masked frames of
  the utterance: InfoNCE on cosine similarities / ``contrastive_temp``. As in wav2vec 2.0,
  distractors carrying the positive's code are left out (their logit is -inf), and a codebook
  diversity loss keeps the entries in use.
- MLM module: ``num_mlm_layers`` more conformer blocks on the contrastive module's output; one
  softmax head per group predicts the (detached) token ids at masked frames.
- Loss: contrastive + ``diversity_weight`` * diversity + ``mlm_weight`` * MLM; padded frames
  never count, and only masked frames count in the contrastive and MLM terms.

What is faithful: the three-module structure, masking the features once for both tasks, the
unmasked quantizer input, end-to-end training of quantizer and encoder with both losses, the
wav2vec 2.0 contrastive loss (cosine similarity, temperature 0.1, distractors from the masked
frames of the same utterance) with its diversity loss (weight 0.1), MLM on masked frames only,
and the frames downstream tasks use (the MLM module's last block).

What differs from the paper:

- Sizes: the paper's models are large conformers (XL: 0.6B parameters, 1024-dim blocks; XXL:
  1B) trained on Libri-Light 60k h; the defaults here are a CPU-sized 144-dim model with 2 + 2
  blocks and a small codebook (2 x 64 entries), see ``egs/mini/conf/pretrain_w2vbert.yaml``.
- Masking: the paper follows wav2vec 2.0's span masking and replaces masked frames by random
  vectors; here spans are drawn by :func:`masr.ssl.masking.span_mask` (``mask_prob=0.12``,
  ``mask_span=3``: ~32% of the 40 ms frames, 120 ms spans) and masked frames get a learned
  embedding (wav2vec 2.0's choice).
- Quantizer details follow wav2vec 2.0 / fairseq where the paper does not spell them out: the
  quantized vector is the concatenation of the selected entries projected by a Linear to
  ``d_model``; the temperature decays geometrically from ``temp_start`` to ``temp_end`` over
  ``temp_decay_steps`` training forwards (fairseq decays by a fixed factor per update, and counts
  optimizer updates, not forwards: with gradient accumulation the decay here is faster). The MLM
  target of a frame is the noise-free argmax of each group, while the contrastive target in
  training is the Gumbel-sampled entry. With G > 1 the MLM predicts G ids with G heads (the
  paper predicts one token id per frame; ``num_groups=1`` gives that).
- The optimiser, schedule and loss weights beyond the diversity weight are the trainer's
  (``masr.train.pretrain``), not the paper's.
"""

import torch
import torch.nn.functional as F
from torch import nn

from masr.nnet.conformer import Conv2dSubsampling, ConformerEncoder, make_pad_mask
from masr.ssl.base import SSLModel, SSLOutput, masked_prediction_loss
from masr.ssl.bestrq import load_cmvn
from masr.ssl.masking import span_mask


def sample_negatives(mask, num_negatives, generator=None):
    """Distractor indices for every masked frame: uniform, with replacement, over the *other*
    masked frames of the same utterance.

    Arguments
    ---------
    mask : torch.BoolTensor
        (B, T) masked frames.
    num_negatives : int
        Distractors K per masked frame.
    generator : torch.Generator or None
        Random source (default: torch's global one, which checkpoints save and restore).

    Returns
    -------
    negatives : torch.LongTensor
        (M, K) indices into ``mask.nonzero()`` (the M masked frames in row-major order).
    keep : torch.BoolTensor
        (M,) False for the masked frames alone in their utterance (their row is meaningless).

    Example
    -------
    >>> mask = torch.tensor([[True, False, True, True], [False, True, False, False]])
    >>> negatives, keep = sample_negatives(mask, 3, torch.Generator().manual_seed(0))
    >>> negatives.shape, keep.tolist()
    (torch.Size([4, 3]), [True, True, True, False])
    >>> bool((negatives[:3] < 3).all()), bool((negatives[:3] != torch.arange(3).unsqueeze(1)).all())
    (True, True)
    """
    counts = mask.sum(dim=1)  # (B,)
    utt = mask.nonzero()[:, 0]  # (M,) utterance of each masked frame, row-major order
    total = utt.shape[0]
    offsets = counts.cumsum(0) - counts
    n = counts[utt]
    local = torch.arange(total, device=mask.device) - offsets[utt]
    # K indices in [0, n-1) per frame, shifted past the frame itself: uniform over the others
    draw = torch.rand(total, num_negatives, generator=generator, device=mask.device)
    draw = torch.minimum((draw * (n - 1).clamp(min=1).unsqueeze(1)).long(), (n - 2).clamp(min=0).unsqueeze(1))
    draw = draw + (draw >= local.unsqueeze(1)).long()
    keep = n > 1
    negatives = torch.where(keep.unsqueeze(1), offsets[utt].unsqueeze(1) + draw, 0)
    return negatives, keep


class GumbelVectorQuantizer(nn.Module):
    """wav2vec 2.0's Gumbel-softmax product quantizer.

    Each frame is projected to ``num_groups * num_entries`` logits; every group selects one entry
    of its codebook (straight-through hard Gumbel-softmax in training, argmax in eval); the
    selected entries (``codevector_dim // num_groups`` each) are concatenated and projected to
    ``output_dim``. The temperature decays geometrically from ``temp_start`` to ``temp_end`` over
    ``temp_decay_steps`` training forwards, counted by the ``num_updates`` buffer (saved in the
    ``state_dict``, so a resumed run continues the same schedule).

    Arguments
    ---------
    input_dim : int
        Dimension of the input frames.
    num_groups, num_entries : int
        G codebooks (groups) of V entries.
    codevector_dim : int
        Dimension of the concatenated entries (divisible by ``num_groups``).
    output_dim : int
        Dimension of the quantized vectors.
    temp_start, temp_end : float
        Gumbel-softmax temperature at the start and after ``temp_decay_steps`` forwards.
    temp_decay_steps : int
        Training forwards over which the temperature decays.

    Example
    -------
    >>> q = GumbelVectorQuantizer(16, num_groups=2, num_entries=8, codevector_dim=8, output_dim=16)
    >>> out = q(torch.randn(3, 5, 16), make_pad_mask(torch.tensor([5, 4, 2])))
    >>> out["quantized"].shape, out["ids"].shape, int(q.num_updates)
    (torch.Size([3, 5, 16]), torch.Size([3, 5, 2]), 1)
    >>> round(float(q.temperature), 3)  # one training forward of 1000: 2 * (0.5 / 2) ** 0.001
    1.997
    """

    def __init__(self, input_dim, num_groups=2, num_entries=64, codevector_dim=128, output_dim=None,
                 temp_start=2.0, temp_end=0.5, temp_decay_steps=1000):
        super().__init__()
        if codevector_dim % num_groups:
            raise ValueError(f"codevector_dim {codevector_dim} is not divisible by num_groups {num_groups}")
        self.num_groups, self.num_entries = num_groups, num_entries
        self.temp_start, self.temp_end, self.temp_decay_steps = temp_start, temp_end, max(int(temp_decay_steps), 1)
        self.weight_proj = nn.Linear(input_dim, num_groups * num_entries)
        nn.init.normal_(self.weight_proj.weight, mean=0.0, std=1.0)  # as fairseq's wav2vec 2.0
        nn.init.zeros_(self.weight_proj.bias)
        self.codevectors = nn.Parameter(torch.rand(num_groups, num_entries, codevector_dim // num_groups))
        self.out_proj = nn.Linear(codevector_dim, output_dim or codevector_dim)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @property
    def temperature(self):
        """Current Gumbel temperature (a 0-dim tensor on the buffer's device)."""
        progress = self.num_updates.clamp(max=self.temp_decay_steps).double() / self.temp_decay_steps
        return (self.temp_start * (self.temp_end / self.temp_start) ** progress).float()

    def forward(self, x, pad_mask=None):
        """Quantize frames ``x`` (B, T, input_dim); in training, also advance the temperature.

        Arguments
        ---------
        x : torch.Tensor
            (B, T, input_dim).
        pad_mask : torch.BoolTensor or None
            (B, T), True at padded frames (left out of the diversity loss and the perplexity).

        Returns
        -------
        dict
            ``quantized`` (B, T, output_dim); ``codes`` (B, T, G) the entries used for
            ``quantized`` (Gumbel-sampled in training); ``ids`` (B, T, G) the argmax entries
            (MLM targets); ``diversity`` the diversity loss; ``perplexity`` the summed per-group
            perplexity of the frame-averaged softmax; ``temperature`` the temperature used.
        """
        batch, time, _ = x.shape
        logits = self.weight_proj(x).float().view(batch, time, self.num_groups, self.num_entries)
        ids = logits.argmax(dim=-1)
        temperature = self.temperature
        if self.training:
            gumbels = -torch.empty_like(logits).exponential_().log()  # torch's global RNG
            soft = torch.softmax((logits + gumbels) / temperature, dim=-1)
            codes = soft.argmax(dim=-1)
            hard = F.one_hot(codes, self.num_entries).to(soft.dtype)
            onehot = hard - soft.detach() + soft  # straight-through
            with torch.no_grad():
                self.num_updates += 1
        else:
            codes = ids
            onehot = F.one_hot(codes, self.num_entries).to(logits.dtype)
        selected = torch.einsum("btgv,gvd->btgd", onehot, self.codevectors.float())
        quantized = self.out_proj(selected.reshape(batch, time, -1).to(x.dtype))

        probs = torch.softmax(logits, dim=-1)
        valid = torch.ones(batch, time, dtype=torch.bool, device=x.device) if pad_mask is None else ~pad_mask
        if valid.any():
            avg = probs[valid].mean(dim=0)  # (G, V)
            perplexity = torch.exp(-(avg * torch.log(avg + 1e-7)).sum(dim=-1)).sum()
        else:  # no valid frame: nothing to spread over the codebooks
            perplexity = probs.sum() * 0.0 + self.num_groups * self.num_entries
        total = self.num_groups * self.num_entries
        return {"quantized": quantized, "codes": codes, "ids": ids, "diversity": (total - perplexity) / total,
                "perplexity": perplexity, "temperature": temperature}


class W2vBert(SSLModel):
    """w2v-BERT pretraining model (see the module docstring).

    Arguments
    ---------
    input_dim : int
        Filterbank dimension.
    d_model, nhead, d_ffn, kernel_size, dropout :
        Conformer sizes (shared by both modules).
    num_contrastive_layers, num_mlm_layers : int
        Conformer blocks of the contrastive and MLM modules.
    num_groups, num_entries, codevector_dim : int
        Quantizer: G codebooks of V entries, concatenated entries of ``codevector_dim``.
    mask_prob, mask_span : float, int
        Span masking on the subsampled (40 ms) frames.
    num_negatives : int
        Distractors per masked frame (the paper and wav2vec 2.0: 100).
    contrastive_temp : float
        Temperature of the cosine similarities in the contrastive loss.
    temp_start, temp_end, temp_decay_steps : float, float, int
        Gumbel-softmax temperature schedule (training forwards).
    diversity_weight, mlm_weight : float
        Weights of the diversity and MLM losses (the contrastive loss has weight 1).
    cmvn : str or None
        ``cmvn.ark`` of the training set (saved with the model as buffers); None = identity.
    attention : str
        Self-attention of both conformers: ``"relpos_xl"`` or ``"rope_sdpa"``
        (:mod:`masr.nnet.conformer`).
    subsampling_channels : int or None
        Channels of the two convolutions of the 4x subsampling; None: ``d_model``. Their cost grows
        with its square: at d_model 256 the d_model-channel front-end costs more FLOPs than six
        conformer blocks (``benchmarks/pretrain_step.py``).

    Example
    -------
    >>> model = W2vBert(input_dim=20, d_model=32, num_contrastive_layers=1, num_mlm_layers=1, nhead=2,
    ...                 d_ffn=64, kernel_size=3, num_entries=8, codevector_dim=16, num_negatives=5)
    >>> out = model(torch.randn(2, 100, 20), torch.tensor([100, 60]))
    >>> out.frames.shape, out.lengths.tolist(), out.loss.ndim
    (torch.Size([2, 24, 32]), [24, 14], 0)
    >>> sorted(out.metrics)  # doctest: +NORMALIZE_WHITESPACE
    ['accuracy', 'codebook_perplexity', 'contrastive_accuracy', 'contrastive_loss', 'diversity_loss',
     'majority_baseline', 'masked_fraction', 'mlm_loss', 'temperature']
    >>> model.embed(torch.randn(2, 100, 20), torch.tensor([100, 60])).shape
    torch.Size([2, 32])
    """

    def __init__(self, input_dim=80, d_model=144, num_contrastive_layers=2, num_mlm_layers=2, nhead=4, d_ffn=576,
                 kernel_size=15, dropout=0.1, num_groups=2, num_entries=64, codevector_dim=128, mask_prob=0.12,
                 mask_span=3, num_negatives=50, contrastive_temp=0.1, temp_start=2.0, temp_end=0.5,
                 temp_decay_steps=1000, diversity_weight=0.1, mlm_weight=1.0, cmvn=None, attention="relpos_xl",
                 subsampling_channels=None):
        super().__init__()
        self.save_hparams(locals())
        self.mask_prob, self.mask_span = mask_prob, mask_span
        self.num_negatives, self.contrastive_temp = num_negatives, contrastive_temp
        self.diversity_weight, self.mlm_weight = diversity_weight, mlm_weight
        self.num_groups, self.num_entries = num_groups, num_entries
        self.d_model = d_model
        self.cmvn = load_cmvn(cmvn, input_dim)
        # feature encoder
        self.subsampling = Conv2dSubsampling(input_dim, d_model, channels=subsampling_channels)
        self.feature_norm = nn.LayerNorm(d_model)
        self.mask_emb = nn.Parameter(torch.empty(d_model).uniform_())
        self.quantizer = GumbelVectorQuantizer(d_model, num_groups, num_entries, codevector_dim, d_model,
                                               temp_start, temp_end, temp_decay_steps)
        # contrastive module
        self.input_proj = nn.Linear(d_model, d_model)
        self.contrastive = ConformerEncoder(d_model, num_contrastive_layers, nhead, d_ffn, kernel_size=kernel_size,
                                            dropout=dropout, attention=attention)
        self.context_proj = nn.Linear(d_model, d_model)
        # MLM module
        self.mlm = ConformerEncoder(d_model, num_mlm_layers, nhead, d_ffn, kernel_size=kernel_size, dropout=dropout,
                                    attention=attention)
        self.head = nn.Linear(d_model, num_groups * num_entries)

    @property
    def temperature(self):
        """Current Gumbel-softmax temperature of the quantizer."""
        return self.quantizer.temperature

    def _normalise(self, feats, lengths):
        x = self.cmvn(feats)
        return x.masked_fill(make_pad_mask(lengths, x.shape[1]).unsqueeze(-1), 0.0)

    def _features(self, feats, lengths):
        """Feature encoder: (B, T', d_model) frames and their lengths."""
        frames, out_lengths = self.subsampling(self._normalise(feats, lengths), lengths)
        return self.feature_norm(frames), out_lengths

    @property
    def num_layers(self):
        """Contrastive-module blocks, then MLM-module blocks."""
        return len(self.contrastive.layers) + len(self.mlm.layers)

    def encode(self, feats, lengths, layer=None):
        features, out_lengths = self._features(feats, lengths)
        n_contrastive = len(self.contrastive.layers)
        if layer is not None and layer <= n_contrastive:
            return SSLOutput(self.contrastive(self.input_proj(features), out_lengths, num_layers=layer), out_lengths)
        context = self.contrastive(self.input_proj(features), out_lengths)
        mlm_layers = None if layer is None else layer - n_contrastive
        return SSLOutput(self.mlm(context, out_lengths, num_layers=mlm_layers), out_lengths)

    def contrastive_loss(self, context, quantized, codes, mask):
        """InfoNCE over masked frames, distractors from the other masked frames of the utterance.

        Arguments
        ---------
        context : torch.Tensor
            (B, T, D) projected contrastive-module output.
        quantized : torch.Tensor
            (B, T, D) quantized vectors of the unmasked features.
        codes : torch.LongTensor
            (B, T, G) entries behind ``quantized`` (distractors with the positive's codes are
            left out).
        mask : torch.BoolTensor
            (B, T) masked (valid) frames.

        Returns
        -------
        loss, accuracy, count : torch.Tensor
            Mean loss and accuracy (positive ranked first) over the masked frames of utterances
            with at least 2 masked frames, and the number of those frames.
        """
        negatives, keep = sample_negatives(mask, self.num_negatives)
        if not bool(keep.any()):
            zero = (context.sum() + quantized.sum()) * 0.0
            return zero, zero.detach(), torch.zeros((), dtype=torch.long, device=mask.device)
        negatives = negatives[keep]
        c = F.normalize(context[mask].float(), dim=-1)
        q = F.normalize(quantized[mask].float(), dim=-1)
        code = codes[mask]
        c_kept, q_pos, code_pos = c[keep], q[keep], code[keep]
        positive = (c_kept * q_pos).sum(dim=-1, keepdim=True)
        negative = torch.einsum("md,mkd->mk", c_kept, q[negatives])
        same = (code[negatives] == code_pos.unsqueeze(1)).all(dim=-1)
        negative = negative.masked_fill(same, float("-inf"))
        logits = torch.cat([positive, negative], dim=1) / self.contrastive_temp
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        loss = F.cross_entropy(logits, target)
        accuracy = (logits.argmax(dim=-1) == 0).float().mean()
        return loss, accuracy, keep.sum()

    def forward(self, feats, lengths):
        features, out_lengths = self._features(feats, lengths)
        time = features.shape[1]
        pad = make_pad_mask(out_lengths, time)
        mask = span_mask(out_lengths, time, self.mask_prob, self.mask_span)
        quant = self.quantizer(features, pad)  # targets from the unmasked features
        masked = torch.where(mask.unsqueeze(-1), self.mask_emb.to(features.dtype), features)
        context = self.contrastive(self.input_proj(masked), out_lengths)
        frames = self.mlm(context, out_lengths)

        contrastive, contrastive_accuracy, _ = self.contrastive_loss(
            self.context_proj(context), quant["quantized"], quant["codes"], mask)

        logits = self.head(frames[mask]).float().view(-1, self.num_groups, self.num_entries)  # (M, G, V)
        wanted = quant["ids"][mask].detach()  # (M, G)
        mlm, accuracy, majority = masked_prediction_loss(logits, wanted, frames)

        loss = contrastive + self.diversity_weight * quant["diversity"] + self.mlm_weight * mlm
        metrics = {
            "contrastive_loss": contrastive.detach(),
            "diversity_loss": quant["diversity"].detach(),
            "mlm_loss": mlm.detach(),
            "accuracy": accuracy.detach(),
            "contrastive_accuracy": contrastive_accuracy.detach(),
            "majority_baseline": majority.detach(),
            "codebook_perplexity": quant["perplexity"].detach(),
            "masked_fraction": (mask.sum() / out_lengths.sum().clamp(min=1)).detach(),
            "temperature": quant["temperature"].detach(),
        }
        return SSLOutput(frames, out_lengths, loss, metrics)
