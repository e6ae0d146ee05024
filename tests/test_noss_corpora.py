"""NOSS corpora (masr.corpora.esc50, voxforge, asvspoof2019, iemocap) from tiny generated trees."""

import os

import numpy as np
import pytest
import soundfile as sf

from masr.corpora import asvspoof2019, esc50, iemocap, mask, voxforge
from masr.corpora.download import ManualDownloadError
from masr.data.datadir import DataDir
from masr.data.validate import validate_data_dir

SR = 8000


def tone(path, seconds=0.2, sr=SR):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, 0.3 * np.sin(2 * np.pi * 300 * t), sr, subtype="PCM_16")
    return path


# ----------------------------------------------------------------------------- ESC-50

ESC_ROWS = [  # filename, fold, target, category, esc10, src_file, take
    ("1-100032-A-0.wav", "1", "0", "dog", "True", "100032", "A"),
    ("1-100038-A-14.wav", "1", "14", "chirping_birds", "False", "100038", "A"),
    ("2-1000-A-20.wav", "2", "20", "crying_baby", "True", "1000", "A"),
    ("2-1000-B-20.wav", "2", "20", "crying_baby", "True", "1000", "B"),
    ("5-9032-A-24.wav", "5", "24", "coughing", "False", "9032", "A"),
]


def make_esc50(root, rows=ESC_ROWS):
    folder = os.path.join(root, "esc50", "ESC-50-master")
    os.makedirs(os.path.join(folder, "meta"))
    with open(os.path.join(folder, "meta", "esc50.csv"), "w") as f:
        f.write("filename,fold,target,category,esc10,src_file,take\n")
        for row in rows:
            f.write(",".join(row) + "\n")
            tone(os.path.join(folder, "audio", row[0]))
    return folder


def test_esc50_prepare(tmp_path):
    folder = make_esc50(str(tmp_path / "root"))
    out = tmp_path / "data" / "esc50"
    files = esc50.prepare(str(tmp_path / "root"), str(out))
    expected = ["100032-1-100032-A-0", "100038-1-100038-A-14", "1000-2-1000-A-20", "1000-2-1000-B-20",
                "9032-5-9032-A-24"]
    report = validate_data_dir(out)
    assert report.num_utterances == 5 and report.num_speakers == 4
    dd = DataDir(out)
    assert dd.utt_ids == sorted(expected)
    assert dd.read("utt2category") == dict(zip(expected, ["dog", "chirping_birds", "crying_baby", "crying_baby",
                                                          "coughing"]))
    assert dd.read("utt2fold") == dict(zip(expected, "11225"))
    assert dd.read("utt2spk")["1000-2-1000-B-20"] == "1000"
    assert dd.read("wav.scp")["9032-5-9032-A-24"] == os.path.join(folder, "audio", "5-9032-A-24.wav")
    assert set(files["utt2esc10"].values()) == {"true", "false"}
    human = tmp_path / "data" / "esc50_human"
    validate_data_dir(human)
    assert DataDir(human).read("utt2category") == {"1000-2-1000-A-20": "crying_baby",
                                                   "1000-2-1000-B-20": "crying_baby",
                                                   "9032-5-9032-A-24": "coughing"}
    before = {n: (out / n).read_text() for n in os.listdir(out)}
    esc50.prepare(str(tmp_path / "root" / "esc50" / "ESC-50-master"), str(out))  # folder itself, rerun
    assert {n: (out / n).read_text() for n in os.listdir(out)} == before


@pytest.mark.parametrize("row, reason", [
    (("1-100032-A-0.wav", "2", "0", "dog", "True", "100032", "A"), "disagree with the file name"),
    (("1-100032-A-0.wav", "1", "0", "dog", "True", "100032"), "6 columns"),
    (("dog.wav", "1", "0", "dog", "True", "100032", "A"), "not an ESC-50 clip name"),
    (("1-100032-A-0.wav", "1", "0", "dog", "maybe", "100032", "A"), "esc10"),
])
def test_esc50_malformed_row_names_file_and_line(tmp_path, row, reason):
    folder = make_esc50(str(tmp_path), ESC_ROWS[1:])
    with open(os.path.join(folder, "meta", "esc50.csv"), "a") as f:
        f.write(",".join(row) + "\n")
    tone(os.path.join(folder, "audio", row[0]))
    with pytest.raises(ValueError, match=rf"esc50\.csv:6: .*{reason}"):
        esc50.prepare(str(tmp_path), str(tmp_path / "out"))


