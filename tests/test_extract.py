"""masr.features.extract: the features stage over a data dir, in parallel jobs."""

import os
import shutil
import signal
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import soundfile as sf

import masr.features.extract as extract
from masr.audio import read_audio
from masr.data.datadir import DataDirError, read_kaldi_map
from masr.features.cmvn import CMVNStats
from masr.features.extract import FeatureError, extract_features, main, recover_dump_dir, split_evenly
from masr.features.fbank import FbankConfig, compute_fbank, expected_num_frames
from tests.helpers.datadirs import make_data_dir
from tests.helpers.deadline import deadline


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


# -- helpers for the hardening tests ------------------------------------------------------------

def snapshot(folder):
    """Every file under ``folder``: relative path -> bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def siblings(out):
    """What lies beside the dump dir: only itself once nothing is left over."""
    return sorted(os.listdir(out.parent))


def assert_complete_dump(out):
    """``out`` is a dump dir as a finished extraction leaves it; returns its feature dimension."""
    scp = read_kaldi_map(out / "feats.scp")
    feats = {}
    for utt, entry in scp.items():
        assert entry.startswith(str(out / "data") + os.sep), entry
        feats[utt] = kaldiio.load_mat(entry)   # every entry readable
    frames = read_kaldi_map(out / "utt2num_frames")
    assert {u: int(n) for u, n in frames.items()} == {u: m.shape[0] for u, m in feats.items()}
    assert sorted(read_kaldi_map(out / "wav.scp")) == sorted(scp)
    dims = {m.shape[1] for m in feats.values()}
    assert len(dims) == 1
    recomputed = CMVNStats(dims.pop())
    for mat in feats.values():
        recomputed.add(mat)
    np.testing.assert_allclose(CMVNStats.load(str(out / "cmvn.ark")).to_kaldi(), recomputed.to_kaldi(), rtol=1e-9)
    assert {str(p) for p in (out / "data").iterdir()} == {e.rsplit(":", 1)[0] for e in scp.values()}
    assert list(out.rglob("*.tmp")) == []
    return len(recomputed.sum)


class Killed(BaseException):
    """Raised by a test's hook where the extraction would be killed."""


# -- non-finite values --------------------------------------------------------------------------

def test_nan_samples_from_read_audio_stop_the_extraction_and_keep_the_previous_dump(tmp_path, monkeypatch):
    # checked in the job itself, whatever read_audio does
    data, _ = make_data_dir(tmp_path)
    out = tmp_path / "dump"
    extract_features(str(data), str(out), FbankConfig())
    previous = snapshot(out)

    def poisoned(entry, sample_rate):
        wave, sr = read_audio(entry, sample_rate)
        if "spk1_003" in entry:
            wave[100:] = np.nan
        return wave, sr

    monkeypatch.setattr(extract, "read_audio", poisoned)
    with pytest.raises(FeatureError, match=r"wav\.scp: utterance 'spk1_003': audio '.*spk1_003\.wav' holds NaN/inf "
                                           r"\(first at sample 100\)"):
        extract_features(str(data), str(out), FbankConfig(), nj=1)
    assert snapshot(out) == previous   # cmvn.ark not poisoned, nothing half-written
    assert siblings(out) == ["data", "dump", "wav"]


def test_a_non_finite_filterbank_stops_the_extraction(tmp_path, monkeypatch):
    data, _ = make_data_dir(tmp_path)

    def overflowing(wave, config):
        feats = compute_fbank(wave, config)
        feats[2, 7] = np.inf
        return feats

    monkeypatch.setattr(extract, "compute_fbank", overflowing)
    with pytest.raises(FeatureError, match=r"wav\.scp: utterance 'spk0_000': the filterbank holds NaN/inf "
                                           r"\(first at frame 2\)"):
        extract_features(str(data), str(tmp_path / "dump"), FbankConfig(), nj=1)
    assert not (tmp_path / "dump").exists() and siblings(tmp_path / "dump") == ["data", "wav"]


