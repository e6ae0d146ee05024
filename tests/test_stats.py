"""masr.data.stats: counts per split and language, and per corpus of a mix."""

import os

import pytest

from masr.data import stats
from masr.data.datadir import DataDirError, write_data_dir


def make(path, corpus=True):
    files = {"wav.scp": {u: f"{u}.wav" for u in "abcd"},
             "utt2spk": {"a": "s1", "b": "s1", "c": "s2", "d": "s3"},
             "utt2dur": {"a": "360", "b": "360", "c": "720", "d": "1800"},
             "utt2lang": {"a": "hin", "b": "tam", "c": "hin", "d": "deu"}}
    if corpus:
        files["utt2corpus"] = {"a": "cv", "b": "cv", "c": "cv", "d": "mls"}
    write_data_dir(path, files)
    return str(path)


def test_rows_per_language_and_per_corpus(tmp_path):
    d = make(tmp_path / "pretrain")
    by_lang = {r["lang"]: (r["utterances"], r["speakers"], r["hours"]) for r in stats.data_stats([d])}
    assert by_lang == {"deu": (1, 1, 0.5), "hin": (2, 2, 0.3), "tam": (1, 1, 0.1), "all": (4, 3, 0.9)}
    by_corpus = {r["corpus"]: (r["languages"], r["utterances"], r["speakers"], r["hours"])
                 for r in stats.corpus_stats([d])}
    assert by_corpus == {"cv": (2, 3, 2, 0.4), "mls": (1, 1, 1, 0.5), "all": (3, 4, 3, 0.9)}


def test_cli_writes_the_corpus_table_only_for_mixes(tmp_path, capsys):
    mixed, plain = make(tmp_path / "pretrain"), make(tmp_path / "dev", corpus=False)
    out, corpus_out = tmp_path / "data_stats.tsv", tmp_path / "corpus_stats.tsv"
    assert stats.main([mixed, plain, "--out", str(out), "--corpus-out", str(corpus_out)]) == 0
    lines = corpus_out.read_text().splitlines()
    assert lines[0] == "split\tcorpus\tlanguages\tutterances\tspeakers\thours"
    assert lines[1:] == ["pretrain\tcv\t2\t3\t2\t0.4", "pretrain\tmls\t1\t1\t1\t0.5", "pretrain\tall\t3\t4\t3\t0.9"]
    assert "pretrain         cv:      3 utterances,   2 languages, 0.40 h" in capsys.readouterr().out
    # the same recipe later run on corpora without utt2corpus: the stale table goes
    assert stats.main([plain, "--out", str(out), "--corpus-out", str(corpus_out)]) == 0
    assert not corpus_out.exists() and out.read_text().startswith("split\tlang\t")


def test_missing_utt2dur_is_a_clear_error_without_traceback(tmp_path, capsys):
    d = make(tmp_path / "train", corpus=False)
    os.remove(os.path.join(d, "utt2dur"))
    with pytest.raises(DataDirError, match=r"train/utt2dur: file not found; .*get_utt2dur\.sh"):
        stats.data_stats([d])
    assert stats.main([d, "--out", str(tmp_path / "stats.tsv")]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(f"error: {d}/utt2dur: file not found;") and "Traceback" not in err
    assert not (tmp_path / "stats.tsv").exists()


@pytest.mark.parametrize("utt2dur, message", [
    ("a 360\nb six\nc 720\nd 1800\n", "utt2dur:2: utterance 'b': duration 'six' is not a positive number"),
    ("a 360\nb 360\nc 720\n", "utt2dur: utterance 'd' of utt2spk is missing"),
])
def test_bad_utt2dur_is_reported_by_main(tmp_path, capsys, utt2dur, message):
    d = make(tmp_path / "train")
    with open(os.path.join(d, "utt2dur"), "w") as f:
        f.write(utt2dur)
    assert stats.main([d, "--corpus-out", str(tmp_path / "corpus.tsv")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_a_data_dir_without_utt2lang_reports_no_language_count(tmp_path, capsys):
    from masr.data.datadir import write_data_dir
    from masr.data.stats import main

    write_data_dir(str(tmp_path / "train"), {"wav.scp": {"a": "a.wav"}, "utt2spk": {"a": "s"}, "utt2dur": {"a": "2"}})
    assert main([str(tmp_path / "train")]) == 0
    assert "  - languages" in capsys.readouterr().out   # not "1 languages" for the '-' placeholder