def test_esc50_missing_audio_and_cli(tmp_path, capsys):
    folder = make_esc50(str(tmp_path))
    assert esc50.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "d" / "esc50")]) == 0
    assert "esc50: 5 utterances" in capsys.readouterr().out
    os.remove(os.path.join(folder, "audio", "2-1000-B-20.wav"))
    with pytest.raises(ValueError, match=r"esc50\.csv:5: audio file .*2-1000-B-20\.wav not found"):
        esc50.prepare(str(tmp_path), str(tmp_path / "out"))
    assert esc50.main(["--data-root", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 1
    assert "ESC-50 not found" in capsys.readouterr().err


# ----------------------------------------------------------------------------- VoxForge

VOX_SESSIONS = {  # (folder, session) -> (gender line, wav stems)
    ("de", "ralfherzog-20071220-de34"): ("Gender: Male", ["de34-01", "de34-02"]),
    ("fr", "anonymous-20080504-qvg"): ("Gender: Female", ["fr01"]),
    ("rus", "ivan-20090101-abc"): ("gender: male", ["a0001"]),
}


def make_voxforge(root, sessions=VOX_SESSIONS):
    for (lang, session), (gender, stems) in sessions.items():
        base = os.path.join(root, "voxforge", lang, session)
        for stem in stems:
            tone(os.path.join(base, "wav", f"{stem}.wav"), sr=16000)
        os.makedirs(os.path.join(base, "etc"))
        with open(os.path.join(base, "etc", "README"), "w") as f:
            f.write(f"User Name:x\n\n{gender}\nAge Range: Adult\n")


def test_voxforge_prepare(tmp_path):
    make_voxforge(str(tmp_path))
    out = tmp_path / "data" / "voxforge"
    voxforge.prepare(str(tmp_path), str(out))
    report = validate_data_dir(out)
    assert report.num_utterances == 4 and report.num_speakers == 3
    dd = DataDir(out)
    assert dd.read("utt2lang") == {
        "deu_ralfherzog_20071220_de34-de34-01": "deu", "deu_ralfherzog_20071220_de34-de34-02": "deu",
        "fra_anonymous_20080504_qvg-fr01": "fra", "rus_ivan_20090101_abc-a0001": "rus"}
    assert dd.read("utt2gender") == {
        "deu_ralfherzog_20071220_de34-de34-01": "m", "deu_ralfherzog_20071220_de34-de34-02": "m",
        "fra_anonymous_20080504_qvg-fr01": "f", "rus_ivan_20090101_abc-a0001": "m"}
    subsets = dd.read("utt2subset")
    assert set(subsets.values()) <= {"train", "test"}
    assert subsets["deu_ralfherzog_20071220_de34-de34-01"] == subsets["deu_ralfherzog_20071220_de34-de34-02"]
    assert subsets["deu_ralfherzog_20071220_de34-de34-01"] == voxforge.subset("deu/ralfherzog")


def test_voxforge_split_is_speaker_disjoint_and_about_80_20():
    keys = [voxforge.split_key("eng", f"user{i}-20080101-x{j}") for i in range(500) for j in range(3)]
    by_key = {}
    for k in keys:
        by_key.setdefault(k, set()).add(voxforge.subset(k))
    assert all(len(v) == 1 for v in by_key.values()) and len(by_key) == 500
    share = sum(v == {"test"} for v in by_key.values()) / 500
    assert 0.15 < share < 0.25


def test_voxforge_unknown_gender_drops_utt2gender_and_empty_session_is_named(tmp_path):
    sessions = dict(VOX_SESSIONS)
    sessions[("it", "x-20100101-y")] = ("Gender: Please Select", ["it1"])
    make_voxforge(str(tmp_path), sessions)
    out = tmp_path / "out"
    voxforge.prepare(str(tmp_path), str(out))
    validate_data_dir(out)
    assert not (out / "utt2gender").exists()
    os.makedirs(tmp_path / "voxforge" / "es" / "empty-20100101-z" / "wav")
    with pytest.raises(ValueError, match=r"empty-20100101-z: no audio"):
        voxforge.prepare(str(tmp_path), str(out))
    assert voxforge.main(["--data-root", str(tmp_path / "none"), "--out", str(out), "--download"]) == 1


# ----------------------------------------------------------------------------- ASVspoof 2019 LA

ASV = {
    "train": ["LA_0079 LA_T_1138215 - - bonafide", "LA_0079 LA_T_1271820 - A01 spoof",
              "LA_0080 LA_T_1000137 - A06 spoof"],
    "dev": ["LA_0069 LA_D_1047731 - - bonafide"],
    "eval": ["LA_0039 LA_E_2834763 - A11 spoof", "LA_0014 LA_E_8877452 - - bonafide"],
}


def make_asvspoof(root, protocols=ASV):
    la = os.path.join(root, "LA")
    pdir = os.path.join(la, "ASVspoof2019_LA_cm_protocols")
    os.makedirs(pdir)
    for part, lines in protocols.items():
        with open(os.path.join(pdir, f"ASVspoof2019.LA.cm.{asvspoof2019.PARTS[part]}.txt"), "w") as f:
            f.write("".join(line + "\n" for line in lines))
        for line in lines:
            cols = line.split()
            if len(cols) > 1:
                tone(os.path.join(la, f"ASVspoof2019_LA_{part}", "flac", f"{cols[1]}.flac"), sr=16000)
    return la


def test_asvspoof_prepare(tmp_path):
    make_asvspoof(str(tmp_path))
    out = str(tmp_path / "data" / "asvspoof")
    files = asvspoof2019.prepare(str(tmp_path), out)
    assert len(files["wav.scp"]) == 6
    train, dev, ev = (DataDir(f"{out}_{p}") for p in ("train", "dev", "eval"))
    for d in (train, dev, ev):
        validate_data_dir(d.path)
    assert train.read("utt2label") == {"LA_0079-LA_T_1138215": "bonafide", "LA_0079-LA_T_1271820": "spoof",
                                       "LA_0080-LA_T_1000137": "spoof"}
    assert train.read("utt2attack")["LA_0079-LA_T_1271820"] == "A01"
    assert ev.read("utt2spk") == {"LA_0014-LA_E_8877452": "LA_0014", "LA_0039-LA_E_2834763": "LA_0039"}
    assert dev.utt_ids == ["LA_0069-LA_D_1047731"]
    assert ev.read("wav.scp")["LA_0014-LA_E_8877452"].endswith("ASVspoof2019_LA_eval/flac/LA_E_8877452.flac")


@pytest.mark.parametrize("line, reason", [
    ("LA_0079 LA_T_9 - A01", "4 columns"),
    ("LA_0079 LA_T_9 - A01 fake", "label 'fake'"),
    ("LA_0079 LA_T_9 - - spoof", "does not fit"),
])
def test_asvspoof_malformed_line_names_file_and_line(tmp_path, line, reason):
    protocols = dict(ASV, train=ASV["train"] + [line])
    make_asvspoof(str(tmp_path), protocols)
    with pytest.raises(ValueError, match=rf"ASVspoof2019\.LA\.cm\.train\.trn\.txt:4: .*{reason}"):
        asvspoof2019.prepare(str(tmp_path), str(tmp_path / "out"))


def test_asvspoof_missing_names_the_licence_page(tmp_path, capsys):
    with pytest.raises(ManualDownloadError, match=r"ASVspoof 2019 LA needs a manual download: .*"
                                                  r"https://datashare\.ed\.ac\.uk/handle/10283/3336"):
        asvspoof2019.prepare(str(tmp_path), str(tmp_path / "out"))
    assert asvspoof2019.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "o"), "--download"]) == 1
    assert "https://datashare.ed.ac.uk/handle/10283/3336" in capsys.readouterr().err


