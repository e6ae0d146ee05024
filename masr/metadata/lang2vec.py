"""The ``lang2vec`` metadata encoder: URIEL language vectors (lang2vec) for ISO 639-3 codes.

See ``masr.metadata.encoders`` for the interface and the registry.

The encoder
-----------
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
"""

import logging

import torch

from masr.metadata.encoders import MetadataEncoder, register

logger = logging.getLogger(__name__)


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
