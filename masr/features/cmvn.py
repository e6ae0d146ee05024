"""Global cepstral mean and variance normalisation (CMVN).

Statistics are kept in Kaldi's ``compute-cmvn-stats`` layout, a (2, D + 1) float64 matrix:
row 0 holds the per-dimension sums and the frame count in its last column, row 1 the sums of
squares. They are accumulated per job, merged, and saved with ``kaldiio`` as ``cmvn.ark``.
"""

import os

import numpy as np
import torch

from masr.utils.fileio import atomic_open

#: Smallest variance used, so a constant dimension does not divide by zero.
VARIANCE_FLOOR = 1e-10


class CMVNStats:
    """Running sums for global CMVN.

    Arguments
    ---------
    dim : int
        Feature dimension.

    Example
    -------
    >>> x = np.arange(12, dtype=np.float32).reshape(6, 2)
    >>> s = CMVNStats(2)
    >>> s.add(x[:4]); s.add(x[4:])
    >>> s.count, s.mean.tolist()
    (6, [5.0, 6.0])
    >>> np.allclose(s.std, x.std(axis=0))
    True
    """

    def __init__(self, dim):
        self.sum = np.zeros(dim, dtype=np.float64)
        self.sum_sq = np.zeros(dim, dtype=np.float64)
        self.count = 0

    def add(self, feats):
        """Accumulate a (T, D) feature matrix.

        Arguments
        ---------
        feats : numpy.ndarray
            Shape (T, D), D the dimension given at construction.

        Raises
        ------
        ValueError
            The matrix holds NaN or inf (one such value would poison every statistic); nothing
            is accumulated.
        """
        f = np.asarray(feats, dtype=np.float64)
        if not np.isfinite(f).all():
            rows = np.flatnonzero(~np.isfinite(f).reshape(len(f), -1).all(axis=1))
            raise ValueError(f"feature matrix holds NaN/inf values ({len(rows)} of {len(f)} frames, "
                             f"first at frame {rows[0]})")
        self.sum += f.sum(axis=0)
        self.sum_sq += (f * f).sum(axis=0)
        self.count += f.shape[0]

    def merge(self, other):
        """Add another accumulator's sums into this one (returns self)."""
        self.sum += other.sum
        self.sum_sq += other.sum_sq
        self.count += other.count
        return self

    @property
    def mean(self):
        return self.sum / max(self.count, 1)

    @property
    def std(self):
        var = self.sum_sq / max(self.count, 1) - self.mean ** 2
        return np.sqrt(np.maximum(var, VARIANCE_FLOOR))

    def to_kaldi(self):
        """The (2, D + 1) Kaldi stats matrix."""
        mat = np.zeros((2, len(self.sum) + 1), dtype=np.float64)
        mat[0, :-1], mat[0, -1], mat[1, :-1] = self.sum, self.count, self.sum_sq
        return mat

    @classmethod
    def from_kaldi(cls, mat):
        """Rebuild from a (2, D + 1) Kaldi stats matrix."""
        mat = np.asarray(mat, dtype=np.float64)
        stats = cls(mat.shape[1] - 1)
        stats.sum, stats.count, stats.sum_sq = mat[0, :-1].copy(), int(round(mat[0, -1])), mat[1, :-1].copy()
        return stats

    def save(self, path):
        """Write as a Kaldi binary matrix (readable by ``kaldiio.load_mat``), atomically."""
        import kaldiio

        with atomic_open(path, "wb") as f:
            kaldiio.save_mat(f, self.to_kaldi())

    @classmethod
    def load(cls, path):
        """Read a ``cmvn.ark`` written by :meth:`save` (a Kaldi binary matrix, read as data: the
        path is opened as a file, never run as a command).

        Raises
        ------
        ValueError
            Naming the file: it is missing, holds no (2, D + 1) statistics matrix, or holds NaN/inf.
        """
        from masr.data.datadir import read_ark_entry

        if not os.path.isfile(path):
            raise ValueError(f"{path}: CMVN statistics not found (written by the features stage, "
                             f"masr.features.extract)")
        try:
            mat = read_ark_entry(f"{path}:0")
        except (ValueError, OSError) as e:
            raise ValueError(f"{path}: not CMVN statistics ({e})") from None
        if mat.ndim != 2 or mat.shape[0] != 2 or mat.shape[1] < 2:
            raise ValueError(f"{path}: CMVN statistics must be a (2, D + 1) matrix, found shape {mat.shape}")
        if not np.isfinite(mat).all():
            raise ValueError(f"{path}: CMVN statistics hold NaN/inf; extract the features again")
        return cls.from_kaldi(mat)


class GlobalCMVN(torch.nn.Module):
    """Normalise features with fixed global statistics: ``(x - mean) / std``.

    Arguments
    ---------
    stats : CMVNStats

    Example
    -------
    >>> s = CMVNStats(2); s.add(np.array([[0.0, 1.0], [2.0, 3.0]]))
    >>> GlobalCMVN(s)(torch.tensor([[[0.0, 1.0], [2.0, 3.0]]]))  # (B, T, D)
    tensor([[[-1., -1.],
             [ 1.,  1.]]])
    """

    def __init__(self, stats):
        super().__init__()
        self.register_buffer("mean", torch.tensor(stats.mean, dtype=torch.float32))
        self.register_buffer("istd", torch.tensor(1.0 / stats.std, dtype=torch.float32))

    def forward(self, x):
        """x: (..., D) -> (..., D)."""
        return (x - self.mean) * self.istd
