"""masr.corpora.fsdd: the FSDD data directory, from tiny generated trees in the upstream layout."""

import json
import os
import tarfile

import numpy as np
import pytest
import soundfile as sf

from masr.corpora import fsdd
from masr.data.datadir import DataDir
from masr.data.validate import validate_data_dir

SPEAKERS = {
    "alice": {"gender": "female", "accent": "USA/neutral", "language": "english"},
    "bob": {"gender": "male", "accent": "DEU/German", "language": "english"},
}
# file name -> expected utterance id
RECORDINGS = {"0_alice_0.wav": "alice-0-00", "0_alice_5.wav": "alice-0-05", "3_bob_4.wav": "bob-3-04",
              "9_bob_12.wav": "bob-9-12", "7_alice_49.wav": "alice-7-49"}


def make_fsdd(folder, names=RECORDINGS, metadata="json"):
    """An FSDD folder: ``recordings/`` with short 8 kHz tones, plus the speaker metadata."""
    rec = os.path.join(folder, "recordings")
    os.makedirs(rec)
    for i, name in enumerate(sorted(names)):
        t = np.arange(int(8000 * (0.2 + 0.05 * i))) / 8000
        sf.write(os.path.join(rec, name), 0.3 * np.sin(2 * np.pi * 300 * t), 8000, subtype="PCM_16")
    if metadata == "json":
        with open(os.path.join(folder, "speakers.json"), "w") as f:
            json.dump(SPEAKERS, f)
    else:  # upstream: a Python module assigning the dictionary
        with open(os.path.join(folder, "metadata.py"), "w") as f:
            f.write(f'"""A python dictionary to store meta-data about the speakers."""\n\nmetadata = {SPEAKERS!r}\n')
    return folder


def test_prepare_writes_a_valid_data_dir_with_every_label(tmp_path):
    make_fsdd(tmp_path / "root" / "fsdd")
    out = tmp_path / "data" / "fsdd"
    files = fsdd.prepare(str(tmp_path / "root"), str(out))
    report = validate_data_dir(out)
    assert report.num_utterances == 5 and report.num_speakers == 2
    assert report.streams == ["accent", "digit", "gender", "lang", "spk", "subset", "text"]
    dd = DataDir(out)
    assert dd.utt_ids == sorted(RECORDINGS.values())
    assert dd.stream("spk") == {"alice-0-00": "alice", "alice-0-05": "alice", "alice-7-49": "alice",
                                "bob-3-04": "bob", "bob-9-12": "bob"}
    assert dd.stream("digit") == {"alice-0-00": "0", "alice-0-05": "0", "alice-7-49": "7",
                                  "bob-3-04": "3", "bob-9-12": "9"}
    assert dd.stream("text") == {"alice-0-00": "zero", "alice-0-05": "zero", "alice-7-49": "seven",
                                 "bob-3-04": "three", "bob-9-12": "nine"}
    assert dd.stream("subset") == {"alice-0-00": "test", "alice-0-05": "train", "alice-7-49": "train",
                                   "bob-3-04": "test", "bob-9-12": "train"}
    assert dd.stream("accent") == {u: "USA_neutral" if u.startswith("alice") else "DEU_German" for u in dd.utt_ids}
    assert dd.stream("gender") == {u: "f" if u.startswith("alice") else "m" for u in dd.utt_ids}
    assert set(dd.stream("lang").values()) == {"eng"}
    wav = dd.read("wav.scp")
    for name, utt in RECORDINGS.items():
        assert wav[utt] == str(tmp_path / "root" / "fsdd" / "recordings" / name)
    assert files["utt2digit"] == dd.stream("digit")


def test_data_root_may_be_the_fsdd_folder_and_rerun_is_identical(tmp_path):
    make_fsdd(tmp_path / "fsdd")
    a, b = tmp_path / "a", tmp_path / "b"
    fsdd.prepare(str(tmp_path), str(a))
    fsdd.prepare(str(tmp_path / "fsdd"), str(b))
    fsdd.prepare(str(tmp_path / "fsdd"), str(b))  # re-run over its own output
    assert sorted(os.listdir(a)) == sorted(os.listdir(b))
    for name in os.listdir(a):
        assert (a / name).read_text() == (b / name).read_text()


def test_upstream_checkout_with_metadata_py(tmp_path):
    make_fsdd(tmp_path / "fsdd" / "free-spoken-digit-dataset-1.0.10", metadata="py")
    fsdd.prepare(str(tmp_path), str(tmp_path / "out"))
    validate_data_dir(tmp_path / "out")
    assert DataDir(tmp_path / "out").stream("accent")["bob-3-04"] == "DEU_German"


@pytest.mark.parametrize("bad", ["0_alice.wav", "x_alice_1.wav", "0_alice_1.flac", "10_alice_1.wav"])
def test_bad_file_name_is_named(tmp_path, bad):
    make_fsdd(tmp_path / "fsdd", names=list(RECORDINGS) + [bad])
    with pytest.raises(ValueError, match=bad.replace(".", r"\.") + ": not an FSDD recording name"):
        fsdd.prepare(str(tmp_path), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_unknown_speaker_is_named(tmp_path):
    make_fsdd(tmp_path / "fsdd", names=list(RECORDINGS) + ["1_carol_3.wav"])
    with pytest.raises(ValueError, match=r"1_carol_3\.wav: speaker 'carol' is not in the speaker metadata"):
        fsdd.prepare(str(tmp_path), str(tmp_path / "out"))


def test_missing_corpus_and_metadata(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match=r"looked for .*fsdd/recordings"):
        fsdd.prepare(str(tmp_path), str(tmp_path / "out"))
    assert fsdd.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert "--download" in capsys.readouterr().err
    make_fsdd(tmp_path / "fsdd")
    os.remove(tmp_path / "fsdd" / "speakers.json")
    with pytest.raises(FileNotFoundError, match="speakers.json or metadata.py"):
        fsdd.prepare(str(tmp_path), str(tmp_path / "out"))


def test_cli_downloads_the_upstream_archive(tmp_path, monkeypatch, capsys):
    src = make_fsdd(tmp_path / "src" / "free-spoken-digit-dataset-1.0.10", metadata="py")
    archive = tmp_path / "release.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(src, arcname="free-spoken-digit-dataset-1.0.10")
    monkeypatch.setattr(fsdd, "URL", archive.as_uri())
    root, out = tmp_path / "downloads", tmp_path / "data" / "fsdd"
    assert fsdd.main(["--data-root", str(root), "--out", str(out), "--download"]) == 0
    assert "fsdd: 5 utterances" in capsys.readouterr().out
    assert validate_data_dir(out).num_utterances == 5
    assert fsdd.main(["--data-root", str(root), "--locate"]) == 0
    assert capsys.readouterr().out.strip() == str(root / "fsdd" / "free-spoken-digit-dataset-1.0.10")
