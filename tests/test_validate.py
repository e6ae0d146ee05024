"""Tests for masr.data.validate: a valid data dir passes, each kind of breakage is named precisely.

The data dir (the ``data_dir`` fixture of ``tests/conftest.py``), its edits and the ``BROKEN`` cases
are in ``tests/helpers/validate_cases.py``, shared with ``tests/test_bad_input_catalogue.py``."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from masr.data.datadir import DataDirError, write_kaldi_map
from masr.data.validate import main, validate_data_dir
from tests.helpers.validate_cases import (BROKEN, SR, TOTAL, UTTS, make_feature_only_dir, read_bytes, set_value,
                                          swap_lines, wav_path, write_bytes)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    set_value(data_dir, "wav.scp", "spkA-001", f"cat {wav_path(data_dir, 'spkA-001')} |")
    assert validate_data_dir(data_dir).num_utterances == 6
    feats = str(tmp_path / "feats_only")
    make_feature_only_dir(feats, ["s-1"])
    report = validate_data_dir(feats, check_lang=False)
    assert (report.num_utterances, report.num_speakers, report.total_duration) == (1, 1, None)


# ----------------------------------------------------------------------------- broken


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
    swap_lines(data_dir, "utt2gender", 1, 6)
    set_value(data_dir, "utt2lang", "spkA-002", "hr")
    set_value(data_dir, "utt2geo", "spkB-001", "95 15")
    os.remove(wav_path(data_dir, "spkC-002"))
    write_bytes(data_dir, "text", read_bytes(data_dir, "text") + b"zzz-999 extra\n")
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
    write_bytes(data_dir, "utt2spk", read_bytes(data_dir, "utt2spk") + b"\n")
    message = _problems(data_dir)
    assert message.splitlines()[0].endswith("1 problem(s):")
    assert "utt2spk:7: empty line" in message


def test_max_errors_truncates(data_dir):
    for utt in UTTS:
        set_value(data_dir, "utt2gender", utt, "x")
    message = _problems(data_dir, max_errors=2)
    lines = message.splitlines()
    assert lines[0] == f"{data_dir}: 6 problem(s):"
    assert lines[1:] == [
        f"  {data_dir}{os.sep}utt2gender:1: utterance 'spkA-001': gender 'x' is not 'm' or 'f'",
        f"  {data_dir}{os.sep}utt2gender:2: utterance 'spkA-002': gender 'x' is not 'm' or 'f'",
        "  ... and 4 more problem(s) not shown",
    ]


def test_float_audio_without_nan_passes_and_integer_pcm_is_not_decoded(data_dir, monkeypatch):
    sf.write(wav_path(data_dir, "spkA-001"), np.full(int(0.5 * SR), 0.25), SR, subtype="FLOAT")
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
    entries = make_feature_only_dir(d, utts)
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
    make_feature_only_dir(d, ["s-1"])
    for name in ("feats.scp", "utt2spk", "spk2utt", "utt2num_frames"):
        write_bytes(d, name, b"")
    message = _problems(d, check_lang=False)
    assert message == f"{d}: 1 problem(s):\n  {d}{os.sep}feats.scp: no utterances (the file is empty); " \
                      f"a data directory needs at least one"


def test_check_flags_skip_audio_and_lang(data_dir):
    os.remove(wav_path(data_dir, "spkA-001"))
    set_value(data_dir, "utt2lang", "spkA-001", "hr")
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
    set_value(data_dir, "utt2gender", "spkB-002", "female")
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

    os.remove(wav_path(data_dir, "spkA-002"))
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
