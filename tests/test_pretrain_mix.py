"""masr.corpora.mix: the pretraining mix combiner, from tiny generated data directories."""

import math
import os

import numpy as np
import pytest
import soundfile as sf

from masr.corpora import mix
from masr.data.datadir import DataDir, write_data_dir
from masr.data.validate import validate_data_dir


def make_dir(path, spk_lang, text=True, geo=True, lang=True, wav_root=None):
    """A data dir: speakers -> (language, number of utterances); short real wavs."""
    wav_root = wav_root or os.path.join(path, "wav")
    os.makedirs(wav_root, exist_ok=True)
    files = {"wav.scp": {}, "utt2spk": {}, "utt2dur": {}}
    if text:
        files["text"] = {}
    if geo:
        files["utt2geo"] = {}
    if lang:
        files["utt2lang"] = {}
    for spk, (code, n) in spk_lang.items():
        for i in range(n):
            utt = f"{spk}-{i:03d}"
            wav = os.path.join(wav_root, f"{utt}.wav")
            sf.write(wav, np.zeros(1600, dtype="float32"), 16000)
            files["wav.scp"][utt] = wav
            files["utt2spk"][utt] = spk
            files["utt2dur"][utt] = "0.100"
            if text:
                files["text"][utt] = f"word {i}"
            if geo:
                files["utt2geo"][utt] = "28.61 77.21"
            if lang:
                files["utt2lang"][utt] = code
    write_data_dir(path, files)
    return path


@pytest.fixture
def sources(tmp_path):
    a = make_dir(str(tmp_path / "a"), {"s1": ("hin", 3), "s2": ("tam", 1)})
    b = make_dir(str(tmp_path / "b"), {"s1": ("deu", 2)}, text=False)
    c = make_dir(str(tmp_path / "c"), {"x": ("hin", 4)})
    return [("cv", a), ("vp", b), ("dh", c)]


def test_combine_prefixes_ids_and_writes_a_valid_dir(tmp_path, sources):
    out = str(tmp_path / "mix")
    result = mix.combine(sources, out)
    report = validate_data_dir(out)
    assert report.num_utterances == 10 and report.num_speakers == 4
    dd = DataDir(out)
    assert dd.utt_ids[:2] == ["cv-s1-000", "cv-s1-001"]
    assert dd.read("utt2spk")["vp-s1-001"] == "vp-s1"  # same speaker name in two sources stays apart
    assert dd.read("utt2spk")["cv-s1-001"] == "cv-s1"
    assert dd.stream("corpus") == {u: u.split("-")[0] for u in dd.utt_ids}
    assert dd.stream("lang")["dh-x-002"] == "hin"
    # text missing from vp: omitted, and said; utt2geo and utt2dur carried
    assert not dd.has("text") and result["omitted"] == {"text": ["vp"]}
    assert dd.has("utt2geo") and dd.has("utt2dur")
    assert "text" not in dd.metadata_streams() and "corpus" in dd.metadata_streams()
    assert dd.read("wav.scp")["dh-x-003"] == os.path.join(sources[2][1], "wav", "x-003.wav")


def test_text_kept_when_every_source_has_it(tmp_path, sources):
    out = str(tmp_path / "mix")
    result = mix.combine([sources[0], sources[2]], out)
    assert result["omitted"] == {}
    assert DataDir(out).stream("text")["cv-s2-000"] == "word 0"
    validate_data_dir(out)


def test_source_without_utt2lang_is_named(tmp_path, sources):
    bad = make_dir(str(tmp_path / "bad"), {"s9": ("eng", 1)}, lang=False)
    with pytest.raises(mix.MixError, match=r"source 'babel': .*bad/utt2lang not found"):
        mix.combine(sources + [("babel", bad)], str(tmp_path / "mix"))


def test_bad_source_names(tmp_path, sources):
    with pytest.raises(mix.MixError, match="used twice: cv"):
        mix.combine([sources[0], ("cv", sources[1][1])], str(tmp_path / "m"))
    with pytest.raises(mix.MixError, match="source name 'c-v'"):
        mix.combine([("c-v", sources[0][1])], str(tmp_path / "m"))
    with pytest.raises(mix.MixError, match="is the output directory itself"):
        mix.combine(sources, sources[0][1])


def test_alpha_weights_hand_computed(tmp_path, sources):
    out = str(tmp_path / "mix")
    mix.combine(sources, out, alpha=0.5)
    # groups: cv/hin 3, cv/tam 1, vp/deu 2, dh/hin 4 -> sqrt: 1.732, 1, 1.414, 2
    raw = {("cv", "hin"): math.sqrt(3), ("cv", "tam"): 1.0, ("vp", "deu"): math.sqrt(2), ("dh", "hin"): 2.0}
    total = sum(raw.values())
    table = mix.read_weights(os.path.join(out, "weights.tsv"))
    assert set(table) == set(raw)
    for key, (n, w) in table.items():
        assert w == pytest.approx(raw[key] / total, rel=1e-8)
    assert table[("cv", "hin")][0] == 3
    per_utt = mix.utterance_weights(out)
    assert sum(per_utt.values()) == pytest.approx(1.0)
    assert per_utt["cv-s1-000"] == pytest.approx(math.sqrt(3) / total / 3)
    assert per_utt["cv-s2-000"] == pytest.approx(1 / total)


