"""Audio shards (--audio-shards): the tar format, and filterbanks on the fly equal to stored ones."""

import dataclasses
import io
import json
import os
import random
import tarfile

import numpy as np
import pytest
import soundfile as sf
import torch

from masr.audio import AudioError
from masr.data.datadir import DataDirError, read_kaldi_map, write_data_dir, write_kaldi_map
from masr.data.dataset import FeatsDataset, FeatsReadError
from masr.data.shards import read_shard_index, shard_of_items
from masr.features.audio_shards import (close_open_files, decode_member, finish_tar, member_bytes, read_member,
                                        write_member)
from masr.features.cmvn import CMVNStats
from masr.features.extract import extract_features, main
from masr.features.fbank import FbankConfig, compute_fbank
from masr.features.onthefly import AudioShardDataset, collate_waves
from tests.helpers.datadirs import make_data_dir

OPUS = "OPUS" in sf.available_subtypes("OGG")


def _signal(seconds, sr, level=0.3, seed=0):
    """A speech-like test signal: a few harmonics plus noise, peak about ``level``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((180, 540, 1230, 2900), start=1))
    x = x / np.abs(x).max() * 0.7 + rng.uniform(-0.3, 0.3, len(t))
    return (level * x / np.abs(x).max()).astype(np.float32)


def _add_utts(data, sources):
    """Rewrite the data dir ``data`` with extra utterances: {utt: path}."""
    maps = {name: read_kaldi_map(data / name) for name in ("wav.scp", "utt2spk", "utt2lang", "text")}
    for utt, path in sources.items():
        maps["wav.scp"][utt], maps["utt2spk"][utt] = str(path), utt.split("_")[0]
        maps["utt2lang"][utt], maps["text"][utt] = "hrv", "dobar dan"
    write_data_dir(data, {name: dict(sorted(m.items())) for name, m in maps.items()})


def _diffs(a, b):
    """(max, mean) absolute difference of the features of two datasets."""
    d = torch.cat([(a[i]["feats"] - b[i]["feats"]).abs().flatten() for i in range(len(a))])
    return float(d.max()), float(d.mean())


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    """A data dir of 16 kHz 16-bit WAVs plus a FLAC, an Opus and an 8 kHz WAV source, extracted to
    stored features and to audio shards (nj=2)."""
    root = tmp_path_factory.mktemp("audio_shards")
    data, _ = make_data_dir(root, n=5)
    src = root / "src"
    src.mkdir()
    sources = {"spk0_flac": src / "a.flac", "spk0_wav8k": src / "b.wav", "spk0_flac22k": src / "c.flac"}
    sf.write(sources["spk0_flac"], _signal(0.6, 16000, seed=1), 16000, subtype="PCM_16")
    sf.write(sources["spk0_wav8k"], _signal(0.7, 8000, seed=2), 8000, subtype="PCM_16")
    sf.write(sources["spk0_flac22k"], _signal(0.5, 22050, seed=3), 22050, subtype="PCM_16")
    sf.write(src / "e.wav", _signal(0.6, 8000, seed=5), 8000, subtype="PCM_16")
    sources["spk1_pipe8k"] = f"cat {src / 'e.wav'} |"   # telephone audio through a pipe (sph2pipe, say)
    if OPUS:
        sources["spk1_opus"] = src / "d.opus"
        sf.write(sources["spk1_opus"], _signal(0.8, 16000, seed=4), 16000, format="OGG", subtype="OPUS")
    _add_utts(data, sources)
    cfg = FbankConfig()
    extract_features(str(data), str(root / "feats"), cfg, nj=2, shard_utts=3)   # same shards: same CMVN sums
    extract_features(str(data), str(root / "audio"), cfg, nj=2, shard_utts=3, audio_shards=True)
    return data, root / "feats", root / "audio", sources


def test_features_from_audio_shards_equal_stored_features(dumps):
    data, feats_dir, audio_dir, sources = dumps
    stored, onthefly = FeatsDataset(feats_dir, streams=["lang"]), AudioShardDataset(audio_dir, streams=["lang"])
    assert onthefly.utt_ids == stored.utt_ids and onthefly.num_frames == stored.num_frames
    diffs = {}
    for i, utt in enumerate(stored.utt_ids):
        a, b = onthefly[i], stored[i]
        assert a["utt"] == utt and a["lang"] == b["lang"] == "hrv" and a["feats"].dtype == torch.float32
        assert a["feats"].shape == b["feats"].shape
        diffs[utt] = float((a["feats"] - b["feats"]).abs().max())
    print("max |on-the-fly - stored| per utterance:", diffs)
    assert max(diffs.values()) < 1e-4
    # 16-bit WAVs (16 kHz, and 8 kHz resampled by the reader, also through a pipe), FLAC (16 and
    # 22.05 kHz) and Opus copied: exactly equal
    assert all(d == 0.0 for d in diffs.values()), diffs
    assert read_kaldi_map(audio_dir / "utt2num_frames") == read_kaldi_map(feats_dir / "utt2num_frames")
    assert (audio_dir / "cmvn.ark").read_bytes() == (feats_dir / "cmvn.ark").read_bytes()
    assert CMVNStats.load(str(audio_dir / "cmvn.ark")).count == sum(onthefly.num_frames)


def test_audio_dump_layout(dumps):
    data, _, audio_dir, sources = dumps
    assert not (audio_dir / "feats.scp").exists()
    assert json.loads((audio_dir / "fbank.json").read_text()) == dataclasses.asdict(FbankConfig())
    tars = sorted(str(audio_dir / "data" / name) for name in os.listdir(audio_dir / "data"))
    assert all(t.endswith(".tar") for t in tars) and len(tars) == -(-len(read_kaldi_map(data / "wav.scp")) // 3)
    assert read_shard_index(str(audio_dir)) == tars
    ds = AudioShardDataset(audio_dir)
    shard_of = shard_of_items(ds)
    assert sorted(set(shard_of)) == list(range(len(tars)))
    for tar_index, tar in enumerate(tars):   # standard tars, members named by their index
        names = tarfile.open(tar).getnames()
        assert names == [f"{k:06d}.{n.split('.')[1]}" for k, n in enumerate(names)]
        assert len(names) == shard_of.count(tar_index)
    scp = read_kaldi_map(audio_dir / "audio.scp")
    assert read_member(scp["spk0_flac"]) == sources["spk0_flac"].read_bytes()   # copied byte for byte
    if OPUS:
        assert read_member(scp["spk1_opus"]) == sources["spk1_opus"].read_bytes()
    member = sf.info(io.BytesIO(read_member(scp["spk0_wav8k"])))   # 16-bit FLAC at its own 8 kHz
    assert (member.format, member.subtype, member.samplerate) == ("FLAC", "PCM_16", 8000)


def test_16_bit_flac_of_a_float_source_changes_features_little(tmp_path):
    """Float (or resampled above-target, or lossy) audio is stored as 16-bit FLAC: measure the feature
    change, against the change that a one-ulp perturbation of the float32 samples makes."""
    cfg, diffs, ulp = FbankConfig(), {}, {}
    for level in (0.9, 0.1, 0.01, 0.001):   # peak 0 .. -60 dBFS
        wave = _signal(1.0, 16000, level=level, seed=5)
        path = tmp_path / f"{level}.wav"
        sf.write(path, wave, 16000, subtype="FLOAT")
        data, suffix = member_bytes(str(path), wave, 16000, 16000, "flac")
        assert suffix == "flac" and sf.info(io.BytesIO(data)).subtype == "PCM_16"
        decoded = decode_member(data, 16000)
        assert np.abs(decoded - wave).max() <= 2.0 ** -16   # half a 16-bit step
        stored = compute_fbank(wave, cfg)
        diff = np.abs(compute_fbank(decoded, cfg) - stored)
        diffs[level] = (float(diff.max()), float(diff.mean()))
        nudged = np.nextafter(wave, np.float32(np.inf)).astype(np.float32)
        ulp[level] = float(np.abs(compute_fbank(nudged, cfg) - stored).max())
    print("16-bit FLAC of a float source, (max, mean) feature difference by peak level:", diffs)
    print("one-ulp change of the float32 samples, max feature difference:", ulp)
    assert ulp[0.9] > 1e-4   # why 1e-4 cannot hold for any change of the samples
    # measured (torch 2.11, this signal): max / mean 1.8e-3 / 4e-5 at a 0 dBFS peak, 0.044 / 4e-4 at
    # -20 dBFS, 0.16 / 4e-3 at -40, 7.8 / 0.04 at -60 (33 quantisation steps of signal)
    assert all(mx < 0.1 and mean < 1e-3 for level, (mx, mean) in diffs.items() if level >= 0.1)
    assert all(mean < 0.1 for _, mean in diffs.values())


def test_pcm16_source_is_stored_losslessly_as_16_bit_flac(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _signal(0.3, 16000), 16000, subtype="PCM_16")
    wave, _ = sf.read(path, dtype="float32")
    data, _ = member_bytes(str(path), wave, 16000, 16000)
    assert sf.info(io.BytesIO(data)).subtype == "PCM_16"
    np.testing.assert_array_equal(decode_member(data, 16000), wave)


def test_read_member_errors_name_the_entry(tmp_path):
    tar = tmp_path / "a.tar"
    with open(tar, "wb") as f:
        write_member(f, 0, b"x" * 600, "flac")
        finish_tar(f)
    assert read_member(f"{tar}:0") == b"x" * 600
    size = tar.stat().st_size
    with pytest.raises(ValueError, match=f"audio entry '{tar}:{size}': offset {size} is past the end"):
        read_member(f"{tar}:{size}")
    with pytest.raises(ValueError, match=f"audio entry '{tar}:512': no tar header at byte 512"):
        read_member(f"{tar}:512")   # the member's data, not a header
    with open(tar, "r+b") as f:
        f.truncate(1000)
    with pytest.raises(ValueError, match=f"audio entry '{tar}:0': the tar member '000000.flac' is truncated"):
        read_member(f"{tar}:0")
    with pytest.raises(ValueError, match="not '<ark path>:<byte offset>'"):
        read_member(f"cat {tar} |")


def test_dataset_errors_name_dump_dir_listing_and_utterance(tmp_path):
    data, _ = make_data_dir(tmp_path, n=3)
    out = tmp_path / "dump"
    extract_features(str(data), str(out), FbankConfig(), shard_utts=2, audio_shards=True)
    ds = AudioShardDataset(out)
    utt, tar = ds.utt_ids[0], ds.entries[0].rsplit(":", 1)[0]
    frames = read_kaldi_map(out / "utt2num_frames")
    write_kaldi_map(out / "utt2num_frames", {**frames, utt: str(int(frames[utt]) + 1)})
    with pytest.raises(FeatsReadError, match=f"{out}/audio.scp: utterance '{utt}': .* gives {frames[utt]} frames"):
        AudioShardDataset(out)[0]
    write_kaldi_map(out / "utt2num_frames", frames)
    os.remove(tar)
    close_open_files()   # the dataset kept the tar open: a deleted tar is read as it was until then
    with pytest.raises(FeatsReadError, match=f"{out}/audio.scp: utterance '{utt}': cannot read audio"):
        ds[0]
    with pytest.raises(DataDirError, match=f"{out}/audio.scp:1: utterance '{utt}': ark '{tar}' not found"):
        AudioShardDataset(out)
    extract_features(str(data), str(tmp_path / "feats"), FbankConfig())
    with pytest.raises(DataDirError, match="holds stored features"):
        AudioShardDataset(tmp_path / "feats")


def test_audio_shards_need_shards(tmp_path, capsys):
    data, _ = make_data_dir(tmp_path, n=2)
    conf = tmp_path / "fbank.yaml"
    conf.write_text("num_mel_bins: 80\n")
    with pytest.raises(SystemExit) as e:
        main([str(conf), "--data", str(data), "--out", str(tmp_path / "dump"), "--audio-shards"])
    assert e.value.code == 2 and "--audio-shards needs --shard-utts N" in capsys.readouterr().err
    with pytest.raises(ValueError, match="shard_utts > 0"):
        extract_features(str(data), str(tmp_path / "dump"), FbankConfig(), audio_shards=True)
    assert not (tmp_path / "dump").exists()
    assert main([str(conf), "--data", str(data), "--out", str(tmp_path / "dump"), "--audio-shards",
                 "--shard-utts", "1"]) == 0
    assert sorted(os.listdir(tmp_path / "dump" / "data")) == ["audio.000000.tar", "audio.000001.tar"]


@pytest.mark.skipif(not OPUS, reason="this libsndfile cannot write Ogg Opus")
def test_opus_codec_writes_opus_members(tmp_path):
    data, _ = make_data_dir(tmp_path, n=3)
    extract_features(str(data), str(tmp_path / "feats"), FbankConfig())
    out = tmp_path / "dump"
    extract_features(str(data), str(out), FbankConfig(), shard_utts=2, audio_shards=True, audio_codec="opus")
    for tar in read_shard_index(str(out)):
        assert all(name.endswith(".opus") for name in tarfile.open(tar).getnames())
    onthefly, stored = AudioShardDataset(out), FeatsDataset(tmp_path / "feats")
    assert onthefly.num_frames == stored.num_frames   # Opus keeps the sample count
    print("Opus (lossy) shards of white-noise sources, (max, mean) feature difference:", _diffs(onthefly, stored))


def test_return_wave_items_and_collate_waves(dumps):
    _, _, audio_dir, _ = dumps
    ds = AudioShardDataset(audio_dir, streams=["lang"], return_wave=True)
    items = [ds[0], ds[1]]
    assert "feats" not in items[0] and items[0]["wave"].dtype == torch.float32 and items[0]["wave"].ndim == 1
    batch = collate_waves(items)
    n = [len(item["wave"]) for item in items]
    assert batch["utt"] == ds.utt_ids[:2] and batch["lang"] == ["hrv", "hrv"]
    assert tuple(batch["wave"].shape) == (2, max(n)) and batch["wave_lengths"].tolist() == n
    for b, item in enumerate(items):
        assert torch.equal(batch["wave"][b, : n[b]], item["wave"]) and not batch["wave"][b, n[b]:].any()
    feats = compute_fbank(items[0]["wave"].numpy(), FbankConfig())
    assert torch.equal(torch.from_numpy(feats), AudioShardDataset(audio_dir)[0]["feats"])
    with pytest.raises(ValueError, match="clashes"):
        AudioShardDataset(audio_dir, streams=["wave"], return_wave=True)


def test_a_dump_dir_never_holds_both_listings(tmp_path):
    data, _ = make_data_dir(tmp_path, n=2)
    out = tmp_path / "dump"
    extract_features(str(data), str(out), FbankConfig(), shard_utts=1, audio_shards=True)
    extract_features(str(data), str(out), FbankConfig())   # an audio dump is a dump: replaced whole
    names = set(os.listdir(out))
    assert "feats.scp" in names and not names & {"audio.scp", "fbank.json", "shards.tsv"}
    extract_features(str(data), str(out), FbankConfig(), shard_utts=1, audio_shards=True)
    assert "audio.scp" in os.listdir(out) and "feats.scp" not in os.listdir(out)
    assert all(name.startswith("audio.") for name in os.listdir(out / "data"))


def test_members_keep_lossless_audio_at_its_own_rate(dumps):
    _, _, audio_dir, sources = dumps
    scp = read_kaldi_map(audio_dir / "audio.scp")
    assert read_member(scp["spk0_flac22k"]) == sources["spk0_flac22k"].read_bytes()   # FLAC: copied at 22.05 kHz
    member = sf.info(io.BytesIO(read_member(scp["spk1_pipe8k"])))   # a pipe of 8 kHz 16-bit audio
    assert (member.format, member.subtype, member.samplerate) == ("FLAC", "PCM_16", 8000)


def test_cmvn_and_frames_are_those_of_the_members_audio(tmp_path):
    """Where a member is lossy (Opus), utt2num_frames and cmvn.ark are computed from what training
    decodes, not from the source."""
    if not OPUS:
        pytest.skip("this libsndfile cannot write Opus")
    data, _ = make_data_dir(tmp_path, n=4)
    out = tmp_path / "opus"
    extract_features(str(data), str(out), FbankConfig(), shard_utts=2, audio_shards=True, audio_codec="opus")
    ds = AudioShardDataset(out)
    stats = CMVNStats(80)
    for i in range(len(ds)):
        stats.add(ds[i]["feats"].numpy())
    saved = CMVNStats.load(str(out / "cmvn.ark"))
    assert saved.count == stats.count
    np.testing.assert_allclose(saved.sum, stats.sum, rtol=1e-6)


def test_damaged_or_crafted_members_are_refused_before_reading_much(tmp_path):
    tar = tmp_path / "a.tar"
    header = bytearray(tarfile.TarInfo("000000.flac").tobuf(format=tarfile.USTAR_FORMAT))
    header[124:136] = b"\xff" * 12   # a base-256 negative size
    header[148:156] = b" " * 8
    header[148:155] = f"{sum(header):06o}\0".encode()
    tar.write_bytes(bytes(header) + b"x" * 4096)
    with pytest.raises(ValueError, match="is truncated or damaged"):
        read_member(f"{tar}:0")
    tiny = io.BytesIO()
    sf.write(tiny, np.zeros(100, np.float32), 1000, format="FLAC")   # 0.1 s that a reader would make 1.6 s
    with pytest.raises(AudioError, match="more than the 800 its frame count allows"):
        decode_member(tiny.getvalue(), 16000, max_samples=800)
    assert decode_member(tiny.getvalue(), 16000, max_samples=1600).shape == (1600,)


def test_cmvn_from_a_sample_of_utterances(tmp_path):
    """--cmvn-utts N: the statistics of N utterances drawn with the shard seed; every utterance's
    frame count exact, the shards unchanged."""
    data, _ = make_data_dir(tmp_path, n=8)
    full, part = tmp_path / "full", tmp_path / "part"
    extract_features(str(data), str(full), FbankConfig(), shard_utts=3, audio_shards=True)
    extract_features(str(data), str(part), FbankConfig(), shard_utts=3, audio_shards=True, cmvn_utts=3)
    assert read_kaldi_map(part / "utt2num_frames") == read_kaldi_map(full / "utt2num_frames")
    assert (part / "audio.scp").read_text() == (full / "audio.scp").read_text().replace("/full/", "/part/")
    sampled = set(random.Random(0).sample(sorted(read_kaldi_map(data / "wav.scp")), 3))   # shard_seed 0
    ds, ref = AudioShardDataset(part), CMVNStats(80)
    for i, utt in enumerate(ds.utt_ids):
        if utt in sampled:
            ref.add(ds[i]["feats"].numpy())
    stats = CMVNStats.load(str(part / "cmvn.ark"))
    assert stats.count == ref.count < CMVNStats.load(str(full / "cmvn.ark")).count
    np.testing.assert_allclose(stats.sum, ref.sum, rtol=1e-6)