# ----------------------------------------------------------------------------- IEMOCAP

IEMO = {  # session -> dialog -> [(utt, emotion)]
    1: {"Ses01F_impro01": [("Ses01F_impro01_F000", "neu"), ("Ses01F_impro01_M000", "fru"),
                           ("Ses01F_impro01_M001", "exc")]},
    2: {"Ses02M_script01_1": [("Ses02M_script01_1_F003", "ang"), ("Ses02M_script01_1_M010", "hap")]},
    3: {"Ses03F_impro02": [("Ses03F_impro02_M000", "sad")]},
    4: {"Ses04M_impro01": [("Ses04M_impro01_F001", "xxx")]},
    5: {"Ses05F_impro03": [("Ses05F_impro03_F005", "neu")]},
}


def make_iemocap(root, extra_line=None):
    base = os.path.join(root, "IEMOCAP_full_release")
    for session, dialogs in IEMO.items():
        sdir = os.path.join(base, f"Session{session}")
        edir = os.path.join(sdir, "dialog", "EmoEvaluation")
        os.makedirs(edir)
        for dialog, utts in dialogs.items():
            with open(os.path.join(edir, f"{dialog}.txt"), "w") as f:
                f.write("% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n")
                for i, (utt, emo) in enumerate(utts):
                    f.write(f"[{i}.5000 - {i + 1}.2500]\t{utt}\t{emo}\t[2.5000, 3.0000, 2.0000]\n")
                    f.write("C-E1:\tNeutral state;\t()\nA-E2:\tval 3; act 2; dom  2;\t()\n\n")
                    tone(os.path.join(sdir, "sentences", "wav", dialog, f"{utt}.wav"), sr=16000)
                if extra_line and session == 2:
                    f.write(extra_line)
    return base


