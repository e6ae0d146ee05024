"""Tests for masr.data.validate: a valid data dir passes, each kind of breakage is named precisely."""

import os
import re
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from masr.data.datadir import DataDirError, read_kaldi_map, utt2spk_to_spk2utt, write_data_dir, write_kaldi_map
from masr.data.validate import main, validate_data_dir

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SR = 16000

# utt -> (speaker, seconds, language, "lat lon", gender, text); sorted, so line n is UTTS[n - 1]
SPEC = {
    "spkA-001": ("spkA", 0.50, "hrv", "45.81 15.98", "f", "dobar dan"),
    "spkA-002": ("spkA", 0.25, "hrv", "45.81 15.98", "f", "laku noc"),
    "spkB-001": ("spkB", 0.40, "srp", "44.79 20.45", "m", "zdravo"),
    "spkB-002": ("spkB", 0.30, "srp", "44.79 20.45", "m", "hvala lijepa"),
    "spkC-001": ("spkC", 0.20, "slv", "46.05 14.51", "f", "dober dan"),
    "spkC-002": ("spkC", 0.35, "slv", "46.05 14.51", "f", "na svidenje"),
}
UTTS = sorted(SPEC)
TOTAL = sum(v[1] for v in SPEC.values())


def line_of(utt):
    return UTTS.index(utt) + 1


@pytest.fixture
def data_dir(tmp_path):
    """A valid data directory with real WAVs and every metadata stream."""
    audio = tmp_path / "audio"
    audio.mkdir()
    wav_scp = {}
    for utt, (_, dur, *_rest) in SPEC.items():
        path = str(audio / f"{utt}.wav")
        sf.write(path, np.zeros(int(round(dur * SR)), dtype=np.float32), SR)
        wav_scp[utt] = path
    column = lambda i: {u: v[i] for u, v in SPEC.items()}  # noqa: E731
    d = str(tmp_path / "data" / "train")
    write_data_dir(
        d,
        {
            "wav.scp": wav_scp,
            "utt2spk": column(0),
            "utt2dur": {u: f"{v:.2f}" for u, v in column(1).items()},
            "utt2lang": column(2),
            "utt2geo": column(3),
            "utt2gender": column(4),
            "text": column(5),
        },
    )
    return d


def _read(d, name):
    return open(os.path.join(d, name), "rb").read()


