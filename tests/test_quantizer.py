"""masr.ssl.quantizer: BEST-RQ's frozen random-projection quantizer."""

import torch
import torch.nn.functional as F

from masr.ssl.quantizer import RandomProjectionQuantizer


def test_targets_are_deterministic_and_independent_of_global_rng():
    x = torch.randn(4, 30, 80)
    torch.manual_seed(1)
    a = RandomProjectionQuantizer(80, 16, 512, num_codebooks=2, seed=7)
    torch.manual_seed(2)
    b = RandomProjectionQuantizer(80, 16, 512, num_codebooks=2, seed=7)
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), RandomProjectionQuantizer(80, 16, 512, num_codebooks=2, seed=8)(x))


def test_frozen_nothing_trains_and_buffers_are_saved():
    q = RandomProjectionQuantizer(40, 16, 64)
    assert list(q.parameters()) == []
    assert set(q.state_dict()) == {"projection", "codebooks"}
    x = torch.randn(2, 5, 40, requires_grad=True)
    assert not q(x).requires_grad


def test_matches_brute_force_nearest_unit_vector():
    q = RandomProjectionQuantizer(24, 8, 50, num_codebooks=2, seed=3)
    x = torch.randn(3, 11, 24)
    got = q(x)
    for c in range(2):
        y = F.normalize(x @ q.projection[c], dim=-1)  # (3, 11, 8)
        dist = torch.cdist(y.reshape(-1, 8), q.codebooks[c])  # L2 distance to every entry
        assert torch.equal(got[..., c].reshape(-1), dist.argmin(dim=-1))


def test_codebook_roughly_uniformly_used_on_random_input():
    q = RandomProjectionQuantizer(80, 16, 64, seed=0)
    counts = torch.bincount(q(torch.randn(1, 64 * 200, 80)).flatten(), minlength=64).float()
    assert (counts > 0).all()  # every entry used
    assert counts.max() / counts.mean() < 3.0 and counts.min() / counts.mean() > 0.2
