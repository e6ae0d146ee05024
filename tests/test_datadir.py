"""masr.data.datadir: reading, writing and stream discovery of Kaldi-style data dirs."""

import pytest

from masr.data.datadir import (
    DataDir,
    DataDirError,
    read_kaldi_map,
    utt2spk_to_spk2utt,
    write_data_dir,
    write_kaldi_map,
)


def test_write_then_read_roundtrip_sorted(tmp_path):
    path = tmp_path / "text"
    write_kaldi_map(path, {"b_2": "zwei worte", "a_1": "één", "b_10": "x"})
    assert path.read_text(encoding="utf-8") == "a_1 één\nb_10 x\nb_2 zwei worte\n"
    assert read_kaldi_map(path) == {"a_1": "één", "b_10": "x", "b_2": "zwei worte"}


def test_value_keeps_inner_spaces_and_strips_outer(tmp_path):
    path = tmp_path / "utt2geo"
    path.write_text("u1   45.1 15.9  \n")
    assert read_kaldi_map(path) == {"u1": "45.1 15.9"}


@pytest.mark.parametrize(
    "content, message",
    [
        ("a x\na y\n", "utt.txt:2: utterance 'a': duplicate key"),
        ("a x\nb\n", "utt.txt:2: utterance 'b': no value after the key"),
        ("a x\n\nb y\n", "utt.txt:2: empty line"),
        ("a x\r\n", "utt.txt:1: carriage return"),
        (" a x\n", "utt.txt:1: utterance 'a': line starts with whitespace"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "utt.txt"
    path.write_bytes(content.encode())
    with pytest.raises(DataDirError) as err:
        read_kaldi_map(path)
    assert message in str(err.value)


def test_invalid_utf8_names_line(tmp_path):
    path = tmp_path / "text"
    path.write_bytes(b"a ok\nb \xff\xfe\n")
    with pytest.raises(DataDirError, match=r"text:2: not valid UTF-8"):
        read_kaldi_map(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataDirError, match="file not found"):
        read_kaldi_map(tmp_path / "nope")


def test_empty_value_allowed_on_request(tmp_path):
    path = tmp_path / "text"
    path.write_text("a\n")
    assert read_kaldi_map(path, allow_empty_value=True) == {"a": ""}


def test_spk2utt_inverts_utt2spk():
    assert utt2spk_to_spk2utt({"s2_b": "s2", "s1_a": "s1", "s2_a": "s2"}) == {
        "s1": ["s1_a"], "s2": ["s2_a", "s2_b"]}


def test_streams_are_discovered_from_files(tmp_path):
    utts = ["s1_a", "s1_b"]
    write_data_dir(tmp_path, {
        "wav.scp": {u: f"/audio/{u}.wav" for u in utts},
        "utt2spk": dict.fromkeys(utts, "s1"),
        "utt2dur": dict.fromkeys(utts, "1.0"),
        "utt2num_frames": dict.fromkeys(utts, "98"),
        "utt2lang": dict.fromkeys(utts, "swe"),
        "utt2accent": dict.fromkeys(utts, "scania"),
    })
    dd = DataDir(tmp_path)
    # bookkeeping files (dur, num_frames) are not metadata; a new utt2<key> file is
    assert dd.metadata_streams() == ["accent", "lang", "spk"]
    assert dd.stream("accent") == {"s1_a": "scania", "s1_b": "scania"}
    assert (tmp_path / "spk2utt").read_text() == "s1 s1_a s1_b\n"
    assert dd.utt_ids == utts
    assert dd.durations() == {"s1_a": 1.0, "s1_b": 1.0}


def test_write_data_dir_requires_wav_scp_and_utt2spk(tmp_path):
    with pytest.raises(ValueError, match="'utt2spk' is required"):
        write_data_dir(tmp_path, {"wav.scp": {"a": "/x.wav"}})


def test_missing_data_dir():
    with pytest.raises(DataDirError, match="data directory not found"):
        DataDir("/nonexistent/data/train")
