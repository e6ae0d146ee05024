"""The MASR model: any SSL model plus metadata streams (paper sections 3.2-3.4).

For every stream j (language, location, transcript, ...), declared in the config:

- a fixed metadata encoder gives e_j and the labels phi_j (``masr.metadata``);
- a linear projection gives q_j = W_j h of the utterance embedding h = g(Z);
- batch-hard triplets are mined on p_j = [q_j ; alpha_j e_j] and the loss is computed on q_j
  (``masr.losses.hard_triplet_loss``);
- L = L_SSL + sum_j lambda_j L_j.

LASR (the predecessor) is one language stream with ``proj_dim: null`` (q = h) and an encoder
that gives labels only (``onehot`` without vocabulary): mining and loss on h.

Under DDP the mining sees the global batch: q, e and the labels of all ranks are gathered
(gradients flow back to each rank's own q), and each rank's utterances are the anchors.

Per stream, the metrics hold the triplet loss, the fraction of anchors with an active (non-zero)
triplet, and the fraction of anchors whose chosen negative differs from the one LASR would choose
on the same batch (mining on h with labels only), the diagnostic the paper reports.
"""

import os

import torch
import yaml

from masr.data.datadir import DataDir
from masr.losses import gather_for_mining, hard_triplet_loss
from masr.metadata import build_encoder
from masr.ssl.base import SSLModel, SSLOutput


def ssl_from_run(run_dir):
    """A fresh SSL model with the architecture of an earlier pretraining run.

    ``masr.train.pretrain`` saves its config and overrides in ``<run_dir>/config.yaml`` and
    ``<run_dir>/overrides.yaml``; continuing from that run (MASR from a BEST-RQ checkpoint, as in
    the paper) then needs no copy of the architecture in the new config.
    """
    from masr.utils.config import load_config

    config_file = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"{config_file}: not found; is '{run_dir}' a masr.train.pretrain run?")
    with open(os.path.join(run_dir, "overrides.yaml"), encoding="utf-8") as f:
        overrides = yaml.safe_load(f) or {}
    return load_config(config_file, overrides)["model"]


def _local(q, labels, meta):
    return q, labels, meta, torch.arange(q.shape[0], device=q.device)


class MetadataStream(torch.nn.Module):
    """One metadata stream: encoder, projection and loss settings.

    Arguments
    ---------
    name : str
        The stream (``lang`` for ``utt2lang``, ``geo``, ``text``, ...).
    encoder : dict
        ``{"kind": "lang2vec", "feature": "syntactic", ...}`` for :func:`masr.metadata.build_encoder`.
    input_dim : int
        Dimension of h.
    proj_dim : int or None
        Size of q = W h; ``None`` uses h itself (LASR).
    alpha : float
        Weight of e in the mining space p = [q ; alpha e].
    weight : float
        lambda_j, the loss weight.
    margin : float
        gamma, the triplet margin.
    reduction : str
        ``"sum"`` over anchors (the paper's Eq. 2) or ``"mean"``.
    vocabulary : list of str or None
        All label values of the training data, registered in sorted order so that label ids
        are identical on every DDP rank.
    """

    def __init__(self, name, encoder, input_dim, proj_dim=None, alpha=1.0, weight=1.0, margin=0.2,
                 reduction="sum", vocabulary=None):
        super().__init__()
        self.name, self.alpha, self.weight, self.margin, self.reduction = name, alpha, weight, margin, reduction
        encoder = dict(encoder)
        self.encoder = build_encoder(encoder.pop("kind"), **encoder)
        if vocabulary:
            self.encoder.labels(sorted(set(vocabulary)))
        self.projection = torch.nn.Linear(input_dim, proj_dim) if proj_dim else torch.nn.Identity()

    def uses_metadata_vectors(self):
        return self.encoder.dim > 0


class MASR(SSLModel):
    """An SSL model trained with metadata-stream triplet losses as well.

    Arguments
    ---------
    ssl : masr.ssl.base.SSLModel
        BEST-RQ, w2v-BERT, ...
    streams : list of dict
        One dict per stream: ``name``, ``encoder`` and the optional :class:`MetadataStream`
        arguments (``proj_dim``, ``alpha``, ``weight``, ``margin``, ``reduction``).
    train_dir : str or None
        The training data or dump dir; each stream's label values are read from it so that
        label ids are fixed before training.
    chunk_size : int
        Anchors mined at a time (peak memory O(chunk_size x global batch)).
    """

    def __init__(self, ssl, streams, train_dir=None, chunk_size=1024):
        super().__init__()
        self.ssl = ssl
        self.chunk_size = chunk_size
        dim = ssl.d_model
        data = DataDir(train_dir) if train_dir else None
        self.streams = torch.nn.ModuleList()
        for spec in streams:
            spec = dict(spec)
            name = spec.pop("name")
            vocabulary = list(data.stream(name).values()) if data is not None else None
            self.streams.append(MetadataStream(name, spec.pop("encoder"), dim, vocabulary=vocabulary, **spec))
        self.d_model = dim

    @property
    def metadata_streams(self):
        """Names of the streams whose labels the data loader must provide."""
        return [s.name for s in self.streams]

    @property
    def num_layers(self):
        return self.ssl.num_layers

    def encode(self, feats, lengths, layer=None):
        return self.ssl.encode(feats, lengths, layer=layer)

    def forward(self, feats, lengths, metadata=None):
        """SSL forward plus the stream losses.

        Arguments
        ---------
        feats : torch.Tensor
            (B, T, F) filterbanks.
        lengths : torch.LongTensor
            (B,) valid frames.
        metadata : dict
            stream name -> list of B label strings (as read from ``utt2<name>`` / ``text``).
        """
        out = self.ssl(feats, lengths)
        h = out.pooled()
        # the global batch under DDP while training; validation (rank 0 alone) mines locally
        gather = gather_for_mining if self.training else _local
        total = out.loss
        metrics = dict(out.metrics, ssl_loss=out.loss.detach())
        for stream in self.streams:
            values = metadata[stream.name]
            labels = stream.encoder.labels(values).to(h.device)
            meta = stream.encoder.encode(values).to(h.device) if stream.uses_metadata_vectors() else None
            q = stream.projection(h).float()
            q_all, labels_all, meta_all, anchors = gather(q, labels, meta)
            loss, info = hard_triplet_loss(q_all, labels_all, stream.margin, meta=meta_all, alpha=stream.alpha,
                                           reduction=stream.reduction, chunk_size=self.chunk_size,
                                           anchors=anchors, return_info=True)
            total = total + stream.weight * loss
            metrics[f"{stream.name}_triplet"] = loss.detach()
            has_neg = info["has_negative"]
            metrics[f"{stream.name}_active"] = (info["active"].float().sum() / has_neg.float().sum().clamp(min=1)).detach()
            if meta is not None or not isinstance(stream.projection, torch.nn.Identity):
                with torch.no_grad():
                    h_all, lab_all, _, anc = gather(h.detach().float(), labels, None)
                    _, lasr = hard_triplet_loss(h_all, lab_all, stream.margin, chunk_size=self.chunk_size,
                                                anchors=anc, return_info=True)
                differs = (lasr["neg_index"] != info["neg_index"]) & has_neg
                metrics[f"{stream.name}_neg_differs_from_lasr"] = differs.float().sum() / has_neg.float().sum().clamp(min=1)
        return SSLOutput(out.frames, out.lengths, total, metrics)
