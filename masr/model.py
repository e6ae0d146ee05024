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
(gradients flow back to each rank's own q), and each rank's utterances are the anchors. A stream
with ``mining_group_size: G`` mines within consecutive groups of G utterances of that global batch
(the paper's batches of 16) and, with ``reduction: sum``, averages the group sums of Eq. 2.

Per stream, the metrics hold the triplet loss, the fraction of anchors with an active (non-zero)
triplet, and the fraction of anchors whose chosen negative differs from the one LASR would choose
on the same batch (mining on h with labels only), the diagnostic the paper reports.
"""

import os

import torch
import yaml

from masr.data.datadir import DataDir
from masr.losses import gather_for_mining, hard_triplet_loss
from masr.metadata import build_metadata_encoder
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


def _world_size():
    """Number of DDP ranks (1 without an initialised process group)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class MetadataStream(torch.nn.Module):
    """One metadata stream: encoder, projection and loss settings.

    Arguments
    ---------
    name : str
        The stream (``lang`` for ``utt2lang``, ``geo``, ``text``, ...).
    encoder : dict
        ``{"kind": "lang2vec", "feature": "syntactic", ...}`` for :func:`masr.metadata.build_metadata_encoder`.
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
        ``"sum"`` (the paper's Eq. 2; with ``mining_group_size``: the group sums averaged over the
        groups) or ``"mean"`` (over the anchors that have a negative); see
        :func:`masr.losses.hard_triplet_loss`.
    vocabulary : list of str or None
        All label values of the training data, registered in sorted order so that label ids
        are identical on every DDP rank.
    mining_group_size : int or None
        G: the global (DDP-gathered) batch is split, in its gathered order, into consecutive
        groups of G utterances (the last one may be smaller) and the hardest positive and
        negative of each anchor are mined within its group only (the paper's batches of 16);
        ``None`` (default) mines over the whole global batch.

    Raises
    ------
    ValueError
        On a ``reduction`` other than ``"sum"`` / ``"mean"`` or a ``mining_group_size`` that is
        not a positive int or None; the message names the stream.

    Example
    -------
    >>> stream = MetadataStream("lang", {"kind": "onehot"}, input_dim=8, proj_dim=4, mining_group_size=2)
    >>> h = torch.randn(5, 8)                                # (B, input_dim)
    >>> q = stream.projection(h)                             # (B, proj_dim)
    >>> labels = stream.encoder.labels(["a", "b", "a", "a", "b"])
    >>> loss, info = stream.triplet_loss(q, labels, None, return_info=True)
    >>> tuple(q.shape), tuple(loss.shape), info["has_negative"].tolist()  # groups {0,1} {2,3} {4}
    ((5, 4), (), [True, True, False, False, False])
    >>> MetadataStream("geo", {"kind": "onehot"}, input_dim=8, mining_group_size=16.0)
    Traceback (most recent call last):
        ...
    ValueError: stream 'geo': mining_group_size must be a positive int or null (None), not 16.0
    """

    def __init__(self, name, encoder, input_dim, proj_dim=None, alpha=1.0, weight=1.0, margin=0.2,
                 reduction="sum", vocabulary=None, mining_group_size=None):
        super().__init__()
        if reduction not in ("sum", "mean"):
            raise ValueError(f"stream {name!r}: reduction must be 'sum' or 'mean', not {reduction!r}")
        if mining_group_size is not None and (isinstance(mining_group_size, bool) or not isinstance(
                mining_group_size, int) or mining_group_size < 1):
            raise ValueError(f"stream {name!r}: mining_group_size must be a positive int or null (None), "
                             f"not {mining_group_size!r}")
        self.name, self.alpha, self.weight, self.margin, self.reduction = name, alpha, weight, margin, reduction
        self.mining_group_size = mining_group_size
        encoder = dict(encoder)
        self.encoder = build_metadata_encoder(encoder.pop("kind"), **encoder)
        if vocabulary:
            self.encoder.labels(sorted(set(vocabulary)))
        self.projection = torch.nn.Linear(input_dim, proj_dim) if proj_dim else torch.nn.Identity()

    def uses_metadata_vectors(self):
        return self.encoder.dim > 0

    def triplet_loss(self, q, labels, meta, anchors=None, chunk_size=1024, world_size=1, return_info=False):
        """This stream's triplet loss L_j (unweighted) with its margin, alpha, reduction and groups.

        Arguments
        ---------
        q : torch.Tensor
            (B, d) projections of the (global) batch.
        labels : torch.LongTensor
            (B,) label ids.
        meta : torch.Tensor or None
            (B, d_e) metadata encodings, or None (LASR: labels only).
        anchors : torch.LongTensor or None
            (A,) this rank's rows in the batch (default: all).
        chunk_size : int
            Anchors mined at a time.
        world_size : int
            DDP ranks whose gradients are averaged (scales the grouped loss so that the
            DDP-averaged gradient is the single-process one).
        return_info : bool
            Also return the mining diagnostics.

        Returns
        -------
        loss : torch.Tensor
            Scalar; see :func:`masr.losses.hard_triplet_loss`.
        info : dict
            Only with ``return_info``: (A,) ``pos_index``, ``neg_index``, ``active``, ``has_negative``.
        """
        return hard_triplet_loss(q, labels, self.margin, meta=meta, alpha=self.alpha, reduction=self.reduction,
                                 chunk_size=chunk_size, anchors=anchors, return_info=return_info,
                                 mining_group_size=self.mining_group_size, world_size=world_size)


class MASR(SSLModel):
    """An SSL model trained with metadata-stream triplet losses as well.

    Arguments
    ---------
    ssl : masr.ssl.base.SSLModel
        BEST-RQ, w2v-BERT, ...
    streams : list of dict
        One dict per stream: ``name``, ``encoder`` and the optional :class:`MetadataStream`
        arguments (``proj_dim``, ``alpha``, ``weight``, ``margin``, ``reduction``,
        ``mining_group_size``).
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

        Returns
        -------
        masr.ssl.base.SSLOutput
            The SSL output with ``loss`` = L_SSL + sum_j lambda_j L_j and, per stream j, the metrics
            ``<j>_triplet`` (L_j of this rank: the ranks' values average to the global L_j when the
            stream has ``mining_group_size``), ``<j>_active`` and, for a stream with a projection or
            metadata vectors, ``<j>_neg_differs_from_lasr`` (LASR mined within the same groups).
        """
        out = self.ssl(feats, lengths)
        h = out.pooled()
        # the global batch under DDP while training; validation (rank 0 alone) mines locally
        gather = gather_for_mining if self.training else _local
        world_size = _world_size() if self.training else 1
        total = out.loss
        metrics = dict(out.metrics, ssl_loss=out.loss.detach())
        for stream in self.streams:
            values = metadata[stream.name]
            labels = stream.encoder.labels(values).to(h.device)
            meta = stream.encoder.encode(values).to(h.device) if stream.uses_metadata_vectors() else None
            q = stream.projection(h).float()
            q_all, labels_all, meta_all, anchors = gather(q, labels, meta)
            loss, info = stream.triplet_loss(q_all, labels_all, meta_all, anchors=anchors, chunk_size=self.chunk_size,
                                             world_size=world_size, return_info=True)
            total = total + stream.weight * loss
            metrics[f"{stream.name}_triplet"] = loss.detach()
            has_neg = info["has_negative"]
            metrics[f"{stream.name}_active"] = (info["active"].float().sum() / has_neg.float().sum().clamp(min=1)).detach()
            if meta is not None or not isinstance(stream.projection, torch.nn.Identity):
                with torch.no_grad():
                    h_all, lab_all, _, anc = gather(h.detach().float(), labels, None)
                    _, lasr = hard_triplet_loss(h_all, lab_all, stream.margin, chunk_size=self.chunk_size,
                                                anchors=anc, return_info=True,
                                                mining_group_size=stream.mining_group_size)
                differs = (lasr["neg_index"] != info["neg_index"]) & has_neg
                metrics[f"{stream.name}_neg_differs_from_lasr"] = differs.float().sum() / has_neg.float().sum().clamp(min=1)
        return SSLOutput(out.frames, out.lengths, total, metrics)
