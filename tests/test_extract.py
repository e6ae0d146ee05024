"""masr.features.extract: the features stage over a data dir, in parallel jobs."""

import os

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from masr.audio import read_audio
from masr.data.datadir import read_kaldi_map, write_data_dir
from masr.features.cmvn import CMVNStats
from masr.features.extract import FeatureError, extract_features, main, split_evenly
from masr.features.fbank import FbankConfig, compute_fbank, expected_num_frames


def make_data_dir(root, n=6, sr=16000):
    rng = np.random.default_rng(0)
    wav, utt2spk, lengths = {}, {}, {}
    for i in range(n):
        utt = f"spk{i % 2}_{i:03d}"
        samples = int(sr * (0.3 + 0.1 * i))
        path = root / "wav" / f"{utt}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, rng.uniform(-0.3, 0.3, samples).astype(np.float32), sr)
        wav[utt], utt2spk[utt], lengths[utt] = str(path), f"spk{i % 2}", samples
    write_data_dir(root / "data", {"wav.scp": wav, "utt2spk": utt2spk,
                                   "utt2lang": dict.fromkeys(wav, "hrv"),
                                   "text": dict.fromkeys(wav, "dobar dan")})
    return root / "data", lengths


def test_split_evenly_covers_everything_in_order():
    items = list(range(11))
    parts = split_evenly(items, 3)
    assert [len(p) for p in parts] == [4, 4, 3] and sum(parts, []) == items
    assert split_evenly([1, 2], 5) == [[1], [2]]


@pytest.mark.parametrize("sr", [16000, 8000])
def test_features_match_direct_computation_and_nj_does_not_matter(tmp_path, sr):
    data, lengths = make_data_dir(tmp_path, sr=sr)
    cfg = FbankConfig()
    s1 = extract_features(str(data), str(tmp_path / "dump1"), cfg, nj=1)
    s2 = extract_features(str(data), str(tmp_path / "dump2"), cfg, nj=2)
    assert s1["utterances"] == s2["utterances"] == 6
    feats1 = dict(kaldiio.load_scp(str(tmp_path / "dump1" / "feats.scp")))
    feats2 = dict(kaldiio.load_scp(str(tmp_path / "dump2" / "feats.scp")))
    assert sorted(feats1) == sorted(lengths)
    num_frames = read_kaldi_map(tmp_path / "dump2" / "utt2num_frames")
    wav_scp = read_kaldi_map(data / "wav.scp")
    for utt in lengths:
        np.testing.assert_array_equal(feats1[utt], feats2[utt])
        expected = compute_fbank(read_audio(wav_scp[utt])[0], cfg)
        np.testing.assert_array_equal(feats2[utt], expected)
        samples16k = int(np.ceil(lengths[utt] * 16000 / sr))
        assert int(num_frames[utt]) == feats2[utt].shape[0] == expected_num_frames(samples16k, cfg)
    assert len(os.listdir(tmp_path / "dump2" / "data")) == 2  # one ark per job


def test_cmvn_stats_cover_all_frames(tmp_path):
    data, _ = make_data_dir(tmp_path)
    extract_features(str(data), str(tmp_path / "dump"), FbankConfig(), nj=2)
    feats = np.concatenate([m for _, m in kaldiio.load_scp_sequential(str(tmp_path / "dump" / "feats.scp"))])
    stats = CMVNStats.load(str(tmp_path / "dump" / "cmvn.ark"))
    assert stats.count == feats.shape[0]
    np.testing.assert_allclose(stats.mean, feats.mean(axis=0, dtype=np.float64), rtol=1e-6)


def test_dump_dir_carries_the_metadata(tmp_path):
    data, _ = make_data_dir(tmp_path)
    extract_features(str(data), str(tmp_path / "dump"), FbankConfig())
    for name in ("utt2spk", "spk2utt", "utt2lang", "text", "wav.scp"):
        assert (tmp_path / "dump" / name).read_text() == (data / name).read_text()