def test_a_float_wav_holding_nan_is_refused_in_a_worker(tmp_path):
    data, _ = make_data_dir(tmp_path)
    wave = np.random.default_rng(1).uniform(-0.3, 0.3, 8000).astype(np.float32)
    wave[4000] = np.nan
    sf.write(tmp_path / "wav" / "spk1_003.wav", wave, 16000, subtype="FLOAT")
    with pytest.raises(FeatureError, match=r"wav\.scp: utterance 'spk1_003': .*NaN/inf"):
        extract_features(str(data), str(tmp_path / "dump"), FbankConfig(), nj=2)
    assert siblings(tmp_path / "dump") == ["data", "wav"]   # no dump, no staging folder


# -- a dead worker ------------------------------------------------------------------------------

def test_a_killed_worker_is_an_error_naming_its_job_not_a_hang(tmp_path):
    data, _ = make_data_dir(tmp_path)
    out = tmp_path / "dump"
    extract_features(str(data), str(out), FbankConfig())
    previous = snapshot(out)
    # job 2 of 2 holds spk1_001, spk1_003, spk1_005; reading spk1_005 kills its worker as the OOM
    # killer would (the shell run for a wav.scp pipe is a child of the worker: $PPID)
    wav_scp = (data / "wav.scp").read_text().splitlines()
    wav_scp[-1] = "spk1_005 kill -9 $PPID |"
    (data / "wav.scp").write_text("\n".join(wav_scp) + "\n")
    with deadline(120), pytest.raises(FeatureError) as failure:
        extract_features(str(data), str(out), FbankConfig(), nj=2)
    message = str(failure.value)
    assert "a worker process died" in message and "OOM killer" in message
    assert "job 2: feats.2.ark (3 utterances 'spk1_001' .. 'spk1_005')" in message
    assert snapshot(out) == previous
    assert siblings(out) == ["data", "dump", "wav"]


# -- the all-or-nothing swap --------------------------------------------------------------------

SWAP_STEPS = [("exchange", "staged"), ("exchange", "exchanged"),
              ("fallback", "staged"), ("fallback", "moved-aside"), ("fallback", "renamed"),
              ("fresh", "staged"), ("fresh", "renamed")]


@pytest.mark.parametrize("how,step", SWAP_STEPS)
def test_a_kill_at_any_step_leaves_the_previous_dump_or_the_new_one(tmp_path, monkeypatch, how, step):
    data, _ = make_data_dir(tmp_path, n=4)
    root = tmp_path / "dumps"
    out = root / "train"
    root.mkdir()
    previous = {}
    if how != "fresh":
        extract_features(str(data), str(out), FbankConfig(num_mel_bins=40))   # the previous dump: 40 dims
        previous = snapshot(out)
    if how == "fallback":   # no RENAME_EXCHANGE (another OS or file system)
        monkeypatch.setattr(extract, "exchange_paths", lambda a, b: False)
    frozen = tmp_path / "frozen"

    def kill(name):
        if name == step:
            shutil.copytree(root, frozen, symlinks=True)   # the disk as a SIGKILL here leaves it
            raise Killed(step)

    monkeypatch.setattr(extract, "_step", kill)
    with pytest.raises(Killed):
        extract_features(str(data), str(out), FbankConfig(num_mel_bins=80), nj=2)
    installed = step in ("exchanged", "renamed")   # the new dump (80 dims) is in place
    # an error at that point: the extraction cleans up after itself
    assert siblings(out) == (["train"] if installed or previous else [])
    if installed:
        assert assert_complete_dump(out) == 80
    elif previous:
        assert snapshot(out) == previous
    # a kill at that point: whatever a reader finds is complete (between the two renames of the
    # fallback there is no dump at all); the next extraction's clean-up restores one
    shutil.rmtree(root)
    shutil.copytree(frozen, root, symlinks=True)
    if out.exists():
        assert assert_complete_dump(out) in (40, 80)
    recover_dump_dir(str(out))
    assert siblings(out) == (["train"] if installed or previous else [])
    if installed:
        assert assert_complete_dump(out) == 80
    elif previous:
        assert snapshot(out) == previous and assert_complete_dump(out) == 40