def _write(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def _set(d, name, utt, value):
    """Replace the value of ``utt`` in file ``name`` (keeping line order)."""
    lines = _read(d, name).decode().splitlines()
    out = [f"{utt} {value}" if line.split()[0] == utt else line for line in lines]
    _write(d, name, "\n".join(out) + "\n")


def _wav(d, utt):
    return os.path.join(os.path.dirname(os.path.dirname(d)), "audio", f"{utt}.wav")


def _nonfinite_wav(d, utt, subtype):
    """Rewrite the audio of ``utt`` as float WAV (same length) with a NaN at sample 400 and 11 infs."""
    x = np.zeros(int(round(SPEC[utt][1] * SR)), dtype=np.float64)
    x[400] = np.nan
    x[500:511] = -np.inf
    sf.write(_wav(d, utt), x, SR, subtype=subtype)


def _empty_all(d):
    for name in os.listdir(d):
        _write(d, name, b"")


def _feature_only_dir(path, utts):
    """A feature-only data dir (feats.scp, no wav.scp) whose arks are real; returns feats.scp entries."""
    ark, scp = os.path.join(path, "feats.ark"), os.path.join(path, "feats.scp.tmp")
    os.makedirs(path)
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
        for utt in utts:
            writer(utt, np.zeros((98, 4), dtype=np.float32))
    write_data_dir(path, {"wav.scp": {u: "x" for u in utts}, "utt2spk": {u: u.split("-")[0] for u in utts},
                          "utt2num_frames": dict.fromkeys(utts, "98")})
    os.rename(scp, os.path.join(path, "feats.scp"))
    os.remove(os.path.join(path, "wav.scp"))
    return read_kaldi_map(os.path.join(path, "feats.scp"))


def _problems(d, **kwargs):
    with pytest.raises(DataDirError) as info:
        validate_data_dir(d, **kwargs)
    return str(info.value)


# ----------------------------------------------------------------------------- valid


def test_valid_dir_report(data_dir):
    report = validate_data_dir(data_dir)
    assert report.path == data_dir
    assert report.num_utterances == 6
    assert report.num_speakers == 3
    assert report.total_duration == pytest.approx(TOTAL)
    assert report.streams == ["gender", "geo", "lang", "spk", "text"]
    assert report.summary() == (
        f"{data_dir}: OK — 6 utterances, 3 speakers, {TOTAL / 3600:.2f} h, streams: gender geo lang spk text"
    )


def test_valid_pipe_and_feature_only(data_dir, tmp_path):
    _set(data_dir, "wav.scp", "spkA-001", f"cat {_wav(data_dir, 'spkA-001')} |")
    assert validate_data_dir(data_dir).num_utterances == 6
    feats = str(tmp_path / "feats_only")
    _feature_only_dir(feats, ["s-1"])
    report = validate_data_dir(feats, check_lang=False)
    assert (report.num_utterances, report.num_speakers, report.total_duration) == (1, 1, None)


# ----------------------------------------------------------------------------- broken


def _move_utt_to_speaker(d, utt, spk):
    """Give ``utt`` another speaker, keeping spk2utt consistent (so only the order is wrong)."""
    utt2spk = {u: v[0] for u, v in SPEC.items()}
    utt2spk[utt] = spk
    write_kaldi_map(os.path.join(d, "utt2spk"), utt2spk)
    write_kaldi_map(os.path.join(d, "spk2utt"), utt2spk_to_spk2utt(utt2spk))


def _swap_lines(d, name, i, j):
    lines = _read(d, name).decode().splitlines()
    lines[i - 1], lines[j - 1] = lines[j - 1], lines[i - 1]
    _write(d, name, "\n".join(lines) + "\n")


def _insert_after(d, name, line_no, text):
    lines = _read(d, name).splitlines(keepends=True)
    lines.insert(line_no, text if isinstance(text, bytes) else text.encode())
    _write(d, name, b"".join(lines))


def _rename_utt(d, old, new):
    """Rename utterance ``old`` to ``new`` in every file (spk2utt included), keeping its audio path."""
    pattern = re.compile(rb"(^|\s)" + re.escape(old.encode()) + rb"(?=\s)", re.MULTILINE)
    for name in os.listdir(d):
        _write(d, name, pattern.sub(rb"\g<1>" + new.encode(), _read(d, name)))


BROKEN = {
    # id: (mutation, strings the message must contain[, number of problems, default 1])
    "missing_utt2spk": (lambda d: os.remove(os.path.join(d, "utt2spk")), ["utt2spk: file not found"]),
    "unsorted_wav_scp": (
        lambda d: _swap_lines(d, "wav.scp", 2, 3),
        ["wav.scp:3: utterance 'spkA-002'", "not sorted", "'spkB-001' on line 2"],
    ),
    "duplicate_key": (
        lambda d: _insert_after(d, "text", 2, "spkA-002 once more\n"),
        ["text:3: utterance 'spkA-002': duplicate key"],
    ),
    "key_without_value": (lambda d: _set(d, "text", "spkB-001", ""), ["text:3: utterance 'spkB-001'", "no value"]),
    "crlf_line": (
        lambda d: _write(d, "utt2lang", _read(d, "utt2lang").replace(b"\n", b"\r\n")),
        ["utt2lang:1", "carriage return"],
    ),
    "non_utf8": (
        lambda d: _write(d, "text", _read(d, "text").replace(b"lijepa", b"lij\xffepa")),
        ["text:4", "not valid UTF-8"],
    ),
    "text_utt_not_in_wav_scp": (
        lambda d: _insert_after(d, "text", 2, "spkA-003 nova recenica\n"),
        ["text: 1 utterance(s) not in wav.scp", "'spkA-003' (line 3)"],
    ),
    "utt2lang_missing_utt": (
        lambda d: _write(d, "utt2lang", b"".join(_read(d, "utt2lang").splitlines(True)[1:])),
        ["utt2lang: 1 utterance(s) of wav.scp missing", "'spkA-001' (wav.scp line 1)"],
    ),
    "spk2utt_inconsistent": (
        lambda d: _write(d, "spk2utt", "spkA spkA-001\nspkB spkA-002 spkB-001 spkB-002\nspkC spkC-001 spkC-002\n"),
        [
            "spk2utt:2: speaker 'spkB': utterance 'spkA-002' belongs to speaker 'spkA' in utt2spk (line 2)",
            "spk2utt:1: speaker 'spkA': utterance 'spkA-002' of this speaker in utt2spk (line 2) is missing",
        ],
        2,
    ),
    "speaker_order": (
        lambda d: _move_utt_to_speaker(d, "spkC-001", "spkA"),
        ["utt2spk:5: utterance 'spkC-001'", "speaker 'spkA' sorts before speaker 'spkB'", "prefix utterance ids"],
    ),
    "slash_in_utt_id": (
        lambda d: _rename_utt(d, "spkC-002", "spkC/002"),
        ["wav.scp:6: utterance 'spkC/002': utterance id contains '/'"],
    ),
    "missing_audio": (
        lambda d: os.remove(_wav(d, "spkB-001")),
        ["wav.scp:3: utterance 'spkB-001'", "spkB-001.wav' not found"],
    ),
    "unreadable_audio": (
        lambda d: open(_wav(d, "spkB-002"), "wb").write(b"this is not a wav file at all" * 10),
        ["wav.scp:4: utterance 'spkB-002'", "cannot read audio"],
    ),
    "empty_audio": (
        lambda d: sf.write(_wav(d, "spkC-001"), np.zeros(0, dtype=np.float32), SR),
        ["wav.scp:5: utterance 'spkC-001'", "holds no samples"],
    ),
    "nan_in_float_audio": (
        lambda d: _nonfinite_wav(d, "spkB-001", "FLOAT"),
        ["wav.scp:3: utterance 'spkB-001': audio '", "spkB-001.wav' has 12 NaN/inf samples (first at sample 400)"],
    ),
    "inf_in_double_audio": (
        lambda d: _nonfinite_wav(d, "spkC-002", "DOUBLE"),
        ["wav.scp:6: utterance 'spkC-002'", "has 12 NaN/inf samples (first at sample 400)"],
    ),
    "no_utterances": (_empty_all, ["wav.scp: no utterances (the file is empty)"]),
    "bom_in_utt2spk": (
        lambda d: _write(d, "utt2spk", b"\xef\xbb\xbf" + _read(d, "utt2spk")),
        ["utt2spk:1: the file starts with a UTF-8 byte-order mark (BOM); save it without one (e.g. sed -i"],
    ),
    "bom_in_wav_scp": (
        lambda d: _write(d, "wav.scp", b"\xef\xbb\xbf" + _read(d, "wav.scp")),
        ["wav.scp:1: the file starts with a UTF-8 byte-order mark (BOM)", "(further checks of this file skipped)"],
    ),
    "pipe_not_on_path": (
        lambda d: _set(d, "wav.scp", "spkA-002", "no-such-tool-xq7 -t wav in.mp3 - |"),
        ["wav.scp:2: utterance 'spkA-002'", "command 'no-such-tool-xq7'", "not found on PATH"],
    ),
    "lang_two_letter": (
        lambda d: _set(d, "utt2lang", "spkB-001", "hr"),
        ["utt2lang:3: utterance 'spkB-001'", "unknown language code 'hr'", "ISO 639-3", "URIEL"],
    ),
    "lang_unknown": (
        lambda d: _set(d, "utt2lang", "spkC-002", "xxq"),
        ["utt2lang:6: utterance 'spkC-002'", "unknown language code 'xxq'"],
    ),
    "geo_lat_out_of_range": (
        lambda d: _set(d, "utt2geo", "spkA-001", "95 15.98"),
        ["utt2geo:1: utterance 'spkA-001'", "latitude 95 outside [-90, 90]"],
    ),
    "geo_lon_out_of_range": (
        lambda d: _set(d, "utt2geo", "spkA-002", "45 181"),
        ["utt2geo:2: utterance 'spkA-002'", "longitude 181 outside"],
    ),
    "geo_not_numeric": (
        lambda d: _set(d, "utt2geo", "spkB-002", "north east"),
        ["utt2geo:4: utterance 'spkB-002'", "'north east' is not 'lat lon'"],
    ),
    "geo_one_number": (
        lambda d: _set(d, "utt2geo", "spkC-001", "45.5"),
        ["utt2geo:5: utterance 'spkC-001'", "is not 'lat lon'"],
    ),
    "dur_zero": (
        lambda d: _set(d, "utt2dur", "spkA-002", "0"),
        ["utt2dur:2: utterance 'spkA-002'", "'0' is not a positive number"],
    ),
    "dur_negative": (lambda d: _set(d, "utt2dur", "spkB-001", "-1.5"), ["utt2dur:3: utterance 'spkB-001'", "'-1.5'"]),
    "dur_mismatch": (
        lambda d: _set(d, "utt2dur", "spkC-002", "0.50"),
        ["utt2dur:6: utterance 'spkC-002'", "0.5 s disagrees with the audio (0.350 s, wav.scp line 6)"],
    ),
    "num_frames_not_int": (
        lambda d: _write(d, "utt2num_frames", "".join(f"{u} {1.5 if i == 2 else 50}\n" for i, u in enumerate(UTTS))),
        ["utt2num_frames:3: utterance 'spkB-001'", "'1.5' is not a positive integer"],
    ),
    "gender_uppercase": (
        lambda d: _set(d, "utt2gender", "spkB-001", "M"),
        ["utt2gender:3: utterance 'spkB-001'", "gender 'M' is not 'm' or 'f'"],
    ),
    "gender_other": (lambda d: _set(d, "utt2gender", "spkC-002", "x"), ["utt2gender:6: utterance 'spkC-002'"]),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_dir_is_reported(data_dir, kind):
    mutate, expected, *count = BROKEN[kind]
    mutate(data_dir)
    message = _problems(data_dir)
    assert message.startswith(f"{data_dir}: {count[0] if count else 1} problem(s):\n"), message
    for text in expected:
        assert text in message, f"{text!r} not in:\n{message}"
    # every problem line names a file of the data dir
    for line in message.splitlines()[1:]:
        assert line.startswith(f"  {data_dir}{os.sep}"), line


def test_all_problems_reported_at_once(data_dir):
    _swap_lines(data_dir, "utt2gender", 1, 6)
    _set(data_dir, "utt2lang", "spkA-002", "hr")
    _set(data_dir, "utt2geo", "spkB-001", "95 15")
    os.remove(_wav(data_dir, "spkC-002"))
    _write(data_dir, "text", _read(data_dir, "text") + b"zzz-999 extra\n")
    message = _problems(data_dir)
    lines = message.splitlines()
    assert lines[0] == f"{data_dir}: 5 problem(s):"
    assert len(lines) == 6
    assert "utt2gender:2: utterance 'spkA-002': not sorted: sorts before 'spkC-002' on line 1" in message
    assert "utt2lang:2: utterance 'spkA-002'" in message
    assert "utt2geo:3: utterance 'spkB-001'" in message
    assert "wav.scp:6: utterance 'spkC-002'" in message
    assert "'zzz-999' (line 7)" in message


def test_unparseable_file_skips_dependent_checks(data_dir):
    # a broken utt2spk is reported once; the spk2utt / speaker-order / id-set checks that need it are skipped
    _write(data_dir, "utt2spk", _read(data_dir, "utt2spk") + b"\n")
    message = _problems(data_dir)
    assert message.splitlines()[0].endswith("1 problem(s):")
    assert "utt2spk:7: empty line" in message


def test_max_errors_truncates(data_dir):
    for utt in UTTS:
        _set(data_dir, "utt2gender", utt, "x")
    message = _problems(data_dir, max_errors=2)
    lines = message.splitlines()
    assert lines[0] == f"{data_dir}: 6 problem(s):"
    assert lines[1:] == [
        f"  {data_dir}{os.sep}utt2gender:1: utterance 'spkA-001': gender 'x' is not 'm' or 'f'",
        f"  {data_dir}{os.sep}utt2gender:2: utterance 'spkA-002': gender 'x' is not 'm' or 'f'",
        "  ... and 4 more problem(s) not shown",
    ]


def test_float_audio_without_nan_passes_and_integer_pcm_is_not_decoded(data_dir, monkeypatch):
    sf.write(_wav(data_dir, "spkA-001"), np.full(int(0.5 * SR), 0.25), SR, subtype="FLOAT")
    read = []
    real_blocks = sf.SoundFile.blocks

    def blocks(self, *args, **kwargs):
        read.append((os.path.basename(self.name), self.subtype))
        return real_blocks(self, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "blocks", blocks)
    assert validate_data_dir(data_dir, check_lang=False).num_utterances == 6
    assert read == [("spkA-001.wav", "FLOAT")]  # the five PCM_16 files were only opened for their header


def test_feats_scp_entries_must_be_path_and_offset_in_an_existing_ark(tmp_path):
    d = str(tmp_path / "feats_only")
    utts = ["s-1", "s-2", "s-3", "s-4", "s-5"]
    entries = _feature_only_dir(d, utts)
    ark = entries["s-1"].rsplit(":", 1)[0]
    flag = tmp_path / "PWNED_x"
    broken = {
        "s-1": entries["s-1"],
        "s-2": f"echo hi > {flag} |",
        "s-3": f"{tmp_path}/gone.ark:3",
        "s-4": f"{ark}:{os.path.getsize(ark)}",
        "s-5": entries["s-5"] + "[0:9]",
    }
    write_kaldi_map(os.path.join(d, "feats.scp"), broken)
    message = _problems(d, check_lang=False)
    assert message.splitlines()[0] == f"{d}: 4 problem(s):"
    scp = os.path.join(d, "feats.scp")
    assert f"{scp}:2: utterance 's-2': entry 'echo hi > {flag} |' is not '<ark path>:<byte offset>'" in message
    assert f"{scp}:3: utterance 's-3': ark file '{tmp_path}/gone.ark' not found" in message
    assert f"{scp}:4: utterance 's-4': offset {os.path.getsize(ark)} is past the end of ark '{ark}'" in message
    assert f"{scp}:5: utterance 's-5': entry '{broken['s-5']}' is not" in message
    assert not flag.exists()


def test_feature_only_dir_without_utterances(tmp_path):
    d = str(tmp_path / "feats_only")
    _feature_only_dir(d, ["s-1"])
    for name in ("feats.scp", "utt2spk", "spk2utt", "utt2num_frames"):
        _write(d, name, b"")
    message = _problems(d, check_lang=False)
    assert message == f"{d}: 1 problem(s):\n  {d}{os.sep}feats.scp: no utterances (the file is empty); " \
                      f"a data directory needs at least one"


def test_check_flags_skip_audio_and_lang(data_dir):
    os.remove(_wav(data_dir, "spkA-001"))
    _set(data_dir, "utt2lang", "spkA-001", "hr")
    assert validate_data_dir(data_dir, check_audio=False, check_lang=False).num_utterances == 6


def test_missing_directory(tmp_path):
    message = _problems(str(tmp_path / "nope"))
    assert "nope: data directory not found" in message


# ----------------------------------------------------------------------------- CLI


def test_main_valid(data_dir, capsys):
    assert main([data_dir]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"{data_dir}: OK — 6 utterances, 3 speakers, 0.00 h, streams: gender geo lang spk text"
    assert err == ""


def test_main_invalid(data_dir, capsys):
    _set(data_dir, "utt2gender", "spkB-002", "female")
    assert main(["--no-audio", "--no-lang", data_dir]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[0] == f"{data_dir}: 1 problem(s):"
    assert "utt2gender:4: utterance 'spkB-002': gender 'female'" in err


def test_shell_wrapper(data_dir, tmp_path):
    script = os.path.join(REPO_ROOT, "tools", "validate_data_dir.sh")
    assert os.access(script, os.X_OK)
    bins = [os.path.dirname(sys.executable), os.path.join(REPO_ROOT, ".venv", "bin")]
    env = dict(os.environ, PATH=os.pathsep.join(bins + [os.environ.get("PATH", "")]))
    ok = subprocess.run([script, "--no-lang", data_dir], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"{data_dir}: OK — 6 utterances, 3 speakers")

    os.remove(_wav(data_dir, "spkA-002"))
    bad = subprocess.run([script, "--no-lang", data_dir], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert f"{data_dir}: 1 problem(s):" in bad.stderr
    assert "wav.scp:2: utterance 'spkA-002'" in bad.stderr


def test_files_required_by_later_stages_are_problems_when_missing(data_dir, capsys):
    os.remove(os.path.join(data_dir, "utt2lang"))
    validate_data_dir(data_dir, check_lang=False)   # a data dir need not have utt2lang ...
    message = _problems(data_dir, require=["utt2lang", "text"])   # ... unless LangID will read it
    assert message.startswith(f"{data_dir}: 1 problem(s):")
    assert "utt2lang: file not found (required by the recipe's later stages: LangID (stage 5)" in message
    assert main(["--require", "utt2lang", "--no-lang", data_dir]) == 1
    assert "utt2lang: file not found" in capsys.readouterr().err
