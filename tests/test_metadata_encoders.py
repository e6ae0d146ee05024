"""masr.metadata: fixed metadata encoders (lang2vec, geo, text, onehot) and their registry (masr.metadata.encoders)."""

import math
import os

import pytest
import torch
import yaml

from masr.metadata import encoders as E
from masr.metadata import lang2vec as L2V
from masr.metadata.encoders import build_metadata_encoder, encoder_from_state
from masr.metadata.geo import GeoEncoder
from masr.metadata.lang2vec import Lang2VecEncoder
from masr.metadata.onehot import OneHotEncoder
from masr.metadata.text import TextEncoder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS_YAML = os.path.join(ROOT, "egs", "mini", "conf", "corpus.yaml")

#: dimensions documented in the docstring of masr.metadata.lang2vec (lang2vec 1.1.2).
LANG2VEC_DIMS = {
    "syntactic": 103,
    "phonological": 28,
    "inventory": 158,
    "geographic": 299,
    "genetic": 3718,
    "featural": 289,
}


def cosine_distance(a, b):
    return 1.0 - torch.nn.functional.cosine_similarity(a, b, dim=-1)


@pytest.fixture(scope="module")
def corpus_codes():
    with open(CORPUS_YAML, encoding="utf-8") as f:
        return [lang["iso"] for lang in yaml.safe_load(f)["languages"]]


@pytest.fixture(scope="module")
def lang2vec_encoders(corpus_codes):
    """One encoder per type, its vectors for every corpus language fetched once (~5 s)."""
    out = {}
    for feature in LANG2VEC_DIMS:
        enc = build_metadata_encoder("lang2vec", feature=feature, vocabulary=corpus_codes, source="conf/corpus.yaml")
        out[feature] = (enc, enc.encode(corpus_codes))
    return out


def vec(encoders, feature, code):
    enc, _ = encoders[feature]
    return enc.encode([code])[0]


# -- lang2vec ---------------------------------------------------------------------------------


def test_lang2vec_every_type_finite_with_documented_dim(lang2vec_encoders, corpus_codes):
    assert len(corpus_codes) == 26
    for feature, (enc, e) in lang2vec_encoders.items():
        assert enc.dim == LANG2VEC_DIMS[feature], feature
        assert e.shape == (26, LANG2VEC_DIMS[feature]) and e.dtype == torch.float32
        assert torch.isfinite(e).all(), feature
        assert (e.norm(dim=1) > 0).all(), feature
        assert enc.missing == {}, feature  # no "--" for these languages
        assert not e.requires_grad


def test_lang2vec_featural_is_syntax_phonology_inventory(lang2vec_encoders):
    _, featural = lang2vec_encoders["featural"]
    parts = [lang2vec_encoders[f][1] for f in ("syntactic", "phonological", "inventory")]
    assert torch.equal(featural, torch.cat(parts, dim=1))


def test_lang2vec_syntactic_serbian_closer_to_croatian_than_japanese(lang2vec_encoders):
    v = lambda c: vec(lang2vec_encoders, "syntactic", c)  # noqa: E731
    assert cosine_distance(v("srp"), v("hrv")) < cosine_distance(v("srp"), v("jpn"))


def test_lang2vec_geographic_swedish_closer_to_norwegian_than_japanese(lang2vec_encoders):
    v = lambda c: vec(lang2vec_encoders, "geographic", c)  # noqa: E731
    assert cosine_distance(v("swe"), v("nob")) < cosine_distance(v("swe"), v("jpn"))


def test_lang2vec_genetic_same_family_closer(lang2vec_encoders):
    v = lambda c: vec(lang2vec_encoders, "genetic", c)  # noqa: E731
    assert cosine_distance(v("ukr"), v("rus")) < cosine_distance(v("ukr"), v("tur"))


def test_lang2vec_genetic_all_zero_vectors_substituted_or_recorded(lang2vec_encoders, monkeypatch):
    enc, _ = lang2vec_encoders["genetic"]
    assert enc.substituted == {"nob": "nor"}  # URIEL has no family for nob, only for nor
    v = lambda c: vec(lang2vec_encoders, "genetic", c)  # noqa: E731
    assert torch.equal(v("nob"), enc._vectors["nor"])
    assert cosine_distance(v("swe"), v("nob")) < cosine_distance(v("swe"), v("jpn"))
    syn, _ = lang2vec_encoders["syntactic"]
    assert syn.substituted == {}  # only all-zero vectors are substituted
    # without substitutes: kept as zeros and recorded; one lang2vec call for the batch
    l2v = L2V._lang2vec()
    monkeypatch.setattr(l2v, "get_features", lambda codes, fs: {c: [0.0, 1.0] if c == "swe" else [0, 0] for c in codes})
    bare = Lang2VecEncoder("genetic", substitutes={})
    assert bare.encode(["nob", "eus", "swe"]).tolist() == [[0, 0], [0, 0], [0, 1]]
    assert bare.empty == ["eus", "nob"] and bare.substituted == {}
    with pytest.raises(ValueError, match="'zz' is not in URIEL.*substitute"):
        Lang2VecEncoder("genetic", substitutes={"eus": "zz"}).encode(["eus"])


