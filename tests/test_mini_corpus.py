"""masr.corpora.mini: the embedded corpus is deterministic, split as in the paper, and valid."""

import copy
import hashlib
import os

import pytest
import yaml

from masr.corpora import mini
from masr.data.datadir import DataDir
from masr.data.validate import validate_data_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "egs", "mini", "conf", "corpus.yaml")


def tiny_config(seed=1234):
    with open(CONFIG, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    keep = {"hrv", "srp", "bos", "jpn"}
    config["languages"] = [lang for lang in config["languages"] if lang["iso"] in keep]
    config.update(seed=seed, vocab_size=300, speakers={"pretrain": 1, "train": 2, "dev": 1, "test": 1},
                  utts_per_speaker={"pretrain": 2, "train": 2, "dev": 1, "test": 1})
    return config


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("mini")
    summary = mini.build_corpus(tiny_config(), str(out / "db"), str(out / "data"), nj=2)
    return out, summary


def test_full_config_meets_the_corpus_requirements():
    with open(CONFIG, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    isos = {lang["iso"] for lang in config["languages"]}
    assert len(isos) >= 20
    for group in [{"bos", "hrv", "srp"}, {"swe", "nob", "dan"}, {"spa", "cat", "por"},
                  {"rus", "ukr", "bul", "mkd"}, {"hin", "urd"}, {"ind", "zsm"}, {"jpn", "kor"}]:
        assert group <= isos
    pretrain = {lang["iso"] for lang in config["languages"] if lang["pretrain"]}
    assert 0 < len(pretrain) < len(isos)  # overlapped and non-overlapped languages both exist


def test_plan_is_deterministic_and_seed_dependent():
    a, b = mini.plan_corpus(tiny_config()), mini.plan_corpus(tiny_config())
    assert [(u.utt, u.text, u.speaker) for u in a] == [(u.utt, u.text, u.speaker) for u in b]
    c = mini.plan_corpus(tiny_config(seed=99))
    assert [u.utt for u in a] == [u.utt for u in c]  # ids depend on the sizes only
    assert [u.text for u in a] != [u.text for u in c]


def test_build_is_deterministic_including_audio(built, tmp_path):
    out, _ = built
    mini.build_corpus(tiny_config(), str(tmp_path / "db"), str(tmp_path / "data"), nj=1)
    for split in mini.SPLITS:
        for name in ("wav.scp", "text", "utt2spk", "utt2lang", "utt2geo", "utt2dur"):
            if name == "wav.scp":
                continue  # absolute paths differ
            assert (out / "data" / split / name).read_text() == (tmp_path / "data" / split / name).read_text()

    def digest(db):
        files = sorted(p for p in (db / "wav").rglob("*.wav"))
        return [(p.name, hashlib.md5(p.read_bytes()).hexdigest()) for p in files]

    assert digest(out / "db") == digest(tmp_path / "db")  # nj=2 vs nj=1, same bytes


def test_splits_languages_and_speakers(built):
    out, summary = built
    dirs = {s: DataDir(out / "data" / s) for s in mini.SPLITS}
    langs = {s: set(d.stream("lang").values()) for s, d in dirs.items()}
    assert langs["pretrain"] == {"hrv", "srp", "jpn"}  # overlapped languages only
    assert langs["train"] == langs["dev"] == langs["test"] == {"hrv", "srp", "bos", "jpn"}
    spks = {s: set(d.read("utt2spk").values()) for s, d in dirs.items()}
    for held_out in ("dev", "test"):
        assert not spks[held_out] & (spks["train"] | spks["pretrain"])
    assert not spks["dev"] & spks["test"] and not spks["train"] & spks["pretrain"]
    assert summary["languages"] == 4 and summary["pretrain_languages"] == 3
    assert summary["speakers"] == 3 * 1 + 4 * (2 + 1 + 1)


def test_every_split_validates_with_metadata_streams(built):
    out, _ = built
    for split in mini.SPLITS:
        report = validate_data_dir(out / "data" / split)
        assert report.streams == ["gender", "geo", "lang", "spk", "text"]


def test_speaker_metadata_is_consistent(built):
    out, _ = built
    dd = DataDir(out / "data" / "train")
    regions = {lang["iso"]: lang["region"] for lang in tiny_config()["languages"]}
    utt2spk, geo, lang = dd.read("utt2spk"), dd.stream("geo"), dd.stream("lang")
    for utt, spk in utt2spk.items():
        lat, lon = map(float, geo[utt].split())
        lat_lo, lat_hi, lon_lo, lon_hi = regions[lang[utt]]
        assert lat_lo <= lat <= lat_hi and lon_lo <= lon <= lon_hi
        assert spk.startswith(lang[utt]) and utt.startswith(spk + "_")
    # one home per speaker
    homes = {}
    for utt, spk in utt2spk.items():
        assert homes.setdefault(spk, geo[utt]) == geo[utt]


def test_scripts_of_the_texts(built):
    out, _ = built
    dd = DataDir(out / "data" / "train")
    texts, lang = dd.stream("text"), dd.stream("lang")
    for utt, text in texts.items():
        words = text.split()
        assert 4 <= len(words) <= 10
        if lang[utt] == "srp":
            assert mini.in_script(text.replace(" ", ""), ["CYRILLIC"]), text
        if lang[utt] == "jpn":
            assert mini.in_script(text.replace(" ", ""), ["HIRAGANA", "KATAKANA"]), text


def test_speakers_tsv_describes_every_speaker(built):
    out, summary = built
    lines = (out / "db" / "speakers.tsv").read_text().splitlines()
    assert lines[0].split("\t")[:4] == ["spk", "iso", "split", "voice"]
    assert len(lines) - 1 == summary["speakers"]


def test_vocabulary_filters_foreign_scripts():
    vocab = mini.load_vocabulary({"iso": "jpn", "words": "ja", "script": ["HIRAGANA", "KATAKANA"]}, 100)
    assert len(vocab) == 100 and all(mini.in_script(w, ["HIRAGANA", "KATAKANA"]) for w in vocab)
    with pytest.raises(ValueError, match="usable words"):
        mini.load_vocabulary({"iso": "srp", "words": "sh", "script": "HANGUL"}, 100)


def test_config_is_not_mutated():
    config = tiny_config()
    before = copy.deepcopy(config)
    mini.plan_corpus(config)
    assert config == before
