"""masr.features.cmvn: global CMVN statistics in Kaldi's layout."""

import numpy as np
import pytest
import torch

from masr.features.cmvn import CMVNStats, GlobalCMVN


def _feats(seed, frames):
    return np.random.default_rng(seed).normal(3.0, 2.0, size=(frames, 5)).astype(np.float32)


def test_accumulated_stats_match_numpy_over_all_frames():
    parts = [_feats(0, 7), _feats(1, 30), _feats(2, 1)]
    stats = CMVNStats(5)
    for p in parts:
        stats.add(p)
    allf = np.concatenate(parts).astype(np.float64)
    assert stats.count == 38
    np.testing.assert_allclose(stats.mean, allf.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(stats.std, allf.std(axis=0), rtol=1e-8)


def test_merge_equals_single_accumulator():
    a, b, both = CMVNStats(5), CMVNStats(5), CMVNStats(5)
    a.add(_feats(0, 10)); b.add(_feats(1, 20))
    both.add(_feats(0, 10)); both.add(_feats(1, 20))
    merged = a.merge(b)
    np.testing.assert_allclose(merged.to_kaldi(), both.to_kaldi())


def test_kaldi_layout_and_file_roundtrip(tmp_path):
    stats = CMVNStats(5)
    stats.add(_feats(0, 12))
    mat = stats.to_kaldi()
    assert mat.shape == (2, 6) and mat[0, -1] == 12 and mat[1, -1] == 0
    stats.save(tmp_path / "cmvn.ark")
    loaded = CMVNStats.load(str(tmp_path / "cmvn.ark"))
    np.testing.assert_allclose(loaded.to_kaldi(), mat)


def test_global_cmvn_normalises_to_zero_mean_unit_variance():
    f = _feats(3, 500)
    stats = CMVNStats(5)
    stats.add(f)
    out = GlobalCMVN(stats)(torch.from_numpy(f).unsqueeze(0)).squeeze(0).double().numpy()
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-5)


def test_constant_dimension_does_not_divide_by_zero():
    stats = CMVNStats(2)
    stats.add(np.array([[1.0, 5.0], [3.0, 5.0]]))
    out = GlobalCMVN(stats)(torch.tensor([[1.0, 5.0]]))
    assert torch.isfinite(out).all() and out[0, 1] == 0


def test_non_finite_features_are_refused_and_not_accumulated():
    stats = CMVNStats(5)
    stats.add(_feats(0, 4))
    before = stats.to_kaldi()
    for bad in (np.nan, np.inf, -np.inf):
        f = _feats(1, 6)
        f[2, 3] = bad
        with pytest.raises(ValueError, match=r"NaN/inf values \(1 of 6 frames, first at frame 2\)"):
            stats.add(f)
    np.testing.assert_array_equal(stats.to_kaldi(), before)


def test_load_reads_the_file_as_data_and_names_it_in_errors(tmp_path):
    import kaldiio

    path = str(tmp_path / "cmvn.ark")
    with pytest.raises(ValueError, match="cmvn.ark: CMVN statistics not found"):
        CMVNStats.load(path)
    marker = tmp_path / "PWNED"
    with pytest.raises(ValueError, match="not found"):
        CMVNStats.load(f"touch {marker} |")  # a path, never a command
    assert not marker.exists()
    stats = CMVNStats(3)
    stats.add(np.arange(12, dtype=np.float32).reshape(4, 3))
    stats.save(path)
    assert CMVNStats.load(path).mean.tolist() == stats.mean.tolist()
    mat = stats.to_kaldi()
    mat[1, 0] = np.nan
    kaldiio.save_mat(path, mat)
    with pytest.raises(ValueError, match="cmvn.ark: CMVN statistics hold NaN/inf"):
        CMVNStats.load(path)
    kaldiio.save_mat(path, np.ones(5))
    with pytest.raises(ValueError, match=r"must be a \(2, D \+ 1\) matrix"):
        CMVNStats.load(path)
