"""The ``onehot`` metadata encoder: categories -> vocabulary index and one-hot row (or labels only).

See ``masr.metadata.encoders`` for the interface and the registry.

The encoder
-----------
``onehot`` (value: any category string; the LASR encoder)
    label = index in a vocabulary. With a vocabulary fixed at construction, e = the one-hot
    row (``dim = len(vocabulary)``) and an unseen value is an error. Without one, the
    vocabulary grows as values appear, ``dim = 0`` and ``encode`` returns an empty
    ``(B, 0)`` tensor: a label-only encoder, which is what LASR uses.
"""

import torch

from masr.metadata.encoders import MetadataEncoder, register

@register("onehot")
class OneHotEncoder(MetadataEncoder):
    """Categorical values -> vocabulary index; e = one-hot row, or nothing (label-only).

    Arguments
    ---------
    vocabulary : list of str, optional
        Fixed categories in label order: ``dim = len(vocabulary)``, unseen values are an
        error. Without it the vocabulary grows as values appear and ``dim = 0`` (LASR's case).
    source : str, optional
        The data file the values come from, named in error messages.

    Example
    -------
    >>> enc = OneHotEncoder(vocabulary=["hrv", "srp", "bos"])
    >>> enc.labels(["srp", "bos"]).tolist(), enc.encode(["srp", "bos"]).tolist()
    ([1, 2], [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> lasr = OneHotEncoder()
    >>> lasr.labels(["srp", "bos", "srp"]).tolist(), lasr.dim, lasr.encode(["srp"]).shape
    ([0, 1, 0], 0, torch.Size([1, 0]))
    """

    def __init__(self, vocabulary=None, source=None):
        super().__init__(source)
        self.fixed = vocabulary is not None
        if self.fixed:
            vocabulary = [v.strip() for v in self._check_values(vocabulary)]
            if not vocabulary:
                raise ValueError(f"{self._where()}empty vocabulary (pass None for a label-only encoder)")
            self._set_vocabulary(vocabulary)

    @property
    def dim(self):
        return len(self.vocabulary) if self.fixed else 0

    def config(self):
        return {"vocabulary": list(self.vocabulary) if self.fixed else None}

    def _id(self, key):
        if self.fixed and key not in self._index:
            shown = ", ".join(self.vocabulary[:20]) + (", ..." if len(self.vocabulary) > 20 else "")
            raise ValueError(f"{self._where()}value {key!r} is not in the fixed vocabulary [{shown}]")
        return super()._id(key)

    def encode(self, values):
        ids = self.labels(values)
        if not self.fixed:
            return torch.zeros(len(ids), 0)
        return torch.nn.functional.one_hot(ids, num_classes=self.dim).float()
