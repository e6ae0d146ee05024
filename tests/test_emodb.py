"""masr.corpora.emodb: the EmoDB data directory, from tiny generated trees (wav/ and flac/)."""

import os
import zipfile

import numpy as np
import pytest
import soundfile as sf

from masr.corpora import emodb
from masr.data.datadir import DataDir
from masr.data.validate import validate_data_dir

# stem -> (utt, speaker, gender, emotion, text)
FILES = {
    "03a01Wa": ("spk03-03a01Wa", "spk03", "m", "anger", "Der Lappen liegt auf dem Eisschrank."),
    "08b10Tc": ("spk08-08b10Tc", "spk08", "f", "sadness", "Die wird auf dem Platz sein, wo wir sie immer hinlegen."),
    "16a04Fb": ("spk16-16a04Fb", "spk16", "f", "happiness", "Heute abend könnte ich es ihm sagen."),
    "10b01Lb": ("spk10-10b01Lb", "spk10", "m", "boredom",
                "Was sind denn das für Tüten, die da unter dem Tisch stehen?"),
    "11a02Ea": ("spk11-11a02Ea", "spk11", "m", "disgust", "Das will sie am Mittwoch abgeben."),
    "13a05Aa": ("spk13-13a05Aa", "spk13", "f", "fear",
                "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück."),
    "14b09Na": ("spk14-14b09Na", "spk14", "f", "neutral",
                "Ich will das eben wegbringen und dann mit Karl was trinken gehen."),
}


def make_emodb(folder, stems=FILES, ext="wav"):
    """An EmoDB audio folder ``<folder>/<ext>/`` of short tones."""
    audio = os.path.join(folder, ext)
    os.makedirs(audio)
    for i, stem in enumerate(sorted(stems)):
        t = np.arange(int(16000 * (0.3 + 0.1 * i))) / 16000
        sf.write(os.path.join(audio, f"{stem}.{ext}"), 0.3 * np.sin(2 * np.pi * 200 * t), 16000, subtype="PCM_16")
    return folder


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_prepare_writes_a_valid_data_dir_with_every_label(tmp_path, ext):
    make_emodb(tmp_path / "root" / "emodb", ext=ext)
    out = tmp_path / "data" / "emodb"
    emodb.prepare(str(tmp_path / "root"), str(out))
    report = validate_data_dir(out)
    assert report.num_utterances == 7 and report.num_speakers == 7
    assert report.streams == ["emotion", "gender", "lang", "spk", "text"]
    dd = DataDir(out)
    expected = {v[0]: v for v in FILES.values()}
    assert dd.utt_ids == sorted(expected)
    assert dd.stream("spk") == {u: v[1] for u, v in expected.items()}
    assert dd.stream("gender") == {u: v[2] for u, v in expected.items()}
    assert dd.stream("emotion") == {u: v[3] for u, v in expected.items()}
    assert dd.stream("text") == {u: v[4] for u, v in expected.items()}
    assert set(dd.stream("lang").values()) == {"deu"}
    assert dd.read("wav.scp")["spk03-03a01Wa"] == str(tmp_path / "root" / "emodb" / ext / f"03a01Wa.{ext}")
    assert float(dd.read("utt2dur")["spk03-03a01Wa"]) == pytest.approx(0.3, abs=1e-3)


def test_data_root_may_be_the_emodb_folder_and_rerun_is_identical(tmp_path):
    make_emodb(tmp_path / "emodb")
    a, b = tmp_path / "a", tmp_path / "b"
    emodb.prepare(str(tmp_path), str(a))
    emodb.prepare(str(tmp_path / "emodb"), str(b))
    emodb.prepare(str(tmp_path / "emodb"), str(b))
    for name in os.listdir(a):
        assert (a / name).read_text() == (b / name).read_text()


@pytest.mark.parametrize("bad,reason", [
    ("03x01Wa", "not an EmoDB file name"),
    ("03a01W", "not an EmoDB file name"),
    ("02a01Wa", "unknown speaker code '02'"),
    ("03a03Wa", "unknown text code 'a03'"),
    ("03a01Xa", "unknown emotion code 'X'"),
])
def test_malformed_name_is_named(tmp_path, bad, reason):
    make_emodb(tmp_path / "emodb", stems=list(FILES) + [bad])
    with pytest.raises(ValueError, match=f"{bad}\\.wav: {reason}"):
        emodb.prepare(str(tmp_path), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_foreign_file_is_named(tmp_path):
    make_emodb(tmp_path / "emodb")
    (tmp_path / "emodb" / "wav" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"notes\.txt: not a \.wav file"):
        emodb.prepare(str(tmp_path), str(tmp_path / "out"))


def test_missing_corpus(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match=r"looked for .*emodb/wav, .*emodb/flac"):
        emodb.prepare(str(tmp_path), str(tmp_path / "out"))
    assert emodb.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert "--download" in capsys.readouterr().err


def test_cli_downloads_the_upstream_zip(tmp_path, monkeypatch, capsys):
    src = make_emodb(tmp_path / "src")
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as z:  # upstream: wav/ at the top of the zip
        for name in sorted(os.listdir(src / "wav")):
            z.write(src / "wav" / name, f"wav/{name}")
    monkeypatch.setattr(emodb, "URL", archive.as_uri())
    root, out = tmp_path / "downloads", tmp_path / "data" / "emodb"
    assert emodb.main(["--data-root", str(root), "--out", str(out), "--download"]) == 0
    assert "emodb: 7 utterances" in capsys.readouterr().out
    assert validate_data_dir(out).num_utterances == 7
    assert emodb.main(["--data-root", str(root), "--out", str(out), "--download"]) == 0  # nothing fetched again
