"""masr.corpora.own: a folder of recordings by language, or Kaldi dirs, become validated data dirs."""

import os

import numpy as np
import pytest
import soundfile as sf

from masr.corpora.own import main, prepare, scan_wav_root
from masr.data.datadir import DataDirError, read_kaldi_map

SR = 16000


def make_wav_root(root, langs=("hrv", "srp"), speakers=5, utts=2, transcripts=False):
    for lang in langs:
        for s in range(speakers):
            folder = root / lang / f"spk {s}"   # a space in a folder name
            folder.mkdir(parents=True)
            for u in range(utts):
                sf.write(folder / f"rec{u}.wav", np.zeros(SR // 2 + 160 * u, dtype=np.float32), SR)
                if transcripts:
                    (folder / f"rec{u}.txt").write_text(f"dobar dan {u}\n")
    return root


def test_a_folder_of_recordings_becomes_a_data_dir(tmp_path):
    files = scan_wav_root(str(make_wav_root(tmp_path / "wavs", transcripts=True)))
    assert len(files["wav.scp"]) == 20
    utt = "hrv_spk_0-rec1"
    assert files["utt2spk"][utt] == "hrv_spk_0" and files["utt2lang"][utt] == "hrv"
    assert files["utt2dur"][utt] == "0.510" and files["text"][utt] == "dobar dan 1"
    assert files["wav.scp"][utt].endswith("hrv/spk 0/rec1.wav")


def test_split_by_speaker_per_language_and_validated(tmp_path):
    names = prepare(str(tmp_path / "data"), wav_root=str(make_wav_root(tmp_path / "wavs")),
                    split="train:0.6 dev:0.2 test:0.2", check_lang=False)
    assert names == ["all", "train", "dev", "test"]
    spk = {n: set(read_kaldi_map(str(tmp_path / "data" / n / "utt2spk")).values()) for n in ("train", "dev", "test")}
    assert [len(spk[n]) for n in ("train", "dev", "test")] == [6, 2, 2]   # 3 + 1 + 1 speakers per language
    assert not spk["train"] & spk["test"]


def test_kaldi_dirs_are_copied_and_validated(tmp_path):
    prepare(str(tmp_path / "src"), wav_root=str(make_wav_root(tmp_path / "wavs")), split="train:0.5 test:0.5",
            check_lang=False)
    os.remove(tmp_path / "src" / "all" / "wav.scp")   # not a data dir any more: skipped
    assert prepare(str(tmp_path / "data"), kaldi_dir=[str(tmp_path / "src")], check_lang=False) == ["test", "train"]
    assert (tmp_path / "data" / "train" / "utt2lang").is_file()


def test_problems_are_named(tmp_path, capsys):
    (tmp_path / "empty" / "hrv").mkdir(parents=True)
    with pytest.raises(DataDirError, match="no recording found"):
        scan_wav_root(str(tmp_path / "empty"))
    root = make_wav_root(tmp_path / "wavs", transcripts=True)
    os.remove(root / "srp" / "spk 1" / "rec0.txt")
    with pytest.raises(DataDirError, match="1 recording.* without a non-empty <name>.txt.*'srp_spk_1-rec0'"):
        scan_wav_root(str(root))
    (root / "srp" / "spk 1" / "rec0.wav").write_bytes(b"not audio")
    assert main(["--wav-root", str(root), "--data", str(tmp_path / "data")]) == 1
    assert "rec0.wav: not audio libsndfile can read" in capsys.readouterr().err
