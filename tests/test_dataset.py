"""masr.data.dataset: a dump dir's features and metadata as a Dataset, and batch collation."""

import os

import kaldiio
import numpy as np
import pytest
import torch

from masr.data.datadir import DataDirError, read_kaldi_map, write_kaldi_map
from masr.data.dataset import FeatsDataset, FeatsReadError, collate_feats
from masr.data.sampler import DynamicBucketBatchSampler

LENGTHS = {"spk1_c": 7, "spk0_a": 3, "spk1_d": 12, "spk0_b": 1, "spk2_e": 5}


def make_dump(root, lengths=LENGTHS, dim=4):
    """A dump dir as the features stage writes it: arks, feats.scp, utt2num_frames, utt2* files."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    feats = {utt: rng.normal(size=(n, dim)).astype(np.float32) for utt, n in lengths.items()}
    ark, scp = root / "data" / "feats.1.ark", root / "feats.scp"
    ark.parent.mkdir(exist_ok=True)
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
        for utt in sorted(feats):
            writer(utt, feats[utt])
    write_kaldi_map(root / "utt2num_frames", lengths)
    write_kaldi_map(root / "utt2spk", {utt: utt.split("_")[0] for utt in lengths})
    write_kaldi_map(root / "utt2lang", {utt: "hrv" if utt < "spk1" else "srp" for utt in lengths})
    write_kaldi_map(root / "text", {utt: f"rijec {utt}" for utt in lengths})
    return feats


def test_items_are_the_written_features_with_sorted_ids_and_aligned_lengths(tmp_path):
    feats = make_dump(tmp_path / "dump")
    ds = FeatsDataset(str(tmp_path / "dump"))
    assert ds.utt_ids == sorted(LENGTHS) and len(ds) == 5 and ds.num_dropped == 0
    assert ds.num_frames == [LENGTHS[u] for u in ds.utt_ids]
    for i, utt in enumerate(ds.utt_ids):
        item = ds[i]
        assert set(item) == {"utt", "feats"} and item["utt"] == utt
        assert item["feats"].dtype == torch.float32
        np.testing.assert_array_equal(item["feats"].numpy(), feats[utt])


def test_streams_are_returned_as_strings(tmp_path):
    make_dump(tmp_path)
    ds = FeatsDataset(tmp_path, streams=["lang", "spk", "text"])
    item = ds[ds.utt_ids.index("spk1_d")]
    assert (item["lang"], item["spk"], item["text"]) == ("srp", "spk1", "rijec spk1_d")
    assert ds[0]["lang"] == "hrv"


def test_collate_pads_with_zeros_and_reports_lengths(tmp_path):
    feats = make_dump(tmp_path)
    ds = FeatsDataset(tmp_path, streams=["lang"])
    batch = collate_feats([ds[i] for i in (0, 3, 1)])
    utts = [ds.utt_ids[i] for i in (0, 3, 1)]
    assert batch["utt"] == utts and batch["lang"] == ["hrv", "srp", "hrv"]
    assert batch["feats"].shape == (3, 12, 4) and batch["feats"].dtype == torch.float32
    assert batch["lengths"].dtype == torch.long
    assert batch["lengths"].tolist() == [LENGTHS[u] for u in utts]
    for b, utt in enumerate(utts):
        n = LENGTHS[utt]
        np.testing.assert_array_equal(batch["feats"][b, :n].numpy(), feats[utt])
        assert torch.all(batch["feats"][b, n:] == 0)
    with pytest.raises(ValueError):
        collate_feats([])


def test_max_and_min_frames_drop_utterances(tmp_path):
    make_dump(tmp_path)
    ds = FeatsDataset(tmp_path, streams=["spk"], max_frames=7, min_frames=2)
    assert ds.utt_ids == ["spk0_a", "spk1_c", "spk2_e"] and ds.num_frames == [3, 7, 5]
    assert ds.num_dropped == 2 and len(ds) == 3
    assert [ds[i]["feats"].shape[0] for i in range(3)] == [3, 7, 5]
    assert ds[2]["spk"] == "spk2"
    assert len(FeatsDataset(tmp_path, max_frames=12)) == 5


def test_missing_files_are_named(tmp_path):
    make_dump(tmp_path / "dump")
    os.remove(tmp_path / "dump" / "utt2num_frames")
    with pytest.raises(DataDirError, match=r"dump.*utt2num_frames"):
        FeatsDataset(tmp_path / "dump")
    make_dump(tmp_path / "dump2")
    with pytest.raises(DataDirError, match=r"dump2.*utt2geo"):
        FeatsDataset(tmp_path / "dump2", streams=["lang", "geo"])
    with pytest.raises(DataDirError, match="not found"):
        FeatsDataset(tmp_path / "nowhere")
    os.remove(tmp_path / "dump2" / "feats.scp")
    with pytest.raises(DataDirError, match=r"dump2.*feats\.scp"):
        FeatsDataset(tmp_path / "dump2")


def test_utterance_missing_from_a_file_is_named(tmp_path):
    make_dump(tmp_path)
    write_kaldi_map(tmp_path / "utt2lang", {"spk0_a": "hrv"})
    with pytest.raises(DataDirError, match=r"utt2lang.*spk0_b"):
        FeatsDataset(tmp_path, streams=["lang"])
    write_kaldi_map(tmp_path / "utt2num_frames", {u: n for u, n in LENGTHS.items() if u != "spk1_c"})
    with pytest.raises(DataDirError, match=r"utt2num_frames.*spk1_c"):
        FeatsDataset(tmp_path)
    with pytest.raises(ValueError, match="clashes"):
        FeatsDataset(tmp_path, streams=["feats"])


def test_unreadable_ark_names_the_utterance(tmp_path):
    make_dump(tmp_path)
    ds = FeatsDataset(tmp_path)
    ark = tmp_path / "data" / "feats.1.ark"
    data = ark.read_bytes()
    ark.write_bytes(data[: len(data) // 2])  # truncated: the last utterances are gone
    last = len(ds) - 1
    with pytest.raises(FeatsReadError, match=f"utterance '{ds.utt_ids[last]}'"):
        ds[last]
    ark.write_bytes(b"\x00garbage" * (len(data) // 8 + 1))
    with pytest.raises(FeatsReadError, match=f"utterance '{ds.utt_ids[0]}'"):
        ds[0]
    os.remove(ark)
    with pytest.raises(FeatsReadError, match=f"utterance '{ds.utt_ids[1]}'"):
        ds[1]


def test_frame_count_disagreeing_with_utt2num_frames_is_an_error(tmp_path):
    make_dump(tmp_path)
    write_kaldi_map(tmp_path / "utt2num_frames", {**LENGTHS, "spk1_d": 11})
    ds = FeatsDataset(tmp_path)
    with pytest.raises(FeatsReadError, match=r"spk1_d.*11 frames"):
        ds[ds.utt_ids.index("spk1_d")]


def test_non_finite_features_are_an_error_naming_the_utterance_and_frame(tmp_path):
    feats = make_dump(tmp_path)
    feats["spk1_d"][[4, 9], 2] = [np.nan, np.inf]   # a dump the features stage did not write
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path}/data/feats.1.ark,{tmp_path}/feats.scp") as writer:
        for utt in sorted(feats):
            writer(utt, feats[utt])
    ds = FeatsDataset(tmp_path)
    with pytest.raises(FeatsReadError, match=r"utterance 'spk1_d'.* hold NaN/inf in 2 of 12 frames \(first at frame 4\)"):
        ds[ds.utt_ids.index("spk1_d")]
    assert torch.isfinite(ds[ds.utt_ids.index("spk1_c")]["feats"]).all()


def test_dataloader_with_dynamic_batches_sees_every_utterance_once(tmp_path):
    feats = make_dump(tmp_path)
    ds = FeatsDataset(tmp_path, streams=["lang"])
    sampler = DynamicBucketBatchSampler(ds.num_frames, max_batch_frames=12, num_buckets=2, seed=3)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate_feats)
    seen = []
    for batch in loader:
        assert batch["feats"].shape[0] * batch["feats"].shape[1] <= 12
        for b, utt in enumerate(batch["utt"]):
            np.testing.assert_array_equal(batch["feats"][b, : batch["lengths"][b]].numpy(), feats[utt])
        seen += batch["utt"]
    assert sorted(seen) == sorted(LENGTHS)


def _set_entry(root, utt, entry):
    """Replace the feats.scp entry of ``utt``; returns its line number."""
    scp = read_kaldi_map(root / "feats.scp")
    scp[utt] = entry
    write_kaldi_map(root / "feats.scp", scp)
    return sorted(scp).index(utt) + 1


def test_pipe_entry_in_feats_scp_is_refused_and_never_run(tmp_path):
    make_dump(tmp_path / "dump")
    flag = tmp_path / "PWNED_x"
    line = _set_entry(tmp_path / "dump", "spk1_c", f"echo hi > {flag} |")
    with pytest.raises(DataDirError) as err:
        FeatsDataset(tmp_path / "dump")
    assert f"feats.scp:{line}: utterance 'spk1_c': entry 'echo hi > {flag} |' is not" in str(err.value)
    assert not flag.exists()
    # an entry changed after construction is refused when read, and not run either
    make_dump(tmp_path / "ok")
    ds = FeatsDataset(tmp_path / "ok")
    ds.entries[0] = f"echo hi > {flag} |"
    with pytest.raises(FeatsReadError, match=f"utterance '{ds.utt_ids[0]}'"):
        ds[0]
    assert not flag.exists()


@pytest.mark.parametrize("suffix", ["", "[0:2]", ":x"])
def test_feats_scp_entry_that_is_not_path_and_offset_is_refused_at_construction(tmp_path, suffix):
    make_dump(tmp_path)
    entry = read_kaldi_map(tmp_path / "feats.scp")["spk2_e"] + suffix
    if not suffix:
        entry = entry.rsplit(":", 1)[0]  # no offset: kaldiio would read the ark's first matrix
    line = _set_entry(tmp_path, "spk2_e", entry)
    with pytest.raises(DataDirError, match=rf"feats\.scp:{line}: utterance 'spk2_e': entry '.*' is not"):
        FeatsDataset(tmp_path)


def test_empty_dump_dir_is_an_error_not_an_empty_dataset(tmp_path):
    make_dump(tmp_path)
    (tmp_path / "feats.scp").write_text("")
    with pytest.raises(DataDirError, match=rf"{tmp_path}: dump dir holds no utterances \(.*feats\.scp is empty"):
        FeatsDataset(tmp_path)


@pytest.mark.parametrize("limits, message", [
    ({"max_frames": 0}, "all 5 utterances are longer than max_frames 0; raise max_frames"),
    ({"min_frames": 13}, "all 5 utterances are shorter than min_frames 13; lower min_frames"),
    ({"min_frames": 4, "max_frames": 4},
     r"all 5 utterances are outside \[min_frames 4, max_frames 4\] \(2 shorter, 3 longer\); widen the range"),
])
def test_frame_limits_dropping_every_utterance_are_an_error(tmp_path, limits, message):
    make_dump(tmp_path)
    with pytest.raises(DataDirError, match=rf"^{tmp_path}: {message}$"):
        FeatsDataset(tmp_path, **limits)


def test_frame_limits_error_counts_the_selected_utterances(tmp_path):
    make_dump(tmp_path)
    with pytest.raises(DataDirError, match="all 2 utterances are longer than max_frames 2"):
        FeatsDataset(tmp_path, max_frames=2, utts={"spk1_c", "spk2_e"})
