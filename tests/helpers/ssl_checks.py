"""Checks every SSL model must pass, shared by the per-model test files."""

import torch


def assert_embedding_ignores_padding(model, dim=20):
    """h of an utterance alone equals its h when padded (with garbage) in a batch (eval mode)."""
    model = model.eval()
    torch.manual_seed(3)
    a, b = torch.randn(1, 90, dim), torch.randn(1, 130, dim)
    batch = torch.randn(2, 130, dim) * 100  # garbage in the padding
    batch[0, :90], batch[1] = a[0], b[0]
    h_batch = model.embed(batch, torch.tensor([90, 130]))
    assert torch.allclose(h_batch[0], model.embed(a, torch.tensor([90]))[0], atol=1e-5)
    assert torch.allclose(h_batch[1], model.embed(b, torch.tensor([130]))[0], atol=1e-5)
