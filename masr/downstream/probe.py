"""Frozen-embedding linear probes (paper Table 2, the NOSS protocol).

Usage (the recipe's stage 7 runs it once per pretrained model)::

    python -m masr.downstream.probe conf/probe.yaml --pretrained exp/continue_masr \\
        --exp_dir exp/probe/continue_masr

The encoder is frozen. Each dataset of the config (a dump dir) is embedded once: the masked mean
of the frames of encoder block ``layer`` (null: the last), cached as a kaldiio ark/scp in
``<exp_dir>/embeddings/<dataset>/`` (reused while the checkpoint and layer are the same). Each
task then trains a linear softmax classifier (multinomial logistic regression: standardised
embeddings, L2 penalty ``l2``, full-batch L-BFGS from zero, hence deterministic) and reports
test accuracy. Protocols:

- ``split``: train on dataset ``train``, test on dataset ``test`` (e.g. the embedded corpus's
  train/test, whose speakers are disjoint);
- ``subset``: one dataset whose file ``subset`` (e.g. ``utt2subset``) says ``train`` or ``test``
  per utterance (FSDD's conventional split);
- ``group_folds``: ``folds`` folds of whole groups (``groups``, e.g. ``utt2spk``): every test
  group is absent from training (speaker-independent; EmoDB emotion, FSDD digits);
- ``within_group``: every ``every``-th utterance of each group is tested, the rest trained on
  (speaker identification: the test speakers must be seen in training).

With ``speaker_independent: true`` a task refuses to run if a test speaker (``utt2spk``) is also
in its training data. Results: ``<exp_dir>/results.json``, and the prediction of every test item
in ``<exp_dir>/predictions/<task>.tsv`` (for paired comparisons of models in the report).
"""

import hashlib
import json
import os
import sys

import kaldiio
import numpy as np
import torch

from masr.data.datadir import DataDir, DataDirError, read_ark_entry, read_kaldi_map
from masr.data.dataset import FeatsDataset, collate_feats
from masr.data.sampler import DynamicBucketBatchSampler
from masr.downstream.pretrained import load_encoder, run_name
from masr.downstream.results_schema import ProbeResults, ProbeTask
from masr.train.checkpoint import newest_checkpoint
from masr.utils.config import make_parser, parse_arguments
from masr.utils.fileio import atomic_open
from masr.utils.progress import enabled, progress


# ---- embeddings ------------------------------------------------------------------------------
@torch.no_grad()
def embed_dump_dir(encoder, dump_dir, layer=None, batch_frames=30000, device=None, show_progress=None):
    """{utt: (D,) numpy float32} utterance embeddings h of every utterance of a dump dir.

    ``show_progress``: a bar of the utterances embedded, None on a terminal (rank 0), True
    forced, False off (:func:`masr.utils.progress.progress`).
    """
    device = device or torch.device("cpu")
    dataset = FeatsDataset(dump_dir)
    encoder = encoder.to(device).eval()
    out = {}
    with progress(total=len(dataset), desc=f"embedding {os.path.basename(os.path.normpath(dump_dir))}",
                  unit="utt", enabled=show_progress) as bar:
        for indices in DynamicBucketBatchSampler(dataset.num_frames, batch_frames, shuffle=False):
            batch = collate_feats([dataset[i] for i in indices])
            h = encoder.embed(batch["feats"].to(device), batch["lengths"].to(device), layer=layer)
            for utt, vec in zip(batch["utt"], h.float().cpu().numpy()):
                out[utt] = vec
            bar.update(len(indices))
    return out


def load_embeddings(scp):
    """{utt: (D,) numpy array} of an embeddings scp, read with the safe ark reader.

    Entries must be ``<ark path>:<byte offset>`` (:func:`masr.data.datadir.read_ark_entry`), so
    a tampered cache cannot make the reader run a command.

    Arguments
    ---------
    scp : str
        ``embeddings.scp`` of a cache written by :func:`cached_embeddings`.

    Returns
    -------
    dict
        utt -> numpy vector, in the order of the scp.

    Raises
    ------
    DataDirError
        A malformed scp, or an entry that cannot be read (file, line and utterance named).
    """
    out = {}
    for lineno, (utt, entry) in enumerate(read_kaldi_map(scp).items(), start=1):
        try:
            out[utt] = read_ark_entry(entry)
        except (ValueError, OSError) as e:
            raise DataDirError(f"{scp}:{lineno}: utterance '{utt}': {e}") from None
    return out