def test_lang2vec_labels_consistent_and_growing(lang2vec_encoders, corpus_codes):
    enc, _ = lang2vec_encoders["syntactic"]
    ids = enc.labels(corpus_codes).tolist()
    assert ids == list(range(26))  # vocabulary order
    assert enc.labels(["srp", "hrv", "srp"]).tolist() == [ids[2], ids[1], ids[2]]
    grow = Lang2VecEncoder("syntactic")
    assert grow.labels(["jpn", "hrv", "jpn"]).tolist() == [0, 1, 0]
    assert grow.labels(["eng", "hrv"]).tolist() == [2, 1]
    assert grow.vocabulary == ["jpn", "hrv", "eng"]


def test_lang2vec_unknown_code_names_code_and_source():
    enc = Lang2VecEncoder("geographic", source="data/train/utt2lang")
    for call in (enc.labels, enc.encode):
        with pytest.raises(ValueError) as err:
            call(["hrv", "xx"])
        msg = str(err.value)
        assert msg.startswith("data/train/utt2lang: ") and "'xx'" in msg and "URIEL" in msg and "hrv" in msg
    with pytest.raises(ValueError, match="did you mean 'hrv'"):
        enc.labels(["hr"])  # ISO 639-1
    with pytest.raises(ValueError, match="'bjp' is not in URIEL"):
        enc.encode(["bjp"])  # lang2vec knows it only for its "learned" vectors
    with pytest.raises(ValueError, match="data/x: language 'qqq'"):
        Lang2VecEncoder("syntactic", vocabulary=["hrv", "qqq"], source="data/x")
    with pytest.raises(ValueError, match="unknown lang2vec feature 'syntax'"):
        Lang2VecEncoder("syntax")


def test_lang2vec_fetches_each_code_once_and_state_needs_no_lang2vec(monkeypatch):
    l2v = L2V._lang2vec()
    calls = []
    real = l2v.get_features

    def counting(codes, feature_set, *a, **k):
        calls.append(list(codes))
        return real(codes, feature_set, *a, **k)

    monkeypatch.setattr(l2v, "get_features", counting)
    enc = Lang2VecEncoder("phonological", vocabulary=["hrv", "srp"])
    a = enc.encode(["srp", "jpn", "srp"])
    b = enc.encode(["hrv", "jpn", "srp"])
    assert calls == [["hrv", "jpn", "srp"]]  # the vocabulary's codes fetched with the batch's
    assert torch.equal(a[0], b[2]) and torch.equal(a[1], b[1])
    enc.labels(["jpn"])

    def refuse(*a, **k):
        raise AssertionError("lang2vec called while restoring a state")

    monkeypatch.setattr(l2v, "get_features", refuse)
    state = enc.state_dict()
    copy = encoder_from_state(state)
    assert isinstance(copy, Lang2VecEncoder) and copy.feature == "phonological"
    assert copy.vocabulary == ["hrv", "srp", "jpn"] and copy.dim == enc.dim
    assert torch.equal(copy.encode(["hrv", "jpn", "srp"]), b)
    assert torch.equal(copy.labels(["jpn", "hrv"]), enc.labels(["jpn", "hrv"]))
    with pytest.raises(ValueError, match="differs"):
        Lang2VecEncoder("syntactic").load_state_dict(state)


def test_lang2vec_missing_values_replaced_with_zero_and_counted(monkeypatch):
    l2v = L2V._lang2vec()
    monkeypatch.setattr(l2v, "get_features", lambda codes, fs: {c: [1.0, "--", 0.5] for c in codes})
    enc = Lang2VecEncoder("geographic")
    assert enc.encode(["hrv"]).tolist() == [[1.0, 0.0, 0.5]]
    assert enc.missing == {"hrv": 1}
    monkeypatch.setattr(l2v, "get_features", lambda codes, fs: {c: ["--", "--"] for c in codes})
    with pytest.raises(ValueError, match="'srp' has no geographic features"):
        Lang2VecEncoder("geographic").encode(["srp"])


# -- geo --------------------------------------------------------------------------------------


def haversine_angle(lat1, lon1, lat2, lon2):
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * math.asin(min(1.0, math.sqrt(h)))


def ranks(x):
    r = torch.empty(len(x))
    r[torch.argsort(x)] = torch.arange(len(x), dtype=torch.float)
    return r


