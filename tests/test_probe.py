"""masr.downstream.probe: linear probes on frozen embeddings, their protocols and the cache."""

import json
import os

import numpy as np
import pytest
import torch

from masr.data.dataset import FeatsDataset
from masr.downstream import probe
from masr.downstream.pretrained import encoder_from_run
from masr.train.checkpoint import newest_checkpoint
from tests.helpers.dumps import make_dump_dir
from tests.helpers.runs import make_pretrain_run


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    run_dir = make_pretrain_run(str(root / "exp" / "tiny_bestrq"), make_dump_dir(str(root / "pretrain"), seed=0))
    return {"root": root, "run": run_dir, "train": make_dump_dir(str(root / "train"), num_utts=24, seed=1),
            "test": make_dump_dir(str(root / "test"), num_utts=12, seed=2)}


# ---- the classifier ---------------------------------------------------------------------------
def clusters(seed, n_per_class=20, dim=8, classes=3):
    rng = np.random.default_rng(seed)
    centres = np.eye(classes, dim) * 6.0 + 100.0  # far from the origin: standardisation matters
    x = np.concatenate([centres[c] + rng.normal(size=(n_per_class, dim)) for c in range(classes)])
    return x.astype(np.float32), np.repeat(np.arange(classes), n_per_class)


def test_linear_probe_separates_separable_data():
    x, y = clusters(0)
    predict = probe.train_linear_probe(x, y, 3)
    assert (predict(x) == y).all()
    x_new, y_new = clusters(1)
    assert (predict(x_new) == y_new).all()


def test_linear_probe_is_deterministic():
    x, y = clusters(2)
    grid = np.random.default_rng(3).normal(scale=4.0, size=(2000, 8)).astype(np.float32) + 100.0
    a, b = probe.train_linear_probe(x, y, 3), probe.train_linear_probe(x, y, 3)
    assert np.array_equal(a(grid), b(grid))
    assert len(set(a(grid).tolist())) == 3  # the grid crosses the decision boundaries


def test_fitted_weights_apply_to_raw_inputs():
    fit = getattr(probe, "fit_logistic_regression", None)
    if fit is None:
        pytest.skip("no fit_logistic_regression in this version")
    x, y = clusters(4)
    z = (x - x.mean(0)) / x.std(0)
    w_raw, b_raw = fit(x, y, 3)
    w_std, b_std = fit(z, y, 3)  # already standardised: the same problem
    raw = torch.as_tensor(x, dtype=torch.float64) @ w_raw + b_raw
    std = torch.as_tensor(z, dtype=torch.float64) @ w_std + b_std
    assert torch.allclose(raw, std, atol=1e-3)


# ---- protocols --------------------------------------------------------------------------------
UTTS = [f"{spk}_{i}" for spk, n in (("a", 4), ("b", 3), ("c", 2), ("d", 5), ("e", 1)) for i in range(n)]
SPK = {u: u.split("_")[0] for u in UTTS}


def reader(files):
    return lambda dataset, name: files[dataset, name]


def test_split_protocol():
    utts = {"tr": ["x1", "x2"], "te": ["y1"]}
    assert probe.protocol_splits({"protocol": "split", "train": "tr", "test": "te"}, utts, None) == [
        (("tr", ["x1", "x2"]), ("te", ["y1"]))]
    # split is the default
    assert probe.protocol_splits({"train": "te", "test": "tr"}, utts, None) == [(("te", ["y1"]), ("tr", ["x1", "x2"]))]


def test_subset_protocol():
    subset = {u: "test" if u.endswith("_0") else "train" for u in UTTS}
    task = {"protocol": "subset", "data": "d", "subset": "utt2subset"}
    [((d1, train), (d2, test))] = probe.protocol_splits(task, {"d": UTTS}, reader({("d", "utt2subset"): subset}))
    assert d1 == d2 == "d"
    assert test == ["a_0", "b_0", "c_0", "d_0", "e_0"] and train == [u for u in UTTS if u not in test]
    bad = {**subset, "b_1": "dev", "c_1": "valid"}
    with pytest.raises(ValueError, match=r"d/utt2subset: values must be 'train' or 'test', got \['dev', 'valid'\]"):
        probe.protocol_splits(task, {"d": UTTS}, reader({("d", "utt2subset"): bad}))