def cached_embeddings(encoder, source, dump_dir, cache_dir, layer=None, batch_frames=30000, device=None,
                      show_progress=None):
    """Embeddings of a dump dir, computed once per (source, layer) and cached in ``cache_dir``
    (``embeddings.ark``/``.scp`` + ``meta.json``, replaced as a whole so a crash never leaves a
    half-written cache)."""
    meta = {"source": source, "layer": layer, "dump_dir": os.path.abspath(dump_dir)}
    meta_file = os.path.join(cache_dir, "meta.json")
    if os.path.isfile(meta_file):
        with open(meta_file, encoding="utf-8") as f:
            if json.load(f) == meta:
                return load_embeddings(os.path.join(cache_dir, "embeddings.scp"))
    vectors = embed_dump_dir(encoder, dump_dir, layer, batch_frames, device, show_progress)
    tmp = cache_dir.rstrip("/") + ".tmp"
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with kaldiio.WriteHelper(f"ark,scp:{tmp}/embeddings.ark,{tmp}/embeddings.scp") as writer:
        for utt in sorted(vectors):
            writer(utt, vectors[utt])
    # the scp names the ark by path: point it at the final folder
    with open(f"{tmp}/embeddings.scp", encoding="utf-8") as f:
        scp = f.read().replace(f"{tmp}/embeddings.ark", f"{cache_dir}/embeddings.ark")
    with open(f"{tmp}/embeddings.scp", "w", encoding="utf-8") as f:
        f.write(scp)
    with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    shutil.rmtree(cache_dir, ignore_errors=True)
    os.replace(tmp, cache_dir)
    return vectors