def test_bad_utterance_names_it_and_leaves_nothing_behind(tmp_path):
    data, _ = make_data_dir(tmp_path)
    (tmp_path / "wav" / "spk1_003.wav").write_bytes(b"not audio")
    with pytest.raises(FeatureError, match=r"wav\.scp: utterance 'spk1_003': cannot read audio"):
        extract_features(str(data), str(tmp_path / "dump"), FbankConfig(), nj=2)
    left = sorted(p.name for p in (tmp_path / "dump").rglob("*") if p.is_file())
    assert left == []  # no feats.scp, no .ark, no .tmp


def test_cli(tmp_path, capsys):
    data, _ = make_data_dir(tmp_path)
    conf = tmp_path / "fbank.yaml"
    conf.write_text("num_mel_bins: 80\nframe_length: 25.0\nframe_shift: 10.0\nsample_rate: 16000\ndither: 0.0\n")
    assert main([str(conf), "--data", str(data), "--out", str(tmp_path / "dump"), "--num_mel_bins", "40"]) == 0
    assert "6 utterances" in capsys.readouterr().out
    feats = dict(kaldiio.load_scp(str(tmp_path / "dump" / "feats.scp")))
    assert all(m.shape[1] == 40 for m in feats.values())
    conf.write_text("num_mel_bins: 80\nwarp: 1.0\n")
    with pytest.raises(SystemExit):
        main([str(conf), "--data", str(data), "--out", str(tmp_path / "dump")])
    assert "unknown filterbank option(s): warp" in capsys.readouterr().err


def test_sharded_extraction_writes_random_shards_and_an_index(tmp_path):
    data, lengths = make_data_dir(tmp_path, n=7)
    cfg = FbankConfig()
    plain = extract_features(str(data), str(tmp_path / "plain"), cfg, nj=1)
    out = tmp_path / "dump"
    s = extract_features(str(data), str(out), cfg, nj=2, shard_utts=3, shard_seed=0)
    assert s["utterances"] == plain["utterances"] == 7
    arks = sorted(os.listdir(out / "data"))
    assert arks == ["shard.000000.ark", "shard.000001.ark", "shard.000002.ark"]
    index = (out / "shards.tsv").read_text().splitlines()
    assert index[0] == "ark\tutterances\tframes"
    rows = [line.split("\t") for line in index[1:]]
    assert [os.path.basename(r[0]) for r in rows] == arks and [int(r[1]) for r in rows] == [3, 3, 1]
    scp = read_kaldi_map(out / "feats.scp")
    frames = read_kaldi_map(out / "utt2num_frames")
    for ark, n_utts, n_frames in rows:
        in_shard = [u for u, entry in scp.items() if entry.rsplit(":", 1)[0] == ark]
        assert len(in_shard) == int(n_utts) and sum(int(frames[u]) for u in in_shard) == int(n_frames)
    # the features do not depend on how they are stored
    sharded = dict(kaldiio.load_scp(str(out / "feats.scp")))
    for utt, mat in kaldiio.load_scp(str(tmp_path / "plain" / "feats.scp")).items():
        np.testing.assert_array_equal(sharded[utt], mat)
    # shards mix the utterances (not consecutive runs of sorted ids): speakers spk0/spk1 alternate
    # in sorted order, so a random draw of 3 differs from the sorted runs for seed 0
    first = sorted(u for u, e in scp.items() if e.startswith(rows[0][0] + ":"))
    assert first != sorted(lengths)[:3]


def test_re_extraction_without_shards_removes_the_shards_and_their_index(tmp_path):
    data, _ = make_data_dir(tmp_path, n=5)
    out = tmp_path / "dump"
    extract_features(str(data), str(out), FbankConfig(), nj=1, shard_utts=2)
    assert (out / "shards.tsv").exists() and len(os.listdir(out / "data")) == 3
    extract_features(str(data), str(out), FbankConfig(), nj=1)
    assert not (out / "shards.tsv").exists()
    assert os.listdir(out / "data") == ["feats.1.ark"]
    assert len(kaldiio.load_scp(str(out / "feats.scp"))) == 5