@pytest.mark.parametrize("folds", [2, 3, 5, None])
def test_group_folds_hold_out_whole_groups_and_test_every_utterance_once(folds):
    task = {"name": "t", "protocol": "group_folds", "data": "d", "groups": "utt2spk"}
    if folds:
        task["folds"] = folds
    splits = probe.protocol_splits(task, {"d": UTTS}, reader({("d", "utt2spk"): SPK}))
    assert len(splits) == (folds or 5)  # default: one fold per group
    tested = []
    for (d1, train), (d2, test) in splits:
        assert d1 == d2 == "d" and test
        assert not {SPK[u] for u in train} & {SPK[u] for u in test}  # no test group in training
        assert sorted(train + test) == sorted(UTTS)
        tested += test
    assert sorted(tested) == sorted(UTTS) and len(tested) == len(set(tested))


@pytest.mark.parametrize("folds", [0, 1, 6])
def test_group_folds_out_of_range_is_an_error(folds):
    task = {"name": "emo", "protocol": "group_folds", "data": "d", "groups": "utt2spk", "folds": folds}
    with pytest.raises(ValueError, match=rf"task emo: {folds} folds need 2\.\.5 groups"):
        probe.protocol_splits(task, {"d": UTTS}, reader({("d", "utt2spk"): SPK}))


@pytest.mark.parametrize("every", [2, 3])
def test_within_group_tests_every_nth_utterance_of_each_group(every):
    task = {"protocol": "within_group", "data": "d", "groups": "utt2spk", "every": every}
    [((_, train), (_, test))] = probe.protocol_splits(task, {"d": UTTS}, reader({("d", "utt2spk"): SPK}))
    assert sorted(train + test) == sorted(UTTS) and not set(train) & set(test)
    sizes = {s: sum(SPK[u] == s for u in UTTS) for s in set(SPK.values())}
    for spk, n in sizes.items():
        in_test = [u for u in test if SPK[u] == spk]
        assert len(in_test) == n // every
        if n >= every:  # seen in both: the test speakers are known speakers
            assert in_test and any(SPK[u] == spk for u in train)
        assert in_test == [f"{spk}_{i}" for i in range(every - 1, n, every)]


def test_unknown_protocol_is_an_error():
    with pytest.raises(ValueError, match="task t: unknown protocol 'loso'"):
        probe.protocol_splits({"name": "t", "protocol": "loso", "data": "d", "groups": "utt2spk"}, {"d": UTTS},
                              reader({("d", "utt2spk"): SPK}))


def test_unknown_protocol_without_groups_names_the_protocol():
    with pytest.raises(ValueError, match="task t: unknown protocol 'subsets'"):
        probe.protocol_splits({"name": "t", "protocol": "subsets", "data": "d", "subset": "utt2subset"},
                              {"d": UTTS}, reader({("d", "utt2subset"): {u: "train" for u in UTTS}}))