# ---- the classifier ---------------------------------------------------------------------------
def fit_logistic_regression(x, y, num_classes, l2=1e-3, max_iter=200):
    """Multinomial logistic regression, full-batch L-BFGS from zero (deterministic).

    The inputs are standardised (train mean and std per dimension) for the fit; the returned
    weights apply to the raw inputs (the standardisation is folded in), so they can initialise a
    linear layer (``masr.downstream.langid``'s linear-probe head).

    Arguments
    ---------
    x : numpy.ndarray
        (N, D) training embeddings.
    y : numpy.ndarray
        (N,) class ids in [0, num_classes).
    l2 : float
        Penalty on the squared standardised weights (mean cross-entropy + l2 * ||W||^2).

    Returns
    -------
    weight : torch.Tensor
        (D, C) float64: logits = x @ weight + bias.
    bias : torch.Tensor
        (C,) float64.
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp(min=1e-6)
    z = (x - mean) / std
    y = torch.as_tensor(y, dtype=torch.long)
    weight = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ weight + bias, y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    weight, bias = weight.detach() / std.unsqueeze(1), bias.detach()
    return weight, bias - mean @ weight


def train_linear_probe(x, y, num_classes, l2=1e-3, max_iter=200):
    """A classifier from :func:`fit_logistic_regression`: returns ``predict(x) -> (M,) class ids``.

    Example
    -------
    >>> x = np.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.2]], dtype=np.float32)
    >>> predict = train_linear_probe(x, np.array([0, 0, 1, 1]), 2)
    >>> predict(np.array([[0.0, 0.8], [0.8, 0.1]], dtype=np.float32)).tolist()
    [0, 1]
    """
    weight, bias = fit_logistic_regression(x, y, num_classes, l2, max_iter)
    return lambda z: (torch.as_tensor(z, dtype=torch.float64) @ weight + bias).argmax(-1).numpy()


# ---- protocols --------------------------------------------------------------------------------
def protocol_splits(task, utts_by_dataset, read_file):
    """The (train utts, test utts) pairs of a task: one pair, or one per fold.

    Arguments
    ---------
    task : dict
        The task's config (``protocol`` and its keys, see the module docstring).
    utts_by_dataset : dict
        dataset name -> sorted utterance ids.
    read_file : callable
        ``read_file(dataset, name) -> {utt: value}`` (e.g. ``utt2spk`` of that dataset).

    Returns
    -------
    list of ((dataset, utts), (dataset, utts))

    Example
    -------
    >>> utts = {"d": ["a1", "a2", "b1", "b2", "c1"]}
    >>> spk = {"a1": "a", "a2": "a", "b1": "b", "b2": "b", "c1": "c"}
    >>> folds = protocol_splits({"protocol": "group_folds", "data": "d", "groups": "utt2spk", "folds": 3},
    ...                         utts, lambda d, n: spk)
    >>> [test for (_, _), (_, test) in folds]
    [['a1', 'a2'], ['b1', 'b2'], ['c1']]
    >>> protocol_splits({"protocol": "within_group", "data": "d", "groups": "utt2spk", "every": 2},
    ...                 utts, lambda d, n: spk)[0][1][1]
    ['a2', 'b2']
    """
    protocol = task.get("protocol", "split")
    if protocol not in ("split", "subset", "group_folds", "within_group"):
        raise ValueError(f"task {task.get('name')}: unknown protocol '{protocol}' "
                         "(split, subset, group_folds, within_group)")
    if protocol == "split":
        return [((task["train"], utts_by_dataset[task["train"]]), (task["test"], utts_by_dataset[task["test"]]))]
    data = task["data"]
    utts = utts_by_dataset[data]
    if protocol == "subset":
        subset = read_file(data, task["subset"])
        bad = sorted({v for v in subset.values() if v not in ("train", "test")})
        if bad:
            raise ValueError(f"{data}/{task['subset']}: values must be 'train' or 'test', got {bad}")
        return [((data, [u for u in utts if subset[u] == "train"]), (data, [u for u in utts if subset[u] == "test"]))]
    groups = read_file(data, task["groups"])
    if protocol == "group_folds":
        names = sorted({groups[u] for u in utts})
        k = task.get("folds", len(names))
        if not 2 <= k <= len(names):
            raise ValueError(f"task {task.get('name')}: {k} folds need 2..{len(names)} groups ({task['groups']})")
        fold_of = {g: i * k // len(names) for i, g in enumerate(names)}  # contiguous, balanced
        return [((data, [u for u in utts if fold_of[groups[u]] != f]), (data, [u for u in utts if fold_of[groups[u]] == f]))
                for f in range(k)]
    if protocol == "within_group":
        every = task.get("every", 4)
        position, test = {}, set()
        for u in utts:
            position[groups[u]] = position.get(groups[u], 0) + 1
            if position[groups[u]] % every == 0:
                test.add(u)
        return [((data, [u for u in utts if u not in test]), (data, [u for u in utts if u in test]))]
    raise ValueError(f"task {task.get('name')}: unknown protocol '{protocol}' "
                     "(split, subset, group_folds, within_group)")


def check_speaker_independent(task, train, test, read_file):
    """Refuse a fold whose test speakers appear in its training data (tasks that say so)."""
    (train_set, train_utts), (test_set, test_utts) = train, test
    spk_train, spk_test = read_file(train_set, "utt2spk"), read_file(test_set, "utt2spk")
    shared = {spk_train[u] for u in train_utts} & {spk_test[u] for u in test_utts}
    if shared:
        raise ValueError(f"task {task['name']}: speaker-independent, but test speakers are in training: "
                         f"{sorted(shared)[:5]}")


def folds_id(labels_by_split):
    """A digest of the (dataset, utt, label) triples of every fold: same data <=> same id."""
    digest = hashlib.sha256()
    for fold in labels_by_split:
        for part in fold:
            for item in part:
                digest.update((" ".join(item) + "\n").encode("utf-8"))
    return digest.hexdigest()[:16]


def run_task(task, embeddings, read_file, l2, predictions=None):
    """Accuracy of a linear probe on one task (mean over its folds) and its bookkeeping.

    ``predictions``, when a list, receives one ``(fold, dataset, utt, reference, predicted)`` per
    test item of every fold (what paired significance tests between models need).
    """
    utts = {name: sorted(vectors) for name, vectors in embeddings.items()}
    folds = protocol_splits(task, utts, read_file)
    accuracies, described = [], []
    predictions = [] if predictions is None else predictions
    for fold, (train, test) in enumerate(folds):
        if task.get("speaker_independent"):
            check_speaker_independent(task, train, test, read_file)
        labels = {s: read_file(s, task["label"]) for s in (train[0], test[0])}
        y_train = [labels[train[0]][u] for u in train[1]]
        y_test = [labels[test[0]][u] for u in test[1]]
        classes = sorted(set(y_train))
        unknown = sorted(set(y_test) - set(classes))
        if unknown:
            raise ValueError(f"task {task['name']}: test labels never seen in training: {unknown[:5]}")
        index = {c: i for i, c in enumerate(classes)}
        predict = train_linear_probe(np.stack([embeddings[train[0]][u] for u in train[1]]),
                                     np.array([index[c] for c in y_train]), len(classes), l2=l2)
        hyp = predict(np.stack([embeddings[test[0]][u] for u in test[1]]))
        accuracies.append(float(np.mean(hyp == np.array([index[c] for c in y_test]))))
        predictions += [(fold, test[0], u, c, classes[int(h)]) for u, c, h in zip(test[1], y_test, hyp)]
        described.append(([(train[0], u, c) for u, c in zip(train[1], y_train)],
                          [(test[0], u, c) for u, c in zip(test[1], y_test)]))
    first_train, first_test = folds[0]
    return {"dataset": task.get("data") or f"{task['train']}->{task['test']}", "label": task["label"],
            "protocol": task.get("protocol", "split"), "accuracy": float(np.mean(accuracies)),
            "fold_accuracies": accuracies,
            "num_classes": len({c for fold in described for part in fold for _, _, c in part}),
            "num_train": len(first_train[1]), "num_test": len(first_test[1]),
            "speaker_independent": bool(task.get("speaker_independent", False)), "data_id": folds_id(described)}


def write_predictions(path, predictions):
    """``predictions/<task>.tsv`` of a probe run: fold, dataset, utt, reference, predicted."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_open(path) as f:
        f.write("fold\tdataset\tutt\treference\tpredicted\n")
        for row in predictions:
            f.write("\t".join(map(str, row)) + "\n")


