"""The data dirs of the validator's tests and the bad-input catalogue: a valid one with real audio
and every metadata stream (:func:`make_valid_data_dir`, the ``data_dir`` fixture of
``tests/conftest.py``), the edits that break it, and ``BROKEN``, each kind of breakage with the
strings its message must contain."""

import os
import re

import kaldiio
import numpy as np
import soundfile as sf

from masr.data.datadir import read_kaldi_map, utt2spk_to_spk2utt, write_data_dir, write_kaldi_map

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


def make_valid_data_dir(tmp_path):
    """A valid data directory ``tmp_path/data/train`` (a str) with real WAVs under ``tmp_path/audio``
    and every metadata stream."""
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


def read_bytes(d, name):
    return open(os.path.join(d, name), "rb").read()


def write_bytes(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def set_value(d, name, utt, value):
    """Replace the value of ``utt`` in file ``name`` (keeping line order)."""
    lines = read_bytes(d, name).decode().splitlines()
    out = [f"{utt} {value}" if line.split()[0] == utt else line for line in lines]
    write_bytes(d, name, "\n".join(out) + "\n")


def wav_path(d, utt):
    return os.path.join(os.path.dirname(os.path.dirname(d)), "audio", f"{utt}.wav")


def write_nonfinite_wav(d, utt, subtype):
    """Rewrite the audio of ``utt`` as float WAV (same length) with a NaN at sample 400 and 11 infs."""
    x = np.zeros(int(round(SPEC[utt][1] * SR)), dtype=np.float64)
    x[400] = np.nan
    x[500:511] = -np.inf
    sf.write(wav_path(d, utt), x, SR, subtype=subtype)


def empty_all(d):
    for name in os.listdir(d):
        write_bytes(d, name, b"")


def make_feature_only_dir(path, utts):
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


def move_utt_to_speaker(d, utt, spk):
    """Give ``utt`` another speaker, keeping spk2utt consistent (so only the order is wrong)."""
    utt2spk = {u: v[0] for u, v in SPEC.items()}
    utt2spk[utt] = spk
    write_kaldi_map(os.path.join(d, "utt2spk"), utt2spk)
    write_kaldi_map(os.path.join(d, "spk2utt"), utt2spk_to_spk2utt(utt2spk))


def swap_lines(d, name, i, j):
    lines = read_bytes(d, name).decode().splitlines()
    lines[i - 1], lines[j - 1] = lines[j - 1], lines[i - 1]
    write_bytes(d, name, "\n".join(lines) + "\n")


def insert_after(d, name, line_no, text):
    lines = read_bytes(d, name).splitlines(keepends=True)
    lines.insert(line_no, text if isinstance(text, bytes) else text.encode())
    write_bytes(d, name, b"".join(lines))


def rename_utt(d, old, new):
    """Rename utterance ``old`` to ``new`` in every file (spk2utt included), keeping its audio path."""
    pattern = re.compile(rb"(^|\s)" + re.escape(old.encode()) + rb"(?=\s)", re.MULTILINE)
    for name in os.listdir(d):
        write_bytes(d, name, pattern.sub(rb"\g<1>" + new.encode(), read_bytes(d, name)))


BROKEN = {
    # id: (mutation, strings the message must contain[, number of problems, default 1])
    "missing_utt2spk": (lambda d: os.remove(os.path.join(d, "utt2spk")), ["utt2spk: file not found"]),
    "unsorted_wav_scp": (
        lambda d: swap_lines(d, "wav.scp", 2, 3),
        ["wav.scp:3: utterance 'spkA-002'", "not sorted", "'spkB-001' on line 2"],
    ),
    "duplicate_key": (
        lambda d: insert_after(d, "text", 2, "spkA-002 once more\n"),
        ["text:3: utterance 'spkA-002': duplicate key"],
    ),
    "key_without_value": (lambda d: set_value(d, "text", "spkB-001", ""), ["text:3: utterance 'spkB-001'", "no value"]),
    "crlf_line": (
        lambda d: write_bytes(d, "utt2lang", read_bytes(d, "utt2lang").replace(b"\n", b"\r\n")),
        ["utt2lang:1", "carriage return"],
    ),
    "non_utf8": (
        lambda d: write_bytes(d, "text", read_bytes(d, "text").replace(b"lijepa", b"lij\xffepa")),
        ["text:4", "not valid UTF-8"],
    ),
    "text_utt_not_in_wav_scp": (
        lambda d: insert_after(d, "text", 2, "spkA-003 nova recenica\n"),
        ["text: 1 utterance(s) not in wav.scp", "'spkA-003' (line 3)"],
    ),
    "utt2lang_missing_utt": (
        lambda d: write_bytes(d, "utt2lang", b"".join(read_bytes(d, "utt2lang").splitlines(True)[1:])),
        ["utt2lang: 1 utterance(s) of wav.scp missing", "'spkA-001' (wav.scp line 1)"],
    ),
    "spk2utt_inconsistent": (
        lambda d: write_bytes(d, "spk2utt", "spkA spkA-001\nspkB spkA-002 spkB-001 spkB-002\nspkC spkC-001 spkC-002\n"),
        [
            "spk2utt:2: speaker 'spkB': utterance 'spkA-002' belongs to speaker 'spkA' in utt2spk (line 2)",
            "spk2utt:1: speaker 'spkA': utterance 'spkA-002' of this speaker in utt2spk (line 2) is missing",
        ],
        2,
    ),
    "speaker_order": (
        lambda d: move_utt_to_speaker(d, "spkC-001", "spkA"),
        ["utt2spk:5: utterance 'spkC-001'", "speaker 'spkA' sorts before speaker 'spkB'", "prefix utterance ids"],
    ),
    "slash_in_utt_id": (
        lambda d: rename_utt(d, "spkC-002", "spkC/002"),
        ["wav.scp:6: utterance 'spkC/002': utterance id contains '/'"],
    ),
    "missing_audio": (
        lambda d: os.remove(wav_path(d, "spkB-001")),
        ["wav.scp:3: utterance 'spkB-001'", "spkB-001.wav' not found"],
    ),
    "unreadable_audio": (
        lambda d: open(wav_path(d, "spkB-002"), "wb").write(b"this is not a wav file at all" * 10),
        ["wav.scp:4: utterance 'spkB-002'", "cannot read audio"],
    ),
    "empty_audio": (
        lambda d: sf.write(wav_path(d, "spkC-001"), np.zeros(0, dtype=np.float32), SR),
        ["wav.scp:5: utterance 'spkC-001'", "holds no samples"],
    ),
    "nan_in_float_audio": (
        lambda d: write_nonfinite_wav(d, "spkB-001", "FLOAT"),
        ["wav.scp:3: utterance 'spkB-001': audio '", "spkB-001.wav' has 12 NaN/inf samples (first at sample 400)"],
    ),
    "inf_in_double_audio": (
        lambda d: write_nonfinite_wav(d, "spkC-002", "DOUBLE"),
        ["wav.scp:6: utterance 'spkC-002'", "has 12 NaN/inf samples (first at sample 400)"],
    ),
    "no_utterances": (empty_all, ["wav.scp: no utterances (the file is empty)"]),
    "bom_in_utt2spk": (
        lambda d: write_bytes(d, "utt2spk", b"\xef\xbb\xbf" + read_bytes(d, "utt2spk")),
        ["utt2spk:1: the file starts with a UTF-8 byte-order mark (BOM); save it without one (e.g. sed -i"],
    ),
    "bom_in_wav_scp": (
        lambda d: write_bytes(d, "wav.scp", b"\xef\xbb\xbf" + read_bytes(d, "wav.scp")),
        ["wav.scp:1: the file starts with a UTF-8 byte-order mark (BOM)", "(further checks of this file skipped)"],
    ),
    "pipe_not_on_path": (
        lambda d: set_value(d, "wav.scp", "spkA-002", "no-such-tool-xq7 -t wav in.mp3 - |"),
        ["wav.scp:2: utterance 'spkA-002'", "command 'no-such-tool-xq7'", "not found on PATH"],
    ),
    "lang_two_letter": (
        lambda d: set_value(d, "utt2lang", "spkB-001", "hr"),
        ["utt2lang:3: utterance 'spkB-001'", "unknown language code 'hr'", "ISO 639-3", "URIEL"],
    ),
    "lang_unknown": (
        lambda d: set_value(d, "utt2lang", "spkC-002", "xxq"),
        ["utt2lang:6: utterance 'spkC-002'", "unknown language code 'xxq'"],
    ),
    "geo_lat_out_of_range": (
        lambda d: set_value(d, "utt2geo", "spkA-001", "95 15.98"),
        ["utt2geo:1: utterance 'spkA-001'", "latitude 95 outside [-90, 90]"],
    ),
    "geo_lon_out_of_range": (
        lambda d: set_value(d, "utt2geo", "spkA-002", "45 181"),
        ["utt2geo:2: utterance 'spkA-002'", "longitude 181 outside"],
    ),
    "geo_not_numeric": (
        lambda d: set_value(d, "utt2geo", "spkB-002", "north east"),
        ["utt2geo:4: utterance 'spkB-002'", "'north east' is not 'lat lon'"],
    ),
    "geo_one_number": (
        lambda d: set_value(d, "utt2geo", "spkC-001", "45.5"),
        ["utt2geo:5: utterance 'spkC-001'", "is not 'lat lon'"],
    ),
    "dur_zero": (
        lambda d: set_value(d, "utt2dur", "spkA-002", "0"),
        ["utt2dur:2: utterance 'spkA-002'", "'0' is not a positive number"],
    ),
    "dur_negative": (
        lambda d: set_value(d, "utt2dur", "spkB-001", "-1.5"),
        ["utt2dur:3: utterance 'spkB-001'", "'-1.5'"],
    ),
    "dur_mismatch": (
        lambda d: set_value(d, "utt2dur", "spkC-002", "0.50"),
        ["utt2dur:6: utterance 'spkC-002'", "0.5 s disagrees with the audio (0.350 s, wav.scp line 6)"],
    ),
    "num_frames_not_int": (
        lambda d: write_bytes(d, "utt2num_frames",
                              "".join(f"{u} {1.5 if i == 2 else 50}\n" for i, u in enumerate(UTTS))),
        ["utt2num_frames:3: utterance 'spkB-001'", "'1.5' is not a positive integer"],
    ),
    "gender_uppercase": (
        lambda d: set_value(d, "utt2gender", "spkB-001", "M"),
        ["utt2gender:3: utterance 'spkB-001'", "gender 'M' is not 'm' or 'f'"],
    ),
    "gender_other": (lambda d: set_value(d, "utt2gender", "spkC-002", "x"), ["utt2gender:6: utterance 'spkC-002'"]),
}