def test_iemocap_prepare(tmp_path):
    make_iemocap(str(tmp_path))
    out = tmp_path / "data" / "iemocap"
    iemocap.prepare(str(tmp_path), str(out))
    report = validate_data_dir(out)
    assert report.num_utterances == 6
    dd = DataDir(out)
    assert dd.read("utt2emotion") == {
        "Ses01F-Ses01F_impro01_F000": "neu", "Ses01M-Ses01F_impro01_M001": "hap",
        "Ses02F-Ses02M_script01_1_F003": "ang", "Ses02M-Ses02M_script01_1_M010": "hap",
        "Ses03M-Ses03F_impro02_M000": "sad", "Ses05F-Ses05F_impro03_F005": "neu"}
    assert dd.read("utt2session")["Ses02F-Ses02M_script01_1_F003"] == "Ses02"
    assert dd.read("utt2gender")["Ses03M-Ses03F_impro02_M000"] == "m"
    assert dd.read("utt2spk")["Ses01M-Ses01F_impro01_M001"] == "Ses01M"
    assert set(dd.read("utt2lang").values()) == {"eng"}


@pytest.mark.parametrize("line, reason", [
    ("[1.0 - 2.0]\tSes02M_script01_1_F009\tneu\n", "not '\\[start - end\\]"),
    ("[1.0 - 2.0]\tSes02M_script01_1_F009\tjoy\t[1, 2, 3]\n", "unknown emotion 'joy'"),
    ("[1.0 - 2.0]\tfoo\tneu\t[1, 2, 3]\n", "'foo' is not an IEMOCAP utterance id"),
])
def test_iemocap_malformed_line_names_file_and_line(tmp_path, line, reason):
    make_iemocap(str(tmp_path), extra_line=line)
    with pytest.raises(ValueError, match=rf"Ses02M_script01_1\.txt:11: {reason}"):
        iemocap.prepare(str(tmp_path), str(tmp_path / "out"))


def test_iemocap_missing_names_the_licence_page(tmp_path, capsys):
    with pytest.raises(ManualDownloadError,
                       match=r"IEMOCAP needs a manual download: .*https://sail\.usc\.edu/iemocap/"):
        iemocap.prepare(str(tmp_path), str(tmp_path / "out"))
    assert iemocap.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "https://sail.usc.edu/iemocap/" in capsys.readouterr().err


# ----------------------------------------------------------------------------- Mask (ComParE 2020)

MASK_ROWS = [("train_00001.wav", "clear"), ("train_00002.wav", "mask"), ("devel_00001.wav", "mask"),
             ("test_00001.wav", "?")]