@pytest.mark.parametrize("listing", ["utt2num_frames", "feats.scp"])
def test_a_kill_while_writing_the_lists_leaves_the_previous_dump(tmp_path, monkeypatch, listing):
    # (the arks were once renamed into place before the lists and cmvn.ark were written)
    data, _ = make_data_dir(tmp_path, n=4)
    root = tmp_path / "dumps"
    out = root / "train"
    extract_features(str(data), str(out), FbankConfig(num_mel_bins=40))
    previous = snapshot(out)
    write = extract.write_kaldi_map

    def killed_while_writing(path, mapping):
        if os.path.basename(path) == listing:
            shutil.copytree(root, tmp_path / "frozen", symlinks=True)   # the disk as a SIGKILL leaves it
            raise Killed(listing)
        write(path, mapping)

    monkeypatch.setattr(extract, "write_kaldi_map", killed_while_writing)
    with pytest.raises(Killed):
        extract_features(str(data), str(out), FbankConfig(), nj=2)
    assert snapshot(out) == previous and siblings(out) == ["train"]
    assert snapshot(tmp_path / "frozen" / "train") == previous   # what a reader of the killed run's dump sees


KILLED_RUN = """
import os, signal, sys
import masr.features.extract as extract
from masr.features.fbank import FbankConfig
data, out, how, step = sys.argv[1:]
if how == "fallback":
    extract.exchange_paths = lambda a, b: False
extract._step = lambda name: name == step and os.kill(os.getpid(), signal.SIGKILL)
extract.extract_features(data, out, FbankConfig())
"""


@pytest.mark.parametrize("how,step,installed", [("fallback", "moved-aside", False), ("exchange", "exchanged", True)])
def test_a_process_killed_mid_swap_leaves_a_dump_the_next_run_recovers(tmp_path, how, step, installed):
    data, _ = make_data_dir(tmp_path, n=3)
    out = tmp_path / "dumps" / "train"
    extract_features(str(data), str(out), FbankConfig(num_mel_bins=40))
    previous = snapshot(out)
    run = subprocess.run([sys.executable, "-c", KILLED_RUN, str(data), str(out), how, step], timeout=300)
    assert run.returncode == -signal.SIGKILL
    assert len(siblings(out)) == 2   # the run's staging folder or moved-aside previous dump is left
    recover_dump_dir(str(out))
    assert siblings(out) == ["train"]
    assert assert_complete_dump(out) == (80 if installed else 40)
    assert installed or snapshot(out) == previous


def test_the_next_run_removes_what_killed_runs_left(tmp_path):
    data, _ = make_data_dir(tmp_path, n=4)
    out = tmp_path / "dumps" / "train"
    extract_features(str(data), str(out), FbankConfig(num_mel_bins=40))
    shutil.copytree(out, tmp_path / "dumps" / "train.old-4242")      # replaced, not yet deleted
    (tmp_path / "dumps" / "train.tmp-4343" / "data").mkdir(parents=True)   # an unfinished staging folder
    (tmp_path / "dumps" / "train.tmp-4343" / "data" / "feats.1.ark").write_bytes(b"half")
    (out / "data" / "feats.2.ark.tmp").write_bytes(b"half")           # earlier versions' temp files
    (out / ".cmvn.ark.x1y2.tmp").write_bytes(b"half")
    (tmp_path / "dumps" / "train.tmp-notes").write_text("not ours")   # other names are left alone
    extract_features(str(data), str(out), FbankConfig(), nj=2)
    assert siblings(out) == ["train", "train.tmp-notes"]
    assert assert_complete_dump(out) == 80


