"""Fixed (non-learnable) metadata encoders: raw metadata strings -> labels and vectors.

For each metadata stream j (a ``utt2<key>`` file or ``text``, see ``masr.data.datadir``) MASR
needs, per utterance, a label phi_j (int64; same label = positive pair for triplet mining)
and a fixed vector e_j (float, ``dim`` wide) whose distances the representation is pulled
towards. LASR uses the labels only. An encoder turns a batch of the raw strings that
``masr.data.dataset.collate_feats`` returns into both:

>>> enc = build_metadata_encoder("geo", cell_degrees=5.0)
>>> enc.labels(["45.1 15.2", "45.3 16.0", "59.3 18.1"]).tolist()
[0, 0, 1]
>>> enc.encode(["45.1 15.2"]).shape
torch.Size([1, 3])

Encoders are chosen per stream in the configuration by registry name (``build_metadata_encoder(kind,
**kwargs)``); a new kind of metadata is one class decorated with ``@register("name")``.
Nothing here has parameters or gradients: every vector is a fixed function of the value.

The encoders
------------
One module each, imported (and so registered) by ``masr.metadata``; each module's docstring
says what its encoder computes:

- ``lang2vec`` (``masr.metadata.lang2vec``): URIEL language vectors for ISO 639-3 codes;
- ``geo`` (``masr.metadata.geo``): locations ``"lat lon"`` as points on the unit sphere;
- ``text`` (``masr.metadata.text``): transcripts as means of fixed random character vectors;
- ``onehot`` (``masr.metadata.onehot``): categories, one-hot or label-only (LASR).

Vocabularies
------------
Vocabularies that grow do so in the process that calls ``labels``: with several data-loader
worker processes, encode in the main process or pass the full ``vocabulary`` up front.
``state_dict`` holds everything needed to rebuild an encoder exactly (configuration,
vocabulary, and the fetched URIEL vectors); ``encoder_from_state`` rebuilds one from it alone.
"""

import inspect

import torch

#: registry name -> encoder class, filled by ``register``.
REGISTRY = {}


def register(name):
    """Class decorator adding a ``MetadataEncoder`` subclass to ``REGISTRY`` as ``name``.

    Example
    -------
    >>> @register("doc_example_constant")
    ... class Constant(MetadataEncoder):
    ...     dim = 1
    ...     def encode(self, values):
    ...         return torch.ones(len(self._check_values(values)), 1)
    >>> build_metadata_encoder("doc_example_constant").encode(["a", "b"]).tolist()
    [[1.0], [1.0]]
    >>> _ = REGISTRY.pop("doc_example_constant")
    """

    def decorator(cls):
        if name in REGISTRY and REGISTRY[name] is not cls:
            raise ValueError(f"metadata encoder kind {name!r} is already registered ({REGISTRY[name].__name__})")
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return decorator


def build_metadata_encoder(kind, **kwargs):
    """Build the registered encoder ``kind`` with its keyword arguments.

    Arguments
    ---------
    kind : str
        A key of ``REGISTRY`` (``"lang2vec"``, ``"geo"``, ``"text"``, ``"onehot"``, ...).
    **kwargs
        The encoder's constructor arguments.

    Raises
    ------
    ValueError
        On an unknown kind; the message lists the known ones.
    TypeError
        On an argument the encoder does not take; the message names the kind and its arguments.

    Example
    -------
    >>> build_metadata_encoder("onehot", vocabulary=["a", "b"]).dim
    2
    >>> build_metadata_encoder("nope")
    Traceback (most recent call last):
        ...
    ValueError: unknown metadata encoder kind 'nope'; known kinds: geo, lang2vec, onehot, text
    """
    if kind not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise ValueError(f"unknown metadata encoder kind {kind!r}; known kinds: {known}")
    cls = REGISTRY[kind]
    signature = inspect.signature(cls)
    try:
        signature.bind(**kwargs)
    except TypeError as e:
        raise TypeError(f"metadata encoder {kind!r}: {e}; it takes {list(signature.parameters)}") from None
    return cls(**kwargs)