def test_geo_cosine_distance_monotone_in_great_circle_distance():
    g = torch.Generator().manual_seed(0)
    n = 400
    lat = torch.rand(2, n, generator=g, dtype=torch.float64) * 180 - 90
    lon = torch.rand(2, n, generator=g, dtype=torch.float64) * 360 - 180
    a = [f"{lat[0, i]:.4f} {lon[0, i]:.4f}" for i in range(n)]
    b = [f"{lat[1, i]:.4f} {lon[1, i]:.4f}" for i in range(n)]
    enc = GeoEncoder()
    ea, eb = enc.encode(a), enc.encode(b)
    assert ea.shape == (n, 3) and ea.dtype == torch.float32
    assert torch.allclose(ea.norm(dim=1), torch.ones(n), atol=1e-6)
    cos_d = cosine_distance(ea.double(), eb.double())
    angle = torch.tensor(
        [haversine_angle(*map(float, s.split()), *map(float, t.split())) for s, t in zip(a, b)], dtype=torch.float64
    )
    assert torch.allclose(cos_d, 1 - angle.cos(), atol=1e-5)  # 1 - cos(central angle)
    order = torch.argsort(angle)
    assert (cos_d[order].diff() >= -1e-6).all()  # sorted by distance -> sorted cosine distance
    ra, rc = ranks(angle), ranks(cos_d)
    spearman = 1 - 6 * ((ra - rc) ** 2).sum() / (n * (n**2 - 1))
    assert spearman > 0.9999


def test_geo_cells():
    enc = build_metadata_encoder("geo", cell_degrees=5.0)
    zagreb, zagreb2, belgrade, sarajevo = "45.81 15.98", "45.70 16.10", "44.79 20.45", "43.86 18.41"
    ids = enc.labels([zagreb, zagreb2, belgrade, sarajevo, zagreb]).tolist()
    assert ids[0] == ids[1] == ids[4]
    assert len({ids[0], ids[2], ids[3]}) == 3
    assert enc.labels(["44.99 15.0", "45.01 15.0"]).unique().numel() == 2  # across a cell edge
    assert enc.labels(["10 179.99", "10 180"]).unique().numel() == 2
    assert enc.labels(["10 -180", "10 180"]).unique().numel() == 1  # the same meridian
    assert enc.labels(["90 0", "89 0"]).unique().numel() == 1  # the pole is in the top row
    coarse = GeoEncoder(cell_degrees=30.0)
    assert coarse.labels([zagreb, belgrade, sarajevo]).unique().numel() == 1
    copy = encoder_from_state(enc.state_dict())
    assert torch.equal(copy.labels([sarajevo, zagreb]), enc.labels([sarajevo, zagreb]))


@pytest.mark.parametrize("bad", ["45.8", "45.8 15.9 3", "north 15.9", "", "95 10", "10 200", "nan 3"])
def test_geo_malformed_value(bad):
    enc = GeoEncoder(source="data/train/utt2geo")
    for call in (enc.labels, enc.encode):
        with pytest.raises(ValueError) as err:
            call(["45.8 15.9", bad])
        assert str(err.value).startswith("data/train/utt2geo: ") and repr(bad) in str(err.value)


# -- text -------------------------------------------------------------------------------------


def test_text_deterministic_and_independent_of_encounter_order():
    texts = ["dobro jutro", "добро јутро", "おはよう", "좋은 아침", "सुप्रभात", "صبح بخیر"]
    a = TextEncoder(dim=16, seed=3)
    b = TextEncoder(dim=16, seed=3)
    torch.manual_seed(1)
    ea = a.encode(texts)
    torch.manual_seed(2)
    b.encode(list(reversed(texts)) + ["zzz qqq"])  # b meets the characters in another order
    eb = b.encode(texts)
    assert ea.shape == (6, 16) and torch.isfinite(ea).all()
    assert torch.equal(ea, eb)
    assert torch.equal(a.labels(texts), b.labels(list(reversed(texts))).flip(0))
    assert not torch.equal(TextEncoder(dim=16, seed=4).encode(texts), ea)
    # e is the mean of the characters' vectors, spaces excluded
    mean = torch.stack([a.char_vector(c) for c in "dobrojutro"]).mean(0)
    assert torch.allclose(ea[0], mean)


def test_text_normalisation_gives_equal_labels_and_vectors():
    enc = TextEncoder()
    variants = ["Dobro jutro", "  dobro\tJUTRO ", "dobro   jutro", "DOBRO JUTRO"]
    assert enc.labels(variants).unique().numel() == 1
    assert all(torch.equal(v, enc.encode(variants)[0]) for v in enc.encode(variants))
    nfd, nfc = "cu\u0301", "c\u00fa"  # the same text, decomposed and composed
    assert enc.labels([nfd]).item() == enc.labels([nfc]).item()
    assert torch.equal(enc.encode([nfd]), enc.encode([nfc]))
    with pytest.raises(ValueError, match="empty transcript"):
        enc.encode([" \t "])


