"""masr.data.datadir: reading, writing and stream discovery of Kaldi-style data dirs."""

import pickle
import re

import kaldiio
import numpy as np
import pytest

from masr.data.datadir import (
    DataDir,
    DataDirError,
    mapping_id,
    parse_ark_entry,
    read_ark_entry,
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


def test_utf8_bom_is_one_clear_error(tmp_path):
    path = tmp_path / "utt2spk"
    path.write_bytes(b"\xef\xbb\xbfa_1 a\na_2 a\n")
    with pytest.raises(DataDirError) as err:
        read_kaldi_map(path)
    assert str(err.value) == (
        f"{path}:1: the file starts with a UTF-8 byte-order mark (BOM); save it without one "
        f"(e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' {path})"
    )


def test_durations_errors_name_file_line_and_utterance(tmp_path):
    write_data_dir(tmp_path, {"wav.scp": {"a": "/a.wav", "b": "/b.wav"}, "utt2spk": {"a": "s", "b": "s"}})
    with pytest.raises(DataDirError, match=r"utt2dur: file not found; .*get_utt2dur\.sh"):
        DataDir(tmp_path).durations()
    (tmp_path / "utt2dur").write_text("a 1.5\nb 1,5\n")
    with pytest.raises(DataDirError, match=r"utt2dur:2: utterance 'b': duration '1,5' is not a positive number"):
        DataDir(tmp_path).durations()


def test_parse_ark_entry_accepts_only_path_and_offset():
    assert parse_ark_entry("/d/data/feats.1.ark:17") == ("/d/data/feats.1.ark", 17)
    assert parse_ark_entry("C:/x y/feats.ark:0") == ("C:/x y/feats.ark", 0)  # the last ':' splits
    for entry in ["/d/feats.ark", "/d/feats.ark:12[0:3]", "/d/feats.ark:-1", "/d/feats.ark:0x10",
                  "echo hi > /tmp/x |", "cat /d/feats.ark |:12", "| cat /d/feats.ark", "-:0", ":12"]:
        with pytest.raises(ValueError, match="entry '"):
            parse_ark_entry(entry)


def test_read_ark_entry_reads_matrices_and_vectors(tmp_path):
    mat, vec = np.arange(12, dtype=np.float32).reshape(4, 3), np.arange(5, dtype=np.float64)
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path}/a.ark,{tmp_path}/a.scp") as w:
        w("m", mat)
        w("v", vec)
    kaldiio.save_ark(str(tmp_path / "c.ark"), {"c": mat}, scp=str(tmp_path / "c.scp"), compression_method=2)
    scp = {**read_kaldi_map(tmp_path / "a.scp"), **read_kaldi_map(tmp_path / "c.scp")}
    np.testing.assert_array_equal(read_ark_entry(scp["m"]), mat)
    np.testing.assert_array_equal(read_ark_entry(scp["v"]), vec)
    np.testing.assert_allclose(read_ark_entry(scp["c"]), mat, atol=0.1)


class _Exploit:
    """Pickled, creates a file when loaded: an ark holding it must never be unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_read_ark_entry_refuses_what_is_not_a_kaldi_binary_matrix(tmp_path):
    flag = tmp_path / "UNPICKLED"
    ark = tmp_path / "bad.ark"
    ark.write_bytes(b"u1 PKL" + pickle.dumps(_Exploit(str(flag))))
    with pytest.raises(ValueError, match=r"no Kaldi binary matrix at byte 3 of '.*bad\.ark'"):
        read_ark_entry(f"{ark}:3")
    assert not flag.exists()  # kaldiio.load_mat would have unpickled it
    with kaldiio.WriteHelper(f"ark:{tmp_path}/t.ark") as w:
        w("u1", np.ones((50, 4), dtype=np.float32))
    (tmp_path / "t.ark").write_bytes((tmp_path / "t.ark").read_bytes()[:-8])  # truncated
    with pytest.raises(ValueError):
        read_ark_entry(f"{tmp_path}/t.ark:3")
    with pytest.raises(ValueError, match="no Kaldi binary matrix at byte 9999"):
        read_ark_entry(f"{tmp_path}/t.ark:9999")


def test_read_ark_entry_refuses_a_header_claiming_more_than_the_file_holds(tmp_path):
    import struct

    import kaldiio
    import numpy as np

    from masr.data.datadir import read_ark_entry

    path = str(tmp_path / "m.ark")
    kaldiio.save_mat(path, np.ones((3, 4), dtype=np.float32))
    data = bytearray(open(path, "rb").read())
    data[6:10] = struct.pack("<i", 2 ** 30)   # rows: a billion, in a 60-byte file
    open(path, "wb").write(bytes(data))
    with pytest.raises(ValueError, match=r"claims 1073741824x4 elements, more than the \d+ bytes left"):
        read_ark_entry(f"{path}:0")


def test_mapping_id_depends_on_content_not_order():
    a = {"u1": "hrv", "u2": "srp", "u3": "swe"}
    b = dict(reversed(list(a.items())))
    assert list(a) != list(b) and mapping_id(a) == mapping_id(b)
    assert mapping_id(a) != mapping_id({**a, "u3": "hrv"})
    assert mapping_id(a) != mapping_id({**a, "u4": "swe"})
    assert re.fullmatch(r"[0-9a-f]{16}", mapping_id(a))