def test_probe_never_sees_test_speakers_in_training_where_the_protocol_says_so():
    files = {("tr", "utt2spk"): {"t1": "anna", "t2": "bob", "t3": "carl"},
             ("te", "utt2spk"): {"e1": "dora", "e2": "bob", "e3": "anna"}}
    task = {"name": "language"}
    with pytest.raises(ValueError, match=r"task language: speaker-independent, but test speakers are in "
                                         r"training: \['anna', 'bob'\]"):
        probe.check_speaker_independent(task, ("tr", ["t1", "t2", "t3"]), ("te", ["e1", "e2", "e3"]), reader(files))
    # only the utterances of the fold count: without t1 and t2 no test speaker is trained on
    probe.check_speaker_independent(task, ("tr", ["t3"]), ("te", ["e1", "e2", "e3"]), reader(files))
    # group folds over speakers always pass
    folds = probe.protocol_splits({"protocol": "group_folds", "data": "d", "groups": "utt2spk", "folds": 3},
                                  {"d": UTTS}, reader({("d", "utt2spk"): SPK}))
    for train, test in folds:
        probe.check_speaker_independent(task, train, test, reader({("d", "utt2spk"): SPK}))
    # and run_task applies the check to the tasks that ask for it
    rng = np.random.default_rng(0)
    embeddings = {"tr": {u: rng.normal(size=4) for u in ("t1", "t2", "t3")},
                  "te": {u: rng.normal(size=4) for u in ("e1", "e2", "e3")}}
    files[("tr", "utt2lang")] = {"t1": "hrv", "t2": "srp", "t3": "hrv"}
    files[("te", "utt2lang")] = {"e1": "hrv", "e2": "srp", "e3": "hrv"}
    split = {"name": "language", "label": "utt2lang", "protocol": "split", "train": "tr", "test": "te"}
    with pytest.raises(ValueError, match="speaker-independent"):
        probe.run_task({**split, "speaker_independent": True}, embeddings, reader(files), l2=1e-3)
    assert not probe.run_task(split, embeddings, reader(files), l2=1e-3)["speaker_independent"]


def _synthetic(noise, seed=0):
    """Embeddings of UTTS whose 2-class label is (mostly) linearly readable."""
    rng = np.random.default_rng(seed)
    emo = {u: "happy" if i % 2 else "sad" for i, u in enumerate(UTTS)}
    emb = {u: (np.array([3.0, -3.0]) if emo[u] == "happy" else np.array([-3.0, 3.0])) + noise * rng.normal(size=2)
           for u in UTTS}
    return {"d": emb}, {("d", "utt2spk"): SPK, ("d", "utt2emo"): emo}


def test_run_task_gives_fold_accuracies_and_their_mean():
    task = {"name": "emotion", "label": "utt2emo", "protocol": "group_folds", "data": "d", "groups": "utt2spk",
            "folds": 2, "speaker_independent": True}
    embeddings, files = _synthetic(noise=0.1)
    r = probe.run_task(task, embeddings, reader(files), l2=1e-3)
    assert r["fold_accuracies"] == [1.0, 1.0] and r["accuracy"] == 1.0
    assert (r["dataset"], r["label"], r["protocol"], r["num_classes"]) == ("d", "utt2emo", "group_folds", 2)
    first_test = probe.protocol_splits(task, {"d": UTTS}, reader(files))[0][1][1]
    assert (r["num_train"], r["num_test"]) == (len(UTTS) - len(first_test), len(first_test))
    assert r["speaker_independent"] is True
    # noisy: folds differ, the accuracy is their mean
    noisy = probe.run_task({**task, "folds": 5}, *_synthetic(noise=6.0)[:1], reader(_synthetic(noise=6.0)[1]),
                           l2=1e-3)
    assert len(noisy["fold_accuracies"]) == 5 and all(0.0 <= a <= 1.0 for a in noisy["fold_accuracies"])
    assert len(set(noisy["fold_accuracies"])) > 1
    assert noisy["accuracy"] == pytest.approx(np.mean(noisy["fold_accuracies"]))
    # same folds and labels: same data id; other labels: another one
    assert probe.run_task(task, embeddings, reader(files), l2=1e-3)["data_id"] == r["data_id"]
    flipped = {**files, ("d", "utt2emo"): {u: {"happy": "sad", "sad": "happy"}[e]
                                          for u, e in files["d", "utt2emo"].items()}}
    assert probe.run_task(task, embeddings, reader(flipped), l2=1e-3)["data_id"] != r["data_id"]