def test_text_different_texts_different_ids():
    enc = TextEncoder()
    texts = [f"word{i} other {i % 7}" for i in range(500)] + ["dobro jutro", "dobrojutro", "jutro dobro"]
    ids = enc.labels(texts)
    assert ids.dtype == torch.long and (ids >= 0).all()
    assert ids.unique().numel() == len(texts)


def test_text_state_dict_round_trip_is_tiny():
    enc = TextEncoder(dim=32, seed=7)
    texts = ["kuća", "дом", "house"]
    enc.encode(texts)
    state = enc.state_dict()
    assert state == {"kind": "text", "config": {"dim": 32, "seed": 7}}
    copy = encoder_from_state(state)
    assert torch.equal(copy.encode(texts), enc.encode(texts))
    assert torch.equal(copy.labels(texts), enc.labels(texts))
    TextEncoder(dim=32, seed=7).load_state_dict(state)
    with pytest.raises(ValueError, match="differs"):
        TextEncoder(dim=32, seed=8).load_state_dict(state)


# -- onehot -----------------------------------------------------------------------------------


def test_onehot_fixed_vocabulary():
    enc = build_metadata_encoder("onehot", vocabulary=["bos", "hrv", "srp"], source="data/train/utt2lang")
    assert enc.dim == 3
    assert enc.labels(["srp", "bos", "srp"]).tolist() == [2, 0, 2]
    e = enc.encode(["srp", "bos"])
    assert e.dtype == torch.float32 and e.tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match=r"data/train/utt2lang: value 'jpn' is not in the fixed vocabulary \[bos, hrv, srp\]"):
        enc.labels(["jpn"])
    assert enc.vocabulary == ["bos", "hrv", "srp"]
    copy = encoder_from_state(enc.state_dict())
    assert copy.dim == 3 and torch.equal(copy.encode(["hrv"]), enc.encode(["hrv"]))
    with pytest.raises(ValueError, match="repeated"):
        OneHotEncoder(vocabulary=["a", "b", "a"])


def test_onehot_label_only_mode():
    enc = OneHotEncoder()
    assert enc.dim == 0
    assert enc.labels(["spk1", "spk2", "spk1"]).tolist() == [0, 1, 0]
    assert enc.encode(["spk3", "spk1"]).shape == (2, 0)
    assert enc.dim == 0 and enc.vocabulary == ["spk1", "spk2", "spk3"]
    labels, meta = enc(["spk2"])
    assert labels.tolist() == [1] and meta.shape == (1, 0)
    copy = OneHotEncoder()
    copy.load_state_dict(enc.state_dict())
    assert copy.labels(["spk3"]).tolist() == [2]
    with pytest.raises(TypeError, match="list of strings"):
        enc.labels("spk1")  # a bare string is not a batch


# -- registry ---------------------------------------------------------------------------------


def test_registry_builds_by_name():
    assert set(E.REGISTRY) >= {"lang2vec", "geo", "text", "onehot"}
    assert isinstance(build_metadata_encoder("geo"), GeoEncoder)
    assert isinstance(build_metadata_encoder("text", dim=8), TextEncoder)
    assert isinstance(build_metadata_encoder("onehot"), OneHotEncoder)
    assert isinstance(build_metadata_encoder("lang2vec", feature="genetic"), Lang2VecEncoder)
    for kind, cls in E.REGISTRY.items():
        assert cls.name == kind


def test_registry_errors():
    with pytest.raises(ValueError) as err:
        build_metadata_encoder("wals")
    msg = str(err.value)
    assert "'wals'" in msg and all(k in msg for k in ("geo", "lang2vec", "onehot", "text"))
    with pytest.raises(TypeError, match="'geo'.*dim"):
        build_metadata_encoder("geo", dim=3)


def test_register_new_kind_is_one_class():
    @E.register("test_length")
    class Length(E.MetadataEncoder):
        dim = 1

        def encode(self, values):
            return torch.tensor([[float(len(v))] for v in self._check_values(values)])

    try:
        enc = build_metadata_encoder("test_length")
        assert enc.encode(["ab", "abc"]).tolist() == [[2.0], [3.0]]
        assert enc.labels(["ab", "abc", "ab"]).tolist() == [0, 1, 0]
        with pytest.raises(ValueError, match="already registered"):
            E.register("test_length")(type("Other", (E.MetadataEncoder,), {}))
    finally:
        E.REGISTRY.pop("test_length")