def test_proportional_default_and_config_weights(tmp_path, sources):
    out = str(tmp_path / "mix")
    mix.combine(sources, out)
    assert list(mix.utterance_weights(out).values()) == [pytest.approx(0.1)] * 10
    mix.combine(sources, out, weights={"cv": 0.5, "vp": 0.25, "dh/hin": 0.25})
    table = mix.read_weights(os.path.join(out, "weights.tsv"))
    assert table[("cv", "hin")][1] == pytest.approx(0.375) and table[("cv", "tam")][1] == pytest.approx(0.125)
    assert table[("dh", "hin")][1] == pytest.approx(0.25)
    with pytest.raises(mix.MixError, match="no weight for dh/hin"):
        mix.combine(sources, out, weights={"cv": 1, "vp": 1})
    with pytest.raises(mix.MixError, match="weight 'xx' names no corpus"):
        mix.combine(sources, out, weights={"cv": 1, "vp": 1, "dh": 1, "xx": 1})


def test_limit_is_seeded(tmp_path, sources):
    out1, out2 = str(tmp_path / "m1"), str(tmp_path / "m2")
    mix.combine(sources, out1, limit=2, seed=3)
    mix.combine(sources, out2, limit=2, seed=3)
    assert DataDir(out1).utt_ids == DataDir(out2).utt_ids
    assert len(DataDir(out1).utt_ids) == 2 + 1 + 2 + 2
    validate_data_dir(out1)


def test_cli(tmp_path, sources, capsys):
    out = str(tmp_path / "mix")
    args = ["--out", out, "--alpha", "0"] + [a for n, p in sources for a in ("--source", f"{n}={p}")]
    assert mix.main(args) == 0
    assert "text not written: missing from vp" in capsys.readouterr().out
    assert [w for _, w in mix.read_weights(os.path.join(out, "weights.tsv")).values()] == [pytest.approx(0.25)] * 4


# ----------------------------------------------------------------------------- Common Voice

from masr.corpora import commonvoice  # noqa: E402
from masr.corpora.download import ManualDownloadError  # noqa: E402
from tests.helpers.corpora import make_cv  # noqa: E402


def test_commonvoice_prepare_and_mix(tmp_path):
    assert commonvoice.mp3_supported()
    root = make_cv(str(tmp_path / "cv"))
    os.makedirs(tmp_path / "cv" / "cv-corpus-9.0-2022-04-27" / "hi")  # older release, ignored
    out = str(tmp_path / "data" / "cv")
    result = commonvoice.prepare(root, out, "hi,pa-IN", splits=("train", "test"))
    for split in ("train", "test"):
        validate_data_dir(os.path.join(out, split))
    train = DataDir(os.path.join(out, "train"))
    assert len(train.utt_ids) == 6
    utt = "hi-" + "a" * 20 + "-common_voice_hi_100"
    assert train.stream("text")[utt] == 'sentence "0" here'
    assert train.stream("lang")[utt] == "hin" and train.stream("locale")[utt] == "hi"
    assert train.read("utt2spk")["pa_IN-" + "b" * 20 + "-common_voice_pa_IN_101"] == "pa_IN-" + "b" * 20
    assert train.read("wav.scp")[utt].endswith("cv-corpus-17.0-2024-03-15/hi/clips/common_voice_hi_100.mp3")
    assert "utt2gender" not in result["train"]  # pa-IN rows have empty gender
    assert set(train.stream("lang").values()) == {"hin", "pan"}
    # into the mix with another corpus
    other = make_dir(str(tmp_path / "other"), {"s1": ("tam", 2)}, geo=False)
    mixed = str(tmp_path / "mix")
    res = mix.combine([("cv", os.path.join(out, "train")), ("dh", other)], mixed)
    validate_data_dir(mixed)
    assert res["omitted"] == {"utt2locale": ["dh"]}
    assert set(DataDir(mixed).stream("corpus").values()) == {"cv", "dh"}
    hi_only = commonvoice.prepare(root, str(tmp_path / "data" / "hi"), ["hi"], splits=("train",))
    assert set(hi_only["train"]["utt2gender"].values()) == {"m", "f"}