def test_run_task_refuses_test_labels_unseen_in_training():
    embeddings, files = _synthetic(noise=0.1)
    files["d", "utt2emo"] = {**files["d", "utt2emo"], "e_0": "angry"}  # speaker e: tested alone
    task = {"name": "emotion", "label": "utt2emo", "protocol": "group_folds", "data": "d", "groups": "utt2spk"}
    with pytest.raises(ValueError, match=r"task emotion: test labels never seen in training: \['angry'\]"):
        probe.run_task(task, embeddings, reader(files), l2=1e-3)


# ---- embeddings and their cache ---------------------------------------------------------------
def test_embed_dump_dir_gives_each_utterance_its_own_embedding(data):
    encoder = encoder_from_run(data["run"])
    vectors = probe.embed_dump_dir(encoder, data["test"], batch_frames=300)
    dataset = FeatsDataset(data["test"])
    assert sorted(vectors) == sorted(dataset.utt_ids)
    for i in (0, 5, 11):
        item = dataset[i]
        with torch.no_grad():
            alone = encoder.embed(item["feats"].unsqueeze(0), torch.tensor([item["feats"].shape[0]]))[0]
        assert vectors[item["utt"]].shape == (32,) and vectors[item["utt"]].dtype == np.float32
        assert np.allclose(vectors[item["utt"]], alone.numpy(), atol=1e-5)


def test_cached_embeddings_are_computed_once_and_recomputed_for_another_layer(data, tmp_path, monkeypatch):
    encoder = encoder_from_run(data["run"])
    calls = []
    real = probe.embed_dump_dir

    def counting(*args, **kwargs):
        calls.append(args[2] if len(args) > 2 else kwargs.get("layer"))
        return real(*args, **kwargs)

    monkeypatch.setattr(probe, "embed_dump_dir", counting)
    cache = str(tmp_path / "embeddings" / "test")
    first = probe.cached_embeddings(encoder, "ckpt-A", data["test"], cache)
    assert calls == [None]
    again = probe.cached_embeddings(encoder, "ckpt-A", data["test"], cache)
    assert calls == [None]  # reused
    assert sorted(again) == sorted(first)
    assert all(np.allclose(again[u], first[u]) for u in first)
    with open(os.path.join(cache, "meta.json"), encoding="utf-8") as f:
        assert json.load(f)["layer"] is None
    layer1 = probe.cached_embeddings(encoder, "ckpt-A", data["test"], cache, layer=1)
    assert calls == [None, 1]  # another layer: recomputed
    assert not all(np.allclose(layer1[u], first[u]) for u in first)
    with open(os.path.join(cache, "meta.json"), encoding="utf-8") as f:
        assert json.load(f)["layer"] == 1
    probe.cached_embeddings(encoder, "ckpt-A", data["test"], cache, layer=1)
    assert calls == [None, 1]
    probe.cached_embeddings(encoder, "ckpt-B", data["test"], cache, layer=1)
    assert calls == [None, 1, 1]  # another checkpoint: recomputed
    assert not os.path.exists(cache + ".tmp")


def test_embedding_cache_is_read_without_running_commands(tmp_path):
    import kaldiio

    from masr.data.datadir import DataDirError

    cache, dump = tmp_path / "embeddings" / "test", tmp_path / "dump"
    cache.mkdir(parents=True)
    vectors = {"u1": np.arange(4, dtype=np.float32), "u2": np.ones(4, dtype=np.float32)}
    with kaldiio.WriteHelper(f"ark,scp:{cache}/embeddings.ark,{cache}/embeddings.scp") as writer:
        for utt, vec in vectors.items():
            writer(utt, vec)
    meta = {"source": "ckpt-A", "layer": None, "dump_dir": os.path.abspath(dump)}
    (cache / "meta.json").write_text(json.dumps(meta))
    got = probe.cached_embeddings(None, "ckpt-A", str(dump), str(cache))  # a cache hit: no encoder needed
    assert sorted(got) == ["u1", "u2"] and all(np.array_equal(got[u], vectors[u]) for u in vectors)
    flag = tmp_path / "PWNED_x"
    (cache / "embeddings.scp").write_text(f"u1 echo hi > {flag} |\n")
    with pytest.raises(DataDirError, match=r"embeddings\.scp:1: utterance 'u1': entry 'echo hi > .*' is not"):
        probe.cached_embeddings(None, "ckpt-A", str(dump), str(cache))
    assert not flag.exists()


