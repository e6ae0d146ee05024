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
``lang2vec`` (value: an ISO 639-3 code such as ``hrv``)
    e = the language's URIEL vector from lang2vec (``lang2vec.lang2vec.get_features``), raw
    values (0/1, or 0..1 for ``geographic``), not normalised. The six types named by URIEL's
    distances map to lang2vec feature sets as follows (dimensions for lang2vec 1.1.2):

    ===============  ==========================================  =====
    ``feature``      lang2vec feature set                        dim
    ===============  ==========================================  =====
    syntactic        ``syntax_knn``                              103
    phonological     ``phonology_knn``                           28
    inventory        ``inventory_knn``                           158
    geographic       ``geo`` (distances to 299 fixed points)     299
    genetic          ``fam`` (membership of each family node)    3718
    featural         ``syntax_knn+phonology_knn+inventory_knn``  289
    ===============  ==========================================  =====

    lang2vec has no feature set called "featural"; as in URIEL's "featural" distance, it is
    the concatenation of the three typological sets (the ``+`` operator of lang2vec).
    The ``*_knn`` sets are URIEL's k-NN imputed predictions, so they have no gaps.
    label = index of the code in a vocabulary (given at construction or grown as codes appear).
    A code that URIEL does not know raises ``ValueError`` naming the code and the data file.

``geo`` (value: ``"lat lon"`` in degrees)
    e = the point on the unit sphere (cos lat cos lon, cos lat sin lon, sin lat), so that the
    cosine distance 1 - cos(central angle) is a monotone function of the great-circle
    distance. label = index of the ``cell_degrees`` x ``cell_degrees`` latitude/longitude
    cell holding the point (the cell is named ``"<row>,<col>"``, indices of its lower-left
    corner in cells), in a vocabulary grown as cells appear.

``text`` (value: a transcript)
    The transcript is normalised (Unicode NFC, lower case, runs of whitespace collapsed to one
    space). e = mean of fixed random character vectors over its characters (spaces excluded).
    A character's vector is drawn from a generator seeded with ``seed * 0x110000 + ord(ch)``,
    so it depends on nothing else (not on the characters seen before, not on the global RNG)
    and need not be stored: the state is just ``(seed, dim)``. label = a 63-bit hash
    (BLAKE2b) of the normalised transcript: the same text always gets the same id, in any
    process and order, with no vocabulary to keep (different texts colliding has probability
    ~n^2 / 2^64).

``onehot`` (value: any category string; the LASR encoder)
    label = index in a vocabulary. With a vocabulary fixed at construction, e = the one-hot
    row (``dim = len(vocabulary)``) and an unseen value is an error. Without one, the
    vocabulary grows as values appear, ``dim = 0`` and ``encode`` returns an empty
    ``(B, 0)`` tensor: a label-only encoder, which is what LASR uses.

Missing values
--------------
URIEL writes a missing feature as ``"--"``. None occur for the languages URIEL lists in the
sets used here (checked for all 3718 in lang2vec 1.1.2: ``*_knn`` are imputed, ``geo`` and
``fam`` are complete), but should one appear it is replaced with 0 (= "feature absent", the
value the binary sets already use for it) and counted in ``Lang2VecEncoder.missing``
(code -> count) with a logged warning; a vector with *every* value missing is refused
(``ValueError``).

``fam`` (genetic) has a subtler gap: a language with no family node above it gets an all-zero
vector, with no direction for a cosine distance. That is right for isolates (``eus``: related
to no other language; an eps-protected cosine gives similarity 0 to every language), but 163
of URIEL's languages are in that state, among them Norwegian Bokmal ``nob`` and Nynorsk
``nno``, for which URIEL records the family only under the macrolanguage ``nor`` (Indo-European
> ... > West Scandinavian). So an all-zero vector is replaced with that of a *substitute*
code (``substitutes``, default ``DEFAULT_SUBSTITUTES`` = ``{nob: nor, nno: nor}``; labels keep
the original code), recorded in ``Lang2VecEncoder.substituted``; an all-zero vector with no
substitute is kept, logged and recorded in ``Lang2VecEncoder.empty``. The substitution applies
only to all-zero vectors, so ``nob`` keeps its own syntactic, geographic, ... vectors.

