"""masr.corpora.dhvani: Dhvani LangID data directories, from a tiny generated tree in the assumed layout."""

import os

import numpy as np
import pytest
import soundfile as sf

from masr.corpora import dhvani
from masr.corpora.download import ManualDownloadError
from masr.data.datadir import DataDir
from masr.data.validate import uriel_languages, validate_data_dir


def tone(path, seconds=0.1):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, 0.1 * np.sin(np.arange(int(16000 * seconds)) / 5), 16000, subtype="PCM_16")


def make_tree(root):
    """hindi/ with speaker folders (one nested), Odia/ with loose files, kok/ (Konkani) with speakers, a README dir."""
    for i in range(12):
        tone(os.path.join(root, "hindi", f"spk{i}", "a.wav"))
    tone(os.path.join(root, "hindi", "spk0", "day 2", "b.wav"), 0.2)
    for i in range(6):
        tone(os.path.join(root, "Odia", f"clip{i}.wav"))
    for i in range(4):
        tone(os.path.join(root, "kok", f"s{i}", "x.wav"))
    os.makedirs(os.path.join(root, "docs"))
    return root


def test_language_table_is_uriel_valid():
    assert len(dhvani.LANGUAGES) == 22
    assert sorted(dhvani.LANGUAGES) == sorted("asm ben brx doi guj hin kan kas kok mai mal mni mar nep ori pan san "
                                              "sat snd tam tel urd".split())
    known = uriel_languages()
    assert [r.uriel for r in dhvani.LANGUAGES.values() if r.uriel not in known] == []
    assert len({r.uriel for r in dhvani.LANGUAGES.values()}) == 22  # usable as class labels
    assert dhvani.uriel_fallbacks() == {"doi": "dgo", "kok": "knn"}
    assert all(code not in known for code in dhvani.uriel_fallbacks())


def test_prepare_speaker_disjoint_splits(tmp_path):
    root = make_tree(str(tmp_path / "root" / "dhvani"))
    out = str(tmp_path / "data")
    result = dhvani.prepare(str(tmp_path / "root"), out)
    all_utts, spk_split = {}, {}
    for split, files in result.items():
        validate_data_dir(os.path.join(out, split))
        dd = DataDir(os.path.join(out, split))
        for utt, spk in dd.read("utt2spk").items():
            assert utt.startswith(spk)
            assert spk_split.setdefault(spk, split) == split  # speaker-disjoint
            assert dhvani.split_of(spk) == split
        all_utts.update(dd.stream("lang"))
    assert len(all_utts) == 12 + 1 + 6 + 4
    assert all_utts["hin-spk0-day_2_b"] == "hin" and all_utts["hin-spk0-a"] == "hin"
    assert all_utts["ori-file_clip3"] == "ori" and all_utts["knn-s2-x"] == "knn"
    assert set(spk_split) >= {"hin-spk0", "ori-file_clip0", "knn-s1"}
    assert "train" in result
    # deterministic
    again = dhvani.prepare(str(tmp_path / "root"), str(tmp_path / "data2"))
    assert {s: f["utt2spk"] for s, f in again.items()} == {s: f["utt2spk"] for s, f in result.items()}


def test_split_proportions_roughly_80_10_10():
    counts = {s: 0 for s in dhvani.SPLITS}
    for i in range(2000):
        counts[dhvani.split_of(f"hin-spk{i}")] += 1
    assert 1500 < counts["train"] < 1700 and 120 < counts["dev"] < 280 and 120 < counts["test"] < 280


def test_missing_copy_names_the_release_page(tmp_path):
    with pytest.raises(ManualDownloadError, match="Dhvani needs a manual download.*Dhvani release page"):
        dhvani.locate(str(tmp_path / "nowhere"))
    os.makedirs(tmp_path / "empty" / "other")
    with pytest.raises(FileNotFoundError, match="no language folder"):
        dhvani.locate(str(tmp_path / "empty"))


def test_overlap_breakdown():
    over, non = dhvani.overlap()
    assert (len(over), len(non)) == (5, 17)
    assert set(over) | set(non) == {r.uriel for r in dhvani.LANGUAGES.values()}
    assert dhvani.overlap(["ben", "doi", "deu"]) == (["ben", "dgo"], sorted(set(non + over) - {"ben", "dgo"}))


def test_cli(tmp_path, capsys):
    make_tree(str(tmp_path / "root"))
    out = str(tmp_path / "data")
    assert dhvani.main(["--data-root", str(tmp_path / "root"), "--out", out, "--pretrain-langs", "hin,ori"]) == 0
    assert open(os.path.join(out, "langs_overlapped.txt")).read() == "hin\nori\n"
    assert "2 overlapped, 20 non-overlapped" in capsys.readouterr().out
