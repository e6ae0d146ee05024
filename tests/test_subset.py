"""masr.data.subset: subsets keep every file in step; splits keep speakers apart and languages in share."""

import os

import pytest

from masr.data.datadir import DataDirError, read_kaldi_map, write_data_dir
from masr.data.subset import assign_splits, main, split_data_dir, subset_data_dir
from masr.data.validate import validate_data_dir


def make_dir(path, speakers_per_lang=10, utts_per_speaker=3, langs=("hrv", "srp", "swe")):
    files = {"wav.scp": {}, "utt2spk": {}, "utt2lang": {}, "text": {}, "utt2dur": {}}
    for lang in langs:
        for s in range(speakers_per_lang):
            spk = f"{lang}{s:02d}"
            for u in range(utts_per_speaker):
                utt = f"{spk}-{u}"
                files["wav.scp"][utt] = f"/audio/{utt}.wav"
                files["utt2spk"][utt] = spk
                files["utt2lang"][utt] = lang
                files["text"][utt] = f"words of {utt}"
                files["utt2dur"][utt] = "1.5"
    write_data_dir(path, files)
    (path / "weights.tsv").write_text("not keyed by utterance\n")
    return files


def test_subset_keeps_every_utterance_file_in_step_and_rebuilds_spk2utt(tmp_path):
    make_dir(tmp_path / "all")
    keep = ["hrv00-1", "srp03-0", "srp03-2"]
    assert subset_data_dir(str(tmp_path / "all"), str(tmp_path / "sub"), keep) == 3
    for name in ("wav.scp", "utt2spk", "utt2lang", "text", "utt2dur"):
        assert list(read_kaldi_map(str(tmp_path / "sub" / name))) == keep
    assert read_kaldi_map(str(tmp_path / "sub" / "spk2utt")) == {"hrv00": "hrv00-1", "srp03": "srp03-0 srp03-2"}
    assert not (tmp_path / "sub" / "weights.tsv").exists()
    validate_data_dir(str(tmp_path / "sub"), check_audio=False, check_lang=False)


def test_subset_refuses_an_unknown_utterance(tmp_path):
    make_dir(tmp_path / "all")
    with pytest.raises(DataDirError, match="1 utterance.* not in it, e.g. 'nobody-1'"):
        subset_data_dir(str(tmp_path / "all"), str(tmp_path / "sub"), ["hrv00-1", "nobody-1"])
    assert not (tmp_path / "sub").exists()


def test_split_by_speaker_stratified_by_language(tmp_path):
    make_dir(tmp_path / "all")
    outs = [str(tmp_path / n) for n in ("train", "dev", "test")]
    counts = split_data_dir(str(tmp_path / "all"), outs, [0.8, 0.1, 0.1], stratify="lang")
    assert counts == [72, 9, 9]     # 8 + 1 + 1 speakers of 3 utterances, in each of 3 languages
    speakers = [set(read_kaldi_map(os.path.join(o, "utt2spk")).values()) for o in outs]
    assert not (speakers[0] & speakers[1]) and not (speakers[0] & speakers[2]) and not (speakers[1] & speakers[2])
    for o in outs[1:]:
        assert sorted(set(read_kaldi_map(os.path.join(o, "utt2lang")).values())) == ["hrv", "srp", "swe"]
        validate_data_dir(o, check_audio=False, check_lang=False)


def test_hash_split_keeps_a_unit_in_its_split_when_others_are_added():
    few = assign_splits([f"s{i}" for i in range(50)], [0.8, 0.2], seed=1, use_hash=True)
    more = assign_splits([f"s{i}" for i in range(500)], [0.8, 0.2], seed=1, use_hash=True)
    assert all(more[u] == split for u, split in few.items())
    assert 0.7 < sum(v == 0 for v in more.values()) / 500 < 0.9


def test_split_that_would_be_empty_is_an_error_naming_it(tmp_path):
    make_dir(tmp_path / "all", speakers_per_lang=1, langs=("hrv",))
    with pytest.raises(DataDirError, match="the split .*dev would hold no utterance"):
        split_data_dir(str(tmp_path / "all"), [str(tmp_path / "train"), str(tmp_path / "dev")], [0.9, 0.1])


def test_command_line(tmp_path, capsys):
    make_dir(tmp_path / "all")
    assert main(["subset", str(tmp_path / "all"), str(tmp_path / "first"), "--first", "4"]) == 0
    assert len(read_kaldi_map(str(tmp_path / "first" / "wav.scp"))) == 4
    assert main(["split", str(tmp_path / "all"), f"{tmp_path}/a:0.5", f"{tmp_path}/b:0.5", "--by", "utterance"]) == 0
    assert "45 utterances" in capsys.readouterr().out
    assert main(["split", str(tmp_path / "all"), "nofraction"]) == 1
    assert "'nofraction' is not DIR:FRACTION" in capsys.readouterr().err