def encoder_from_state(state, source=None):
    """Rebuild an encoder from ``state_dict()`` alone (its kind and configuration are in it).

    Example
    -------
    >>> enc = build_metadata_encoder("geo", cell_degrees=10.0)
    >>> _ = enc.labels(["1 1", "50 50"])
    >>> copy = encoder_from_state(enc.state_dict())
    >>> copy.cell_degrees, copy.vocabulary
    (10.0, ['0,0', '5,5'])
    """
    encoder = build_metadata_encoder(state["kind"], source=source, **state.get("config", {}))
    encoder.load_state_dict(state)
    return encoder


class MetadataEncoder:
    """Base class: a fixed map from raw metadata strings to labels and vectors.

    Subclasses set ``dim`` and implement ``encode``; those with a vocabulary of labels
    implement ``label_key`` (value -> vocabulary entry) and inherit ``labels``.

    Arguments
    ---------
    source : str, optional
        Where the values come from (e.g. ``"data/train/utt2lang"``), named in error messages.

    Example
    -------
    >>> from masr.metadata.onehot import OneHotEncoder
    >>> enc = OneHotEncoder()
    >>> enc.labels(["x", "y", "x"]).tolist(), enc.vocabulary
    ([0, 1, 0], ['x', 'y'])
    """

    #: registry name, set by ``register``.
    name = None
    #: width of ``encode``'s rows (0 for a label-only encoder).
    dim = 0

    def __init__(self, source=None):
        self.source = source
        self.vocabulary = []
        self._index = {}

    # -- the interface ---------------------------------------------------------------------

    def labels(self, values):
        """phi for a batch of raw strings: a (B,) int64 tensor, vocabulary ids."""
        keys = [self.label_key(v) for v in self._check_values(values)]
        return torch.tensor([self._id(k) for k in keys], dtype=torch.long)

    def encode(self, values):
        """e for a batch of raw strings: a (B, dim) float32 tensor, no gradient."""
        raise NotImplementedError

    def __call__(self, values):
        """``(labels(values), encode(values))``."""
        return self.labels(values), self.encode(values)

    def config(self):
        """The constructor arguments (except ``source``) that define this encoder."""
        return {}

    def state_dict(self):
        """Everything needed to rebuild this encoder exactly (see ``encoder_from_state``)."""
        return {"kind": self.name, "config": self.config(), "vocabulary": list(self.vocabulary)}

    def load_state_dict(self, state):
        """Restore ``state_dict()``; the kind and configuration must match this encoder's."""
        if state.get("kind") != self.name:
            raise ValueError(f"state is for a {state.get('kind')!r} encoder, not {self.name!r}")
        if state.get("config", {}) != self.config():
            raise ValueError(
                f"{self.name} encoder: state configuration {state.get('config')} differs from this "
                f"encoder's {self.config()} (use encoder_from_state to rebuild from the state)"
            )
        self._set_vocabulary(state.get("vocabulary", []))

    # -- helpers ---------------------------------------------------------------------------

    def label_key(self, value):
        """The vocabulary entry of one raw value (default: the stripped string)."""
        return value.strip()

    def _where(self):
        return f"{self.source}: " if self.source else f"{self.name} encoder: "

    def _check_values(self, values):
        if isinstance(values, str) or not all(isinstance(v, str) for v in values):
            raise TypeError(f"{self._where()}expected a list of strings, got {values!r:.80}")
        return list(values)

    def _set_vocabulary(self, vocabulary):
        vocabulary = list(vocabulary)
        if len(set(vocabulary)) != len(vocabulary):
            dupes = sorted({v for v in vocabulary if vocabulary.count(v) > 1})
            raise ValueError(f"{self._where()}vocabulary has repeated entries {dupes}")
        self.vocabulary = vocabulary
        self._index = {v: i for i, v in enumerate(vocabulary)}

    def _id(self, key):
        if key not in self._index:
            self._index[key] = len(self.vocabulary)
            self.vocabulary.append(key)
        return self._index[key]

    def __repr__(self):
        args = ", ".join(f"{k}={v!r:.60}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
