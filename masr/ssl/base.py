"""The interface every SSL method implements, and the pooling g that turns frames into h.

Later stages (MASR/LASR heads, LangID, ASR, probes) only see this interface, never which SSL
method produced the frames: features and lengths in; frames Z, their lengths, the SSL loss and
its metrics out.
"""

import dataclasses

import torch
import torch.nn.functional as F

from masr.nnet.conformer import make_pad_mask


def masked_mean_pool(frames, lengths):
    """g: the mean of each utterance's valid frames (padding excluded).

    Arguments
    ---------
    frames : torch.Tensor
        (B, T, D).
    lengths : torch.LongTensor
        (B,) valid frames per utterance (at least 1).

    Returns
    -------
    torch.Tensor
        (B, D) utterance embeddings h.

    Example
    -------
    >>> z = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]]])
    >>> masked_mean_pool(z, torch.tensor([2, 3]))
    tensor([[2.],
            [4.]])
    """
    valid = (~make_pad_mask(lengths, frames.shape[1])).unsqueeze(-1).to(frames.dtype)
    return (frames * valid).sum(dim=1) / lengths.clamp(min=1).unsqueeze(-1).to(frames.dtype)


def masked_prediction_loss(logits, targets, anchor):
    """Cross-entropy of predicted target ids at the selected (masked) frames, with metrics.

    Arguments
    ---------
    logits : torch.Tensor
        (M, G, V): M selected frames, G targets per frame (codebooks / groups), V ids.
    targets : torch.LongTensor
        (M, G) target ids.
    anchor : torch.Tensor
        Any tensor of the graph; when M == 0 the loss is ``anchor.sum() * 0`` so that
        backward still works on a batch without masked frames.

    Returns
    -------
    loss, accuracy, majority : torch.Tensor
        Mean cross-entropy; accuracy of the arg-max; and the accuracy of always guessing the
        batch's most frequent id of each target (the honest "chance" level: quantizer ids are
        far from uniform on speech).

    Example
    -------
    >>> logits = torch.tensor([[[5.0, 0.0]], [[5.0, 0.0]], [[0.0, 5.0]]])
    >>> loss, acc, maj = masked_prediction_loss(logits, torch.tensor([[0], [0], [0]]), logits)
    >>> round(float(acc), 3), round(float(maj), 3)
    (0.667, 1.0)
    """
    if logits.shape[0] == 0:
        zero = torch.zeros((), device=logits.device)
        return anchor.sum() * 0.0, zero, zero
    num_ids = logits.shape[-1]
    loss = F.cross_entropy(logits.float().reshape(-1, num_ids), targets.reshape(-1))
    accuracy = (logits.argmax(dim=-1) == targets).float().mean()
    # counts per id with a fixed-size scatter (bincount's output size would need a host sync)
    counts = torch.zeros(targets.shape[1], num_ids, device=targets.device)
    counts.scatter_add_(1, targets.t(), torch.ones_like(targets.t(), dtype=counts.dtype))
    majority = counts.max(dim=1).values.sum() / targets.numel()
    return loss, accuracy, majority


@dataclasses.dataclass
class SSLOutput:
    """What an SSL model returns for a batch.

    Arguments
    ---------
    frames : torch.Tensor
        (B, T', D) encoder output frames Z (padded frames are 0).
    lengths : torch.LongTensor
        (B,) valid frames per utterance.
    loss : torch.Tensor or None
        Scalar SSL loss (``None`` from ``encode``).
    metrics : dict
        Detached scalar tensors to log, e.g. ``{"accuracy": ..., "masked_frames": ...}``.
    """

    frames: torch.Tensor
    lengths: torch.Tensor
    loss: torch.Tensor = None
    metrics: dict = dataclasses.field(default_factory=dict)

    @property
    def pad_mask(self):
        """(B, T') True at padded frames."""
        return make_pad_mask(self.lengths, self.frames.shape[1])

    def pooled(self):
        """h = g(Z): (B, D) masked mean of the frames."""
        return masked_mean_pool(self.frames, self.lengths)


class SSLModel(torch.nn.Module):
    """Base class of SSL encoders.

    Subclasses implement ``forward(feats, lengths) -> SSLOutput`` (the training objective: masks
    the input, returns the loss) and ``encode(feats, lengths) -> SSLOutput`` (no masking, no
    loss: what downstream tasks use). ``feats`` are (B, T, F) filterbanks (CMVN applied by the
    model), ``lengths`` (B,) their valid frames. ``encode`` takes ``layer``: the number of
    encoder blocks to run (None: all), for probes of intermediate layers.

    Subclasses record their constructor arguments with :meth:`save_hparams`, so that a trained
    encoder can be rebuilt from a single file (``masr.downstream.pretrained``).
    """

    #: Constructor arguments (set by :meth:`save_hparams`).
    hparams = None

    def save_hparams(self, arguments):
        """Record the constructor ``arguments`` (``locals()`` of ``__init__``). The ``cmvn`` path
        is not kept: the statistics travel as buffers in the state dict."""
        self.hparams = {k: v for k, v in arguments.items() if k not in ("self", "__class__")}
        if "cmvn" in self.hparams:
            self.hparams["cmvn"] = None

    @property
    def num_layers(self):
        """Encoder blocks ``encode`` can stop after."""
        raise NotImplementedError

    def encode(self, feats, lengths, layer=None):
        raise NotImplementedError

    def embed(self, feats, lengths, layer=None):
        """Utterance embeddings h (B, D) of unmasked input (the output of block ``layer``)."""
        return self.encode(feats, lengths, layer=layer).pooled()