#: Every key the stage reads (no Python-side defaults: each is declared in the YAML, see
#: ``egs/mini/conf/probe.yaml``).
CONFIG_KEYS = ("pretrained", "exp_dir", "datasets", "tasks", "layer", "batch_frames", "l2", "cpu_threads", "progress")


def run(config, device=None):
    """Embed every dataset of the config and run every task; returns and writes ``results.json``."""
    source = config["pretrained"]
    checkpoint = newest_checkpoint(source) if os.path.isdir(source) else source
    encoder = load_encoder(source)
    layer = config["layer"]
    embeddings = {}
    for name, dump_dir in config["datasets"].items():
        cache = os.path.join(config["exp_dir"], "embeddings", name)
        embeddings[name] = cached_embeddings(encoder, os.path.abspath(checkpoint), dump_dir, cache, layer,
                                             config["batch_frames"], device, enabled(config["progress"]))
    files = {}

    def read_file(dataset, name):
        if (dataset, name) not in files:
            files[dataset, name] = read_kaldi_map(DataDir(config["datasets"][dataset]).file(name))
        return files[dataset, name]

    record = ProbeResults(model=run_name(source), layer=layer, checkpoint=checkpoint)
    for task in config["tasks"]:
        predictions = []
        r = run_task(task, embeddings, read_file, config["l2"], predictions)
        record.tasks[task["name"]] = ProbeTask(**r)
        write_predictions(os.path.join(config["exp_dir"], "predictions", f"{task['name']}.tsv"), predictions)
        print(f"{task['name']}: accuracy {r['accuracy']:.3f} ({r['protocol']}, {len(r['fold_accuracies'])} fold(s), "
              f"{r['num_classes']} classes)", flush=True)
    results = record.to_json()
    with atomic_open(os.path.join(config["exp_dir"], "results.json")) as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    return results


def main(argv=None):
    parser = make_parser("Linear probes on frozen utterance embeddings of a pretrained encoder.")
    args, config = parse_arguments(parser, argv, required=CONFIG_KEYS)
    if config["cpu_threads"]:  # null: torch's default
        torch.set_num_threads(config["cpu_threads"])
    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
