"""masr.corpora.mls: MLS data directories from tiny generated trees in the OpenSLR 94 layout."""

import os
import subprocess
import sys
import tarfile

import pytest

from masr.audio import read_audio
from masr.corpora import mls
from masr.data.datadir import read_kaldi_map
from masr.data.validate import validate_data_dir
from tests.helpers.corpora import MLS_CORPUS as CORPUS
from tests.helpers.corpora import SR
from tests.helpers.corpora import make_mls_language as make_language

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture()
def root(tmp_path):
    r = str(tmp_path / "mls")
    for language, corpus in CORPUS.items():
        make_language(r, language, corpus)
    return r


def read(d, name):
    return read_kaldi_map(os.path.join(d, name))


def test_prepare_writes_valid_dirs_with_expected_content(root, tmp_path):
    out = str(tmp_path / "data")
    counts = mls.prepare(root, out, languages=("de", "nl"))
    assert counts == {"de_train": 3, "nl_train": 2, "train": 5, "de_dev": 1, "nl_dev": 1, "dev": 2,
                      "de_test": 1, "nl_test": 1, "test": 2}
    d = os.path.join(out, "de_train")
    assert read(d, "text") == {"10148-10119-000000": "und so weiter", "1014-20-000001": "ein haus",
                               "1014-20-000003": "guten tag"}
    assert read(d, "utt2spk") == {"10148-10119-000000": "10148", "1014-20-000001": "1014",
                                  "1014-20-000003": "1014"}
    assert read(d, "spk2utt") == {"1014": "1014-20-000001 1014-20-000003", "10148": "10148-10119-000000"}
    assert read(d, "utt2dur") == {"10148-10119-000000": "0.250", "1014-20-000001": "0.200",
                                  "1014-20-000003": "0.300"}
    assert set(read(d, "utt2lang").values()) == {"deu"}
    assert read(d, "wav.scp")["1014-20-000003"] == os.path.join(
        os.path.abspath(root), "mls_german", "train", "audio", "1014", "20", "1014_20_000003.flac")
    train = os.path.join(out, "train")
    assert list(read(train, "utt2lang").items()) == [
        ("1014-20-000001", "deu"), ("1014-20-000003", "deu"), ("10148-10119-000000", "deu"),
        ("5555-60-000010", "nld"), ("77-61-000002", "nld")]
    assert read(os.path.join(out, "nl_test"), "text") == {"9999-80-000000": "een twee drie"}
    assert read(os.path.join(out, "dev"), "utt2dur") == {"2222-30-000000": "0.150", "8888-70-000000": "0.100"}
    for name in counts:
        report = validate_data_dir(os.path.join(out, name))
        assert report.num_utterances == counts[name]
        assert report.streams == ["lang", "spk", "text"]


def test_limited_supervision_restricts_train_only(root, tmp_path):
    out = str(tmp_path / "data")
    counts = mls.prepare(root, out, languages=("de", "nl"), limited="1hr")
    assert sorted(read(os.path.join(out, "train"), "wav.scp")) == [
        "1014-20-000001", "1014-20-000003", "77-61-000002"]
    assert counts["de_dev"] == 1 and counts["train"] == 3
    counts = mls.prepare(root, out, languages=("de",), splits=("train",), limited="10hr")
    assert counts == {"de_train": 3, "train": 3}
    assert mls.prepare(root, out, languages=("nl",), splits=("train",), limited="9hr") == {"nl_train": 1, "train": 1}
    assert sorted(read(os.path.join(out, "train"), "text")) == ["5555-60-000010"]


def test_rerun_gives_identical_files_and_max_utts(root, tmp_path):
    out = str(tmp_path / "data")
    mls.prepare(root, out, languages=("german", "nld"))
    before = {n: open(os.path.join(out, "train", n)).read() for n in os.listdir(os.path.join(out, "train"))}
    mls.prepare(root, out, languages=("german", "nld"))
    after = {n: open(os.path.join(out, "train", n)).read() for n in os.listdir(os.path.join(out, "train"))}
    assert before == after and sorted(after) == ["spk2utt", "text", "utt2dur", "utt2lang", "utt2spk", "wav.scp"]
    counts = mls.prepare(root, out, languages=("de",), max_utts_per_split=2, combined=False)
    assert counts == {"de_train": 2, "de_dev": 1, "de_test": 1}
    assert sorted(read(os.path.join(out, "de_train"), "text")) == ["1014-20-000003", "10148-10119-000000"]


def test_malformed_lines_name_file_and_line(root, tmp_path):
    path = os.path.join(root, "mls_dutch", "dev", "transcripts.txt")
    with open(path, "a") as f:
        f.write("8888_70_000001\n")
    with pytest.raises(ValueError, match=rf"{path}:2: expected '<utt_id>\\t<transcript>'"):
        mls.prepare(root, str(tmp_path / "data"), languages=("nl",), splits=("dev",))
    with open(path, "w") as f:
        f.write("8888_70_000000\ttot ziens\nnot-an-id\tx\n")
    with pytest.raises(ValueError, match=rf"{path}:2: 'not-an-id' is not an MLS utterance id"):
        mls.prepare(root, str(tmp_path / "data"), languages=("nl",), splits=("dev",))
    with open(path, "w") as f:
        f.write("8888_70_000000\ttot ziens\n")
    segments = os.path.join(root, "mls_dutch", "dev", "segments.txt")
    with open(segments, "a") as f:
        f.write("8888_70_000000\thttp://x\tzero\t1.0\n")
    with pytest.raises(ValueError, match=rf"{segments}:2: expected"):
        mls.prepare(root, str(tmp_path / "data"), languages=("nl",), splits=("dev",))