def test_commonvoice_locale_table_is_uriel_valid():
    from masr.data.validate import uriel_languages

    known = uriel_languages()
    assert [(loc, c) for loc, c in commonvoice.LOCALES.items() if c not in known] == []
    with pytest.raises(ValueError, match="'xx-YY' has no ISO 639-3 code"):
        commonvoice.uriel_code("xx-YY")


def test_commonvoice_errors(tmp_path):
    with pytest.raises(ManualDownloadError, match="commonvoice.mozilla.org/datasets"):
        commonvoice.locate(str(tmp_path / "none"), "hi")
    root = make_cv(str(tmp_path / "cv"))
    with pytest.raises(FileNotFoundError, match="locale ta not found"):
        commonvoice.locate(root, "ta")
    os.remove(os.path.join(root, "cv-corpus-17.0-2024-03-15", "hi", "clips", "common_voice_hi_101.mp3"))
    with pytest.raises(FileNotFoundError, match=r"hi/train\.tsv:3: clip .*common_voice_hi_101\.mp3 not found"):
        commonvoice.prepare(root, str(tmp_path / "out"), ["hi"], splits=("train",))


# ----------------------------------------------------------------------------- Vaani-style utt2geo

from masr.corpora import vaani  # noqa: E402


def test_vaani_utt2geo(tmp_path):
    d = make_dir(str(tmp_path / "v"), {"s1": ("kan", 3), "s2": ("hin", 1)}, geo=False)
    meta = tmp_path / "meta.csv"
    meta.write_text("File_Name,State,District,gender\n"
                    "s1-000,Karnataka,Bangalore,m\n"
                    "s1-001,karnataka,Unknown District,m\n"
                    "s1-002,Orissa,,f\n"
                    "s2-000,Bihar,Gaya,f\n"
                    "extra-row,Goa,North Goa,f\n")
    extra = tmp_path / "extra.csv"
    extra.write_text("state,district,lat,lon\nBihar,Gaya,24.79,85.00\n")
    geo = vaani.add_utt2geo(d, str(meta), key="file_name", extra_table=str(extra))
    assert geo == {"s1-000": "12.97 77.59", "s1-001": "15.3 75.7", "s1-002": "20.5 84.4", "s2-000": "24.79 85"}
    validate_data_dir(d)
    assert vaani.add_utt2geo(d, str(meta), match="stem")["s1-000"] == "12.97 77.59"  # wav stems equal utt ids here
    out = str(tmp_path / "mix")
    mix.combine([("va", d)], out)
    assert DataDir(out).stream("geo")["va-s1-000"] == "12.97 77.59"


def test_vaani_errors_name_the_row(tmp_path):
    d = make_dir(str(tmp_path / "v"), {"s1": ("kan", 1)}, geo=False)
    meta = tmp_path / "meta.csv"
    meta.write_text("file_name,state,district\ns1-000,Atlantis,Capital\n")
    with pytest.raises(vaani.GeoError, match=r"meta\.csv:2: 's1-000': unknown state 'Atlantis'"):
        vaani.add_utt2geo(d, str(meta))
    meta.write_text("file_name,state,district\nother,Goa,\n")
    with pytest.raises(vaani.GeoError, match=r"no row with file_name 's1-000'"):
        vaani.add_utt2geo(d, str(meta))
    meta.write_text("file_name,region\ns1-000,x\n")
    with pytest.raises(vaani.GeoError, match=r"meta\.csv:1: header lacks column\(s\) state district"):
        vaani.read_metadata(str(meta))


def test_vaani_tables_in_range():
    for lat, lon in list(vaani.STATES.values()) + list(vaani.DISTRICTS.values()):
        assert 6 <= lat <= 37 and 68 <= lon <= 98  # India's bounding box
    assert len(vaani.STATES) == 36
    assert all(s in vaani.STATES for s, _ in vaani.DISTRICTS)
    assert all(v in vaani.STATES for v in vaani.STATE_ALIASES.values())


# ----------------------------------------------------------------------------- VoxPopuli

import gzip  # noqa: E402
import tarfile  # noqa: E402

from masr.corpora import voxpopuli  # noqa: E402


