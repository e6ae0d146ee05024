"""BEST-RQ's frozen random-projection quantizer (Chiu et al., ICML 2022, section 3.1).

Stacked input frames x are projected by a frozen random matrix A (Xavier init), L2-normalised,
and matched to the nearest entry of a frozen random codebook whose entries are L2-normalised
too; the index is the target. Several codebooks give several independent targets per frame.

Why not ``speechbrain.nnet.quantisers.RandomProjectionQuantizer``: it finds the nearest entry by
broadcasting a (B, V, T, d) difference tensor (~400 MB for B=8, V=8192, T=100, d=16) and has one
codebook. Here the nearest unit vector is found by a matrix product (for unit vectors,
argmin ||c - y|| = argmax c.y), with the same normalisation (over the code dimension, the
past SpeechBrain bug being a normalisation over the wrong dimension), and the random state
comes from its own seed so targets never depend on the global RNG.
"""

import torch
import torch.nn.functional as F


class RandomProjectionQuantizer(torch.nn.Module):
    """Frozen random-projection quantizer with ``num_codebooks`` codebooks.

    Arguments
    ---------
    input_dim : int
        Dimension of the (stacked) input frames.
    codebook_dim : int
        Dimension of the projection and the codebook entries (16 in the paper).
    codebook_size : int
        Entries per codebook (8192 in the paper).
    num_codebooks : int
        Independent (projection, codebook) pairs.
    seed : int
        Seed of the random projection and codebooks.

    Example
    -------
    >>> q = RandomProjectionQuantizer(320, codebook_dim=16, codebook_size=64, num_codebooks=2)
    >>> q(torch.randn(3, 7, 320)).shape
    torch.Size([3, 7, 2])
    >>> sum(p.numel() for p in q.parameters())  # nothing is trained
    0
    """

    def __init__(self, input_dim, codebook_dim=16, codebook_size=8192, num_codebooks=1, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        bound = (6.0 / (input_dim + codebook_dim)) ** 0.5  # Xavier uniform
        proj = (torch.rand(num_codebooks, input_dim, codebook_dim, generator=g) * 2 - 1) * bound
        codebooks = F.normalize(torch.randn(num_codebooks, codebook_size, codebook_dim, generator=g), dim=-1)
        self.register_buffer("projection", proj)
        self.register_buffer("codebooks", codebooks)

    @torch.no_grad()
    def forward(self, x):
        """x: (B, T, input_dim) -> targets (B, T, num_codebooks), int64."""
        y = F.normalize(torch.einsum("btd,ndc->nbtc", x.float(), self.projection), dim=-1)
        scores = torch.einsum("nbtc,nvc->nbtv", y, self.codebooks)
        return scores.argmax(dim=-1).permute(1, 2, 0)