def test_missing_audio_names_the_utterance(root, tmp_path):
    wav = os.path.join(root, "mls_german", "train", "audio", "1014", "20", "1014_20_000001.flac")
    os.remove(wav)
    transcripts = os.path.join(root, "mls_german", "train", "transcripts.txt")
    with pytest.raises(FileNotFoundError, match=rf"{transcripts}:3: utterance '1014_20_000001': audio file {wav}"):
        mls.prepare(root, str(tmp_path / "data"), languages=("de",))


def test_missing_language_names_folders_and_page(root, tmp_path):
    out = str(tmp_path / "data")
    with pytest.raises(FileNotFoundError) as e:
        mls.prepare(root, out, languages=("de", "fr"))
    msg = str(e.value)
    assert os.path.join(root, "mls_french") in msg and os.path.join(root, "mls_french_opus") in msg
    assert "https://www.openslr.org/94/" in msg
    assert not os.path.exists(out)  # nothing written
    with pytest.raises(ValueError, match="unknown MLS language 'xx'"):
        mls.prepare(root, out, languages=("xx",))


def test_download_from_file_url_extracts_once(root, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / "mls_dutch.tar.gz", "w:gz") as t:
        t.add(os.path.join(root, "mls_dutch"), arcname="mls_dutch")
    dest = str(tmp_path / "downloads")
    found = mls.download(dest, ["nl"], base_url=mirror.as_uri(), progress=False)
    assert found == {"nl": (os.path.join(dest, "mls_dutch"), "flac")}
    assert os.path.isfile(os.path.join(dest, ".extracted-mls_dutch.tar.gz"))
    # an interrupted extraction (no marker) is redone; a finished one is kept
    os.remove(os.path.join(dest, ".extracted-mls_dutch.tar.gz"))
    os.remove(os.path.join(dest, "mls_dutch", "dev", "transcripts.txt"))
    mls.download(dest, ["dutch"], base_url=mirror.as_uri(), progress=False)
    counts = mls.prepare(dest, str(tmp_path / "data"), languages=("nl",))
    assert counts == {"nl_train": 2, "train": 2, "nl_dev": 1, "dev": 1, "nl_test": 1, "test": 1}
    assert mls.archive_name("de", opus=True) == "mls_german_opus.tar.gz"


def test_opus_release_reads_through_soundfile_or_pipe(tmp_path):
    if not mls.opus_decoder_available("soundfile"):
        pytest.skip("this libsndfile cannot write/read Ogg/Opus")
    root = str(tmp_path / "mls")
    make_language(root, "french", {"dev": [("4444_50_000000", "bonjour", 0.5, True)]}, codec="opus")
    out = str(tmp_path / "data")
    assert mls.prepare(root, out, languages=("fr",), splits=("dev",)) == {"fr_dev": 1, "dev": 1}
    entry = read(os.path.join(out, "fr_dev"), "wav.scp")["4444-50-000000"]
    assert entry.endswith("mls_french_opus/dev/audio/4444/50/4444_50_000000.opus")
    wave, sr = read_audio(entry)
    assert sr == SR and abs(len(wave) / SR - 0.5) < 0.02
    validate_data_dir(os.path.join(out, "fr_dev"))  # reads the Opus audio, checks utt2dur against it
    mls.prepare(root, out, languages=("fr",), splits=("dev",), opus_decoder="python", combined=False)
    entry = read(os.path.join(out, "fr_dev"), "wav.scp")["4444-50-000000"]
    assert entry.startswith(sys.executable) and entry.endswith(" |")
    piped, sr = read_audio(entry)
    assert sr == SR and len(piped) == len(wave)
    validate_data_dir(os.path.join(out, "fr_dev"))


def test_cli_and_shell_wrapper(root, tmp_path, capsys):
    out = str(tmp_path / "data")
    assert mls.main(["--data-root", root, "--out", out, "--languages", "nl", "--limited", "1hr"]) == 0
    assert "nl_train: 1 utterances" in capsys.readouterr().out
    assert mls.main(["--data-root", root, "--out", out, "--languages", "fr"]) == 1
    assert "openslr.org/94" in capsys.readouterr().err
    script = os.path.join(ROOT, "egs", "mls", "local", "prepare_data.sh")
    data = str(tmp_path / "data2")
    proc = subprocess.run([script, "--nj", "1", "--data", data, "--data-root", root, "--languages", "de nl",
                           "--max-utts", "1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(data)) == ["de_dev", "de_test", "de_train", "dev", "nl_dev", "nl_test", "nl_train",
                                        "test", "train"]
    proc = subprocess.run([script, "--limited", "5hr"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--limited" in proc.stderr