Vocabularies
------------
Vocabularies that grow do so in the process that calls ``labels``: with several data-loader
worker processes, encode in the main process or pass the full ``vocabulary`` up front.
``state_dict`` holds everything needed to rebuild an encoder exactly (configuration,
vocabulary, and the fetched URIEL vectors); ``encoder_from_state`` rebuilds one from it alone.
"""

import hashlib
import inspect
import logging
import math
import unicodedata

import torch

logger = logging.getLogger(__name__)

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


# ---------------------------------------------------------------------------------------------
# lang2vec / URIEL

#: the six URIEL vector types -> lang2vec feature-set expressions (``+`` = concatenation).
LANG2VEC_FEATURE_SETS = {
    "syntactic": "syntax_knn",
    "phonological": "phonology_knn",
    "inventory": "inventory_knn",
    "geographic": "geo",
    "genetic": "fam",
    "featural": "syntax_knn+phonology_knn+inventory_knn",
}


def _lang2vec():
    """Import lang2vec on first use (the import loads URIEL, ~3 s)."""
    import lang2vec.lang2vec as l2v

    return l2v


#: codes whose URIEL vector is all zero, -> a code whose vector stands in (see the module docstring).
DEFAULT_SUBSTITUTES = {"nob": "nor", "nno": "nor"}


@register("lang2vec")
class Lang2VecEncoder(MetadataEncoder):
    """URIEL language vectors (lang2vec) for ISO 639-3 codes; label = the code's vocabulary id.

    Vectors are fetched from lang2vec once per code (a lang2vec call costs 0.05 s, or ~4 s
    for ``genetic`` whatever the number of codes, so every code not yet fetched, those of the
    vocabulary and their substitutes included, is fetched in one call) and kept in the state.

    Arguments
    ---------
    feature : str
        One of ``syntactic``, ``phonological``, ``inventory``, ``geographic``, ``genetic``,
        ``featural`` (see the module docstring for the lang2vec sets and dimensions).
    vocabulary : list of str, optional
        Codes in label order; codes seen later are appended.
    substitutes : dict, optional
        code -> URIEL code whose vector is used when the code's own vector is all zero
        (labels keep the code). Default ``DEFAULT_SUBSTITUTES``; ``{}`` for none.
    source : str, optional
        The data file the codes come from, named in error messages.

    Example
    -------
    >>> enc = Lang2VecEncoder("syntactic", source="data/train/utt2lang")
    >>> enc.labels(["hrv", "srp", "hrv"]).tolist()
    [0, 1, 0]
    >>> enc.encode(["hrv", "jpn"]).shape, enc.dim
    (torch.Size([2, 103]), 103)
    >>> enc.labels(["xx"])
    Traceback (most recent call last):
        ...
    ValueError: data/train/utt2lang: language 'xx' is not in URIEL (ISO 639-3 expected, e.g. 'hrv')
    """

    def __init__(self, feature="syntactic", vocabulary=None, substitutes=None, source=None):
        super().__init__(source)
        if feature not in LANG2VEC_FEATURE_SETS:
            raise ValueError(
                f"{self._where()}unknown lang2vec feature {feature!r}; expected one of {list(LANG2VEC_FEATURE_SETS)}"
            )
        self.feature = feature
        self.feature_set = LANG2VEC_FEATURE_SETS[feature]
        self.substitutes = dict(DEFAULT_SUBSTITUTES if substitutes is None else substitutes)
        self._vectors = {}  # code -> float32 tensor (dim,)
        #: code -> number of URIEL "--" values replaced with 0.
        self.missing = {}
        #: code -> the code whose vector it got (its own was all zero).
        self.substituted = {}
        #: codes whose vector is all zero (and had no substitute).
        self.empty = []
        self._dim = None
        if vocabulary is not None:
            vocabulary = [self.label_key(c) for c in self._check_values(vocabulary)]
            self._set_vocabulary(vocabulary)

    def config(self):
        return {"feature": self.feature, "substitutes": dict(sorted(self.substitutes.items()))}

    @property
    def dim(self):
        """Width of the vectors (fetches the vocabulary's vectors, or English's, if none yet)."""
        if self._dim is None:
            self._fetch(self.vocabulary or ["eng"])
        return self._dim

    def label_key(self, value):
        code = value.strip()
        l2v = _lang2vec()
        if code not in l2v.URIEL_LANGUAGES:
            hint = ""
            guess = l2v.LETTER_CODES.get(code, code.lower())
            if guess != code and guess in l2v.URIEL_LANGUAGES:
                hint = f"; did you mean {guess!r}?"
            raise ValueError(
                f"{self._where()}language {code!r} is not in URIEL (ISO 639-3 expected, e.g. 'hrv'){hint}"
            )
        return code

    def encode(self, values):
        codes = [self.label_key(v) for v in self._check_values(values)]
        self._fetch(codes + self.vocabulary)
        if not codes:
            return torch.zeros(0, self.dim)
        return torch.stack([self._vectors[c] for c in codes])

    def _fetch(self, codes):
        todo = sorted({c for c in codes if c not in self._vectors})
        if not todo:
            return
        subs = {self.substitutes[c] for c in todo if c in self.substitutes}
        query = todo + sorted(subs - set(todo) - set(self._vectors))
        for code in todo:
            self.label_key(code)  # refuse unknown codes before lang2vec sees them
        for code in query[len(todo):]:
            try:
                self.label_key(code)
            except ValueError as e:
                raise ValueError(f"{e} (a substitute in {self.substitutes})") from None
        features = _lang2vec().get_features(query, self.feature_set)
        own = {code: self._to_vector(code, features[code]) for code in query}
        for code in todo:
            vector = own[code]
            sub = self.substitutes.get(code)
            if not vector.any() and sub is not None:
                stand_in = own[sub] if sub in own else self._vectors[sub]
                if stand_in.any():
                    logger.info("%slanguage %r has an all-zero URIEL %s vector; using %r's",
                                self._where(), code, self.feature, sub)
                    vector = stand_in.clone()
                    self.substituted[code] = sub
            if not vector.any():
                logger.warning(
                    "%slanguage %r has an all-zero URIEL %s vector (for genetic: no family recorded,"
                    " e.g. an isolate); its cosine similarity to every language is 0",
                    self._where(), code, self.feature,
                )
                self.empty.append(code)
            self._store(code, vector)
        for code in query[len(todo):]:
            self._store(code, own[code])

    def _to_vector(self, code, raw):
        gaps = sum(1 for x in raw if x == "--")
        if gaps == len(raw):
            raise ValueError(f"{self._where()}language {code!r} has no {self.feature} features in URIEL")
        if gaps:
            logger.warning(
                "%slanguage %r: %d of %d URIEL %s values missing, set to 0",
                self._where(), code, gaps, len(raw), self.feature,
            )
            self.missing[code] = gaps
        return torch.tensor([0.0 if x == "--" else float(x) for x in raw], dtype=torch.float32)

    def _store(self, code, vector):
        if self._dim is None:
            self._dim = vector.numel()
        elif vector.numel() != self._dim:
            raise ValueError(f"{self._where()}language {code!r}: {vector.numel()} features, expected {self._dim}")
        self._vectors[code] = vector

    def state_dict(self):
        state = super().state_dict()
        codes = sorted(self._vectors)
        state["codes"] = codes
        state["vectors"] = torch.stack([self._vectors[c] for c in codes]) if codes else torch.zeros(0, 0)
        state["missing"] = dict(self.missing)
        state["substituted"] = dict(self.substituted)
        state["empty"] = list(self.empty)
        return state

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self._vectors, self._dim = {}, None
        for code, vector in zip(state.get("codes", []), state.get("vectors", [])):
            self._store(code, vector.clone().float())
        self.missing = dict(state.get("missing", {}))
        self.substituted = dict(state.get("substituted", {}))
        self.empty = list(state.get("empty", []))


# ---------------------------------------------------------------------------------------------
# geography


def parse_lat_lon(value, where=""):
    """``"lat lon"`` (degrees) -> (lat, lon) floats, refusing anything else.

    Example
    -------
    >>> parse_lat_lon("45.8150 15.9819")
    (45.815, 15.9819)
    >>> parse_lat_lon("45.8 east")
    Traceback (most recent call last):
        ...
    ValueError: malformed location '45.8 east': expected "lat lon" in degrees, e.g. "45.81 15.98"
    """
    parts = value.split()
    try:
        if len(parts) != 2:
            raise ValueError
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f'{where}malformed location {value!r}: expected "lat lon" in degrees, e.g. "45.81 15.98"') from None
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        raise ValueError(f"{where}location {value!r} out of range (latitude -90..90, longitude -180..180)")
    return lat, lon


@register("geo")
class GeoEncoder(MetadataEncoder):
    """Locations ``"lat lon"`` -> unit vectors on the sphere; label = grid cell id.

    Arguments
    ---------
    cell_degrees : float
        Side of the latitude/longitude grid cells that define the labels.
    source : str, optional
        The data file the values come from, named in error messages.

    Example
    -------
    >>> enc = GeoEncoder(cell_degrees=5.0)
    >>> e = enc.encode(["0 0", "0 90", "90 0"])
    >>> e.round(decimals=6).abs().tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    >>> enc.labels(["44.1 17.9", "44.9 15.1", "45.1 15.1"]).tolist(), enc.vocabulary
    ([0, 0, 1], ['8,3', '9,3'])
    """

    dim = 3

    def __init__(self, cell_degrees=5.0, source=None):
        super().__init__(source)
        cell_degrees = float(cell_degrees)
        if not (math.isfinite(cell_degrees) and 0 < cell_degrees <= 180):
            raise ValueError(f"{self._where()}cell_degrees must be in (0, 180], got {cell_degrees}")
        self.cell_degrees = cell_degrees

    def config(self):
        return {"cell_degrees": self.cell_degrees}

    def label_key(self, value):
        lat, lon = parse_lat_lon(value, self._where())
        row = min(math.floor(lat / self.cell_degrees), math.ceil(90 / self.cell_degrees) - 1)  # 90 N: top row
        lon = lon - 360 if lon >= 180 else lon  # 180 E is 180 W
        col = math.floor(lon / self.cell_degrees)
        return f"{row},{col}"

    def encode(self, values):
        points = [parse_lat_lon(v, self._where()) for v in self._check_values(values)]
        if not points:
            return torch.zeros(0, 3)
        lat, lon = torch.deg2rad(torch.tensor(points, dtype=torch.float64)).unbind(dim=1)
        xyz = torch.stack([lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()], dim=1)
        return xyz.float()


# ---------------------------------------------------------------------------------------------
# transcripts


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


# ---------------------------------------------------------------------------------------------
# categories


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