def test_voxpopuli_download_segment_prepare(tmp_path, monkeypatch):
    # a <lang>_<year>.tar holding <lang>/<year>/<event>.ogg, served from file://
    src = tmp_path / "src"
    for lang, event in (("hr", "20190114-0900-PLENARY-7_hr"), ("de", "20190114-0900-PLENARY-7_de")):
        os.makedirs(src / lang / "2019")
        sf.write(str(src / lang / "2019" / f"{event}.ogg"), 0.1 * np.sin(np.arange(32000) / 5), 16000,
                 format="OGG", subtype="VORBIS")
        with tarfile.open(src / f"{lang}_2019.tar", "w") as t:
            t.add(src / lang, arcname=lang)
    monkeypatch.setattr(voxpopuli, "AUDIO_URL", (src.as_uri() + "/{lang}_{year}.tar"))
    root = str(tmp_path / "vp")
    voxpopuli.download(root, ["hr", "de"], years=[2019], progress=False)
    assert os.path.isfile(os.path.join(root, "raw_audios", "hr", "2019", "20190114-0900-PLENARY-7_hr.ogg"))
    ann = tmp_path / "ann.tsv.gz"
    with gzip.open(ann, "wt") as f:
        f.write("event_id\tsegment_no\tstart\tend\n"
                "20190114-0900-PLENARY-7_hr\t0\t0.0\t0.5\n"
                "20190114-0900-PLENARY-7_hr\t1\t0.5\t1.5\n"
                "20190114-0900-PLENARY-7_de\t0\t0.25\t1.0\n"
                "20200101-0900-PLENARY-1_hr\t0\t0.0\t1.0\n")  # not downloaded: skipped
    assert voxpopuli.segment(root, ["hr", "de"], annotations=str(ann)) == 3
    assert voxpopuli.segment(root, ["hr", "de"], annotations=str(ann)) == 0  # already cut
    out = str(tmp_path / "data" / "vp")
    files = voxpopuli.prepare(root, out, ["hr", "de"])
    validate_data_dir(out)
    assert files["utt2lang"] == {"de-20190114-0900-PLENARY-7_de_0": "deu", "hr-20190114-0900-PLENARY-7_hr_0": "hrv",
                                 "hr-20190114-0900-PLENARY-7_hr_1": "hrv"}
    assert abs(float(files["utt2dur"]["hr-20190114-0900-PLENARY-7_hr_1"]) - 1.0) < 0.02
    mix.combine([("vp", out)], str(tmp_path / "mix"))
    validate_data_dir(str(tmp_path / "mix"))


def test_voxpopuli_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown VoxPopuli language"):
        voxpopuli.prepare(str(tmp_path), str(tmp_path / "o"), ["xx"])
    with pytest.raises(FileNotFoundError, match="VoxPopuli not found"):
        voxpopuli.locate(str(tmp_path))
    ann = tmp_path / "a.tsv"
    ann.write_text("event_id\tsegment_no\tstart\tend\n20190114-0900-PLENARY-7_hr\t0\t1.0\t0.5\n")
    with pytest.raises(ValueError, match=r"a\.tsv:2: event 20190114-0900-PLENARY-7_hr segment 0"):
        voxpopuli.read_annotations(str(ann), ["hr"])
    from masr.data.validate import uriel_languages

    assert [c for c in voxpopuli.LANGUAGES.values() if c not in uriel_languages()] == []


# ----------------------------------------------------------------------------- BABEL

from masr.corpora import babel  # noqa: E402


def test_babel_prepare_segments(tmp_path):
    side = "BABEL_OP1_102_10036_20120413_203526_inLine"
    conv = tmp_path / "babel" / "IARPA-babel102b-v0.5a" / "conversational" / "training"
    os.makedirs(conv / "audio")
    os.makedirs(conv / "transcription")
    sf.write(str(conv / "audio" / f"{side}.sph"), 0.1 * np.sin(np.arange(8000 * 4) / 5), 8000, format="NIST",
             subtype="PCM_16")
    (conv / "transcription" / f"{side}.txt").write_text(
        "[0.000]\n<no-speech>\n[1.5]\nmoi  <breath> ghore\n[3.25]\n(())\n[3.5]\nxa jao\n[4.0]\n")
    out = str(tmp_path / "data")
    result = babel.prepare(str(tmp_path / "babel"), out, splits=("training", "dev"), decoder="python")
    assert list(result) == ["training"]
    validate_data_dir(os.path.join(out, "training"))
    dd = DataDir(os.path.join(out, "training"))
    assert dd.utt_ids == [f"{side}-0000150", f"{side}-0000350"]
    assert dd.stream("text")[f"{side}-0000150"] == "moi <breath> ghore"
    assert set(dd.stream("lang").values()) == {"asm"}
    assert dd.read("utt2dur") == {f"{side}-0000150": "1.750", f"{side}-0000350": "0.500"}
    from masr.audio import read_audio

    wave, sr = read_audio(dd.read("wav.scp")[f"{side}-0000150"], target_sr=None)
    assert sr == 8000 and len(wave) == int(1.75 * 8000)


def test_babel_errors(tmp_path):
    with pytest.raises(ManualDownloadError, match="IARPA BABEL needs a manual download"):
        babel.locate(str(tmp_path / "none"))
    bad = tmp_path / "t.txt"
    bad.write_text("[1.0]\nhi\n[0.5]\n")
    with pytest.raises(ValueError, match=r"t\.txt:3: time stamp 0.5 is not after 1"):
        babel.read_transcript(str(bad))
    from masr.data.validate import uriel_languages

    assert [c for _, c in babel.LANGUAGES.values() if c not in uriel_languages()] == []