def test_re_extraction_replaces_the_whole_dump_and_keeps_the_cmvn_in_step(tmp_path):
    data, _ = make_data_dir(tmp_path, n=5)
    out = tmp_path / "dump"
    extract_features(str(data), str(out), FbankConfig(num_mel_bins=40), nj=2, shard_utts=2)
    extract_features(str(data), str(out), FbankConfig(), nj=2)
    assert assert_complete_dump(out) == 80
    assert sorted(os.listdir(out / "data")) == ["feats.1.ark", "feats.2.ark"]
    assert siblings(out) == ["data", "dump", "wav"]


def test_a_symlinked_output_replaces_the_folder_it_points_to(tmp_path):
    data, _ = make_data_dir(tmp_path, n=3)
    real = tmp_path / "big_disk" / "train"
    real.mkdir(parents=True)
    (tmp_path / "dump").symlink_to(real)
    for bins in (40, 80):
        extract_features(str(data), str(tmp_path / "dump"), FbankConfig(num_mel_bins=bins))
    assert (tmp_path / "dump").is_symlink() and assert_complete_dump(real) == 80
    assert siblings(real) == ["train"]


def test_the_output_may_not_replace_the_data_dir(tmp_path):
    data, _ = make_data_dir(tmp_path, n=3)
    before = snapshot(data)
    for out in (data, tmp_path):
        with pytest.raises(ValueError, match="would replace the data dir"):
            extract_features(str(data), str(out), FbankConfig())
    assert snapshot(data) == before


def test_the_output_may_not_replace_a_folder_that_is_not_a_dump(tmp_path):
    data, _ = make_data_dir(tmp_path, n=3)
    exp = tmp_path / "exp"
    (exp / "pretrain").mkdir(parents=True)
    (exp / "pretrain" / "important.pt").write_bytes(b"weeks of training")
    before = snapshot(exp)
    with pytest.raises(ValueError, match="holds files but no feats.scp, so it is not a dump dir"):
        extract_features(str(data), str(exp), FbankConfig())   # a slip of --out
    assert snapshot(exp) == before
    extract_features(str(data), str(tmp_path / "dump"), FbankConfig())   # an earlier dump is replaced
    extract_features(str(data), str(tmp_path / "dump"), FbankConfig())


# -- the data dir is validated first ------------------------------------------------------------

def fbank_conf(tmp_path):
    conf = tmp_path / "fbank.yaml"
    conf.write_text("num_mel_bins: 80\n")
    return str(conf)


def test_cli_refuses_an_unsorted_wav_scp(tmp_path, capsys):
    data, _ = make_data_dir(tmp_path, n=3)
    lines = (data / "wav.scp").read_text().splitlines()
    (data / "wav.scp").write_text("\n".join([lines[1], lines[0], lines[2]]) + "\n")
    assert main([fbank_conf(tmp_path), "--data", str(data), "--out", str(tmp_path / "dump")]) == 1
    err = capsys.readouterr().err
    assert f"{data / 'wav.scp'}:2: utterance 'spk0_000'" in err and "not sorted" in err
    assert not (tmp_path / "dump").exists()


def test_cli_refuses_a_duplicate_key(tmp_path, capsys):
    data, _ = make_data_dir(tmp_path, n=3)
    with open(data / "text", "a") as f:
        f.write("spk0_002 dobar dan\n")
    assert main([fbank_conf(tmp_path), "--data", str(data), "--out", str(tmp_path / "dump")]) == 1
    err = capsys.readouterr().err
    assert f"{data / 'text'}:4: utterance 'spk0_002': duplicate key" in err
    assert not (tmp_path / "dump").exists()


def test_library_callers_get_a_data_dir_error(tmp_path):
    data, _ = make_data_dir(tmp_path, n=3)
    (data / "spk2utt").unlink()
    with pytest.raises(DataDirError, match="spk2utt"):
        extract_features(str(data), str(tmp_path / "dump"), FbankConfig())