# ---- whole runs -------------------------------------------------------------------------------
def write_config(data, name, tasks):
    path = data["root"] / f"{name}.yaml"
    lines = ["pretrained: !PLACEHOLDER", "exp_dir: !PLACEHOLDER", "layer: null", "l2: 0.001", "batch_frames: 5000",
             "cpu_threads: 1", "progress: false", "datasets:", f"  train: {data['train']}", f"  test: {data['test']}", "tasks:"]
    lines += [f"  - {json.dumps(task)}" for task in tasks]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


LANGUAGE_SPLIT = {"name": "language", "label": "utt2lang", "protocol": "split", "train": "train", "test": "test"}


def test_probe_main_refuses_a_speaker_independent_task_with_shared_speakers(data):
    # make_dump_dir gives both datasets the speakers spk0..spk3
    config = write_config(data, "shared", [{**LANGUAGE_SPLIT, "speaker_independent": True}])
    exp = str(data["root"] / "exp" / "probe" / "shared")
    with pytest.raises(ValueError, match=r"task language: speaker-independent, but test speakers are in "
                                         r"training: \['spk0', 'spk1', 'spk2', 'spk3'\]"):
        probe.main([config, "--pretrained", data["run"], "--exp_dir", exp])
    assert not os.path.exists(os.path.join(exp, "results.json"))


def test_probe_main_writes_results(data, capsys):
    tasks = [LANGUAGE_SPLIT,
             {"name": "language_by_speaker", "label": "utt2lang", "protocol": "group_folds", "data": "train",
              "groups": "utt2spk", "folds": 2, "speaker_independent": True},
             {"name": "speaker", "label": "utt2spk", "protocol": "within_group", "data": "test", "groups": "utt2spk",
              "every": 3}]
    config = write_config(data, "good", tasks)
    exp = str(data["root"] / "exp" / "probe" / "tiny_bestrq")
    assert probe.main([config, "--pretrained", data["run"], "--exp_dir", exp]) == 0
    with open(os.path.join(exp, "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    assert results["task"] == "probe" and results["model"] == "tiny_bestrq" and results["layer"] is None
    assert results["checkpoint"] == newest_checkpoint(data["run"])
    assert list(results["tasks"]) == ["language", "language_by_speaker", "speaker"]
    lang, folds, spk = (results["tasks"][t] for t in ("language", "language_by_speaker", "speaker"))
    assert (lang["num_train"], lang["num_test"], lang["num_classes"], lang["fold_accuracies"]) == (
        24, 12, 3, [lang["accuracy"]])
    assert len(folds["fold_accuracies"]) == 2 and folds["speaker_independent"] is True
    assert folds["accuracy"] == pytest.approx(np.mean(folds["fold_accuracies"]))
    assert (spk["num_train"], spk["num_test"], spk["num_classes"]) == (8, 4, 4)
    for r in results["tasks"].values():
        assert 0.0 <= r["accuracy"] <= 1.0 and len(r["data_id"]) == 16
    out = capsys.readouterr().out
    assert "language_by_speaker: accuracy" in out and "(group_folds, 2 fold(s), 3 classes)" in out
    for name in ("train", "test"):
        with open(os.path.join(exp, "embeddings", name, "meta.json"), encoding="utf-8") as f:
            assert json.load(f)["source"] == os.path.abspath(newest_checkpoint(data["run"]))