def make_mask(root, rows=MASK_ROWS):
    base = os.path.join(root, "ComParE2020_Mask")
    os.makedirs(os.path.join(base, "lab"))
    with open(os.path.join(base, "lab", "labels.csv"), "w") as f:
        f.write("file_name,label\n" + "".join(f"{n},{lab}\n" for n, lab in rows))
    for name, _ in rows:
        tone(os.path.join(base, "wav", name), sr=16000)
    return base


def test_mask_prepare(tmp_path):
    make_mask(str(tmp_path))
    out = tmp_path / "data" / "mask"
    mask.prepare(str(tmp_path), str(out))
    validate_data_dir(out)
    dd = DataDir(out)
    assert dd.read("utt2label") == {"devel_00001": "mask", "train_00001": "clear", "train_00002": "mask"}
    assert dd.read("utt2subset") == {"devel_00001": "test", "train_00001": "train", "train_00002": "train"}


@pytest.mark.parametrize("row, reason", [
    (("train_00003.wav", "muffled"), "label 'muffled'"),
    (("foo.wav", "mask"), "'foo.wav' is not"),
])
def test_mask_malformed_line_names_file_and_line(tmp_path, row, reason):
    make_mask(str(tmp_path), MASK_ROWS + [row])
    with pytest.raises(ValueError, match=rf"labels\.csv:6: .*{reason}"):
        mask.prepare(str(tmp_path), str(tmp_path / "out"))


def test_mask_missing_names_the_page(tmp_path):
    with pytest.raises(ManualDownloadError, match=r"Mask \(ComParE 2020\) needs a manual download: .*"
                                                  r"http://www\.compare\.openaudio\.eu/"):
        mask.prepare(str(tmp_path), str(tmp_path / "out"))


# ----------------------------------------------------------------------------- recipe script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_noss_prepare_data_prepares_the_corpora_present(tmp_path):
    import subprocess

    root = tmp_path / "root"
    make_esc50(str(root))
    make_voxforge(str(root))
    make_asvspoof(str(root))
    make_iemocap(str(root))
    make_mask(str(root))
    script = os.path.join(ROOT, "egs", "noss", "local", "prepare_data.sh")
    data = tmp_path / "data"
    result = subprocess.run(["bash", script, "--data-root", str(root), "--data", str(data)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "fsdd: skipped" in result.stderr and "emodb: skipped" in result.stderr
    for name, count in (("esc50", 5), ("esc50_human", 3), ("voxforge", 4), ("asvspoof_train", 3),
                        ("asvspoof_dev", 1), ("asvspoof_eval", 2), ("iemocap", 6),
                        ("mask", 3)):
        assert f"{data / name}: {count} utterances" in result.stdout
        validate_data_dir(data / name)
    # conf/probe_noss.yaml: every dataset is one of these dirs; every task's files are there
    from masr.downstream.probe import protocol_splits
    from masr.utils.config import load_config
    from masr.data.datadir import read_kaldi_map

    config = load_config(os.path.join(ROOT, "egs", "noss", "conf", "probe_noss.yaml"),
                         {"pretrained": "x", "dump_dir": str(data), "exp_dir": "y"})
    assert set(config["datasets"].values()) <= {str(data / n) for n in os.listdir(data)}
    utts = {n: DataDir(d).utt_ids for n, d in config["datasets"].items()}
    read = lambda dataset, name: read_kaldi_map(os.path.join(config["datasets"][dataset], name))  # noqa: E731
    for task in config["tasks"]:
        for dataset in (task.get("data"), task.get("train"), task.get("test")):
            if dataset:
                for key in ("label", "groups", "subset"):
                    if key in task:
                        assert set(read(dataset, task[key])) == set(utts[dataset]), (task, key)
        if task["protocol"] in ("split", "subset"):
            (_, train), (_, test) = protocol_splits(task, utts, read)[0]
            assert train and test or task["protocol"] == "subset", task
    # nothing present at all: fails, as before
    result = subprocess.run(["bash", script, "--data-root", str(tmp_path / "none"), "--data", str(data)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1 and "no corpus found" in result.stderr
    assert "asvspoof2019: skipped (asvspoof2019: ASVspoof 2019 LA needs a manual download" in result.stderr
