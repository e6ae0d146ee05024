"""The ``text`` metadata encoder: transcripts -> means of fixed seeded character vectors.

See ``masr.metadata.encoders`` for the interface and the registry.

The encoder
-----------
``text`` (value: a transcript)
    The transcript is normalised (Unicode NFC, lower case, runs of whitespace collapsed to one
    space). e = mean of fixed random character vectors over its characters (spaces excluded).
    A character's vector is drawn from a generator seeded with ``seed * 0x110000 + ord(ch)``,
    so it depends on nothing else (not on the characters seen before, not on the global RNG)
    and need not be stored: the state is just ``(seed, dim)``. label = a 63-bit hash
    (BLAKE2b) of the normalised transcript: the same text always gets the same id, in any
    process and order, with no vocabulary to keep (different texts colliding has probability
    ~n^2 / 2^64).
"""

import hashlib
import math
import unicodedata

import torch

from masr.metadata.encoders import MetadataEncoder, register

def normalize_text(text):
    """NFC, lower case, runs of whitespace collapsed to one space, no leading/trailing space.

    Example
    -------
    >>> normalize_text("  Dobro\\tJUTRO ")
    'dobro jutro'
    """
    return " ".join(unicodedata.normalize("NFC", text).lower().split())


@register("text")
class TextEncoder(MetadataEncoder):
    """Transcripts -> mean of fixed seeded character vectors; label = hash of the text.

    Arguments
    ---------
    dim : int
        Width of the character vectors.
    seed : int
        Seed of the character vectors (0 <= seed < 2**40).
    source : str, optional
        The data file the values come from, named in error messages.

    Example
    -------
    >>> enc = TextEncoder(dim=8, seed=0)
    >>> a, b = enc.encode(["Ab ba", "ab  BA"])
    >>> torch.equal(a, b), a.shape
    (True, torch.Size([8]))
    >>> x, y, z = enc.labels(["Ab ba", "ab  BA", "abba"]).tolist()
    >>> x == y != z
    True
    >>> enc.state_dict()
    {'kind': 'text', 'config': {'dim': 8, 'seed': 0}}
    """

    def __init__(self, dim=64, seed=0, source=None):
        super().__init__(source)
        if int(dim) != dim or dim < 1:
            raise ValueError(f"{self._where()}dim must be a positive integer, got {dim!r}")
        if int(seed) != seed or not 0 <= seed < 2**40:
            raise ValueError(f"{self._where()}seed must be an integer in [0, 2**40), got {seed!r}")
        self.dim, self.seed = int(dim), int(seed)
        self._chars = {}  # cache only: every vector is a function of (seed, dim, character)

    def config(self):
        return {"dim": self.dim, "seed": self.seed}

    def char_vector(self, ch):
        """The fixed vector of one character: N(0, 1/dim) entries (norm ~1)."""
        if ch not in self._chars:
            g = torch.Generator().manual_seed(self.seed * 0x110000 + ord(ch))
            self._chars[ch] = torch.randn(self.dim, generator=g) / math.sqrt(self.dim)
        return self._chars[ch]

    def _normalized(self, value):
        text = normalize_text(value)
        if not text:
            raise ValueError(f"{self._where()}empty transcript {value!r}")
        return text

    def labels(self, values):
        ids = []
        for value in self._check_values(values):
            digest = hashlib.blake2b(self._normalized(value).encode("utf-8"), digest_size=8).digest()
            ids.append(int.from_bytes(digest, "big") >> 1)  # 63 bits: fits int64
        return torch.tensor(ids, dtype=torch.long)

    def encode(self, values):
        rows = []
        for value in self._check_values(values):
            chars = [ch for ch in self._normalized(value) if ch != " "]
            rows.append(torch.stack([self.char_vector(ch) for ch in chars]).mean(dim=0))
        return torch.stack(rows) if rows else torch.zeros(0, self.dim)

    def state_dict(self):
        return {"kind": self.name, "config": self.config()}

    def load_state_dict(self, state):
        super().load_state_dict({**state, "vocabulary": []})
