"""Tiny dump dirs (features + metadata) for training tests, generated on the fly."""

import os

import kaldiio
import numpy as np

from masr.data.datadir import read_kaldi_map, write_kaldi_map
from masr.data.shards import make_shards, write_shard_index
from masr.features.cmvn import CMVNStats


def make_dump_dir(path, num_utts=24, dim=20, min_frames=40, max_frames=120, seed=0, langs=("hrv", "srp", "swe"),
                  shard_utts=0):
    """Random 'filterbanks' with some temporal structure; returns the path.

    ``shard_utts`` > 0: the features go into shuffled shards with a ``shards.tsv`` index, as
    ``masr.features.extract --shard-utts`` writes them.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(path, exist_ok=True)
    feats, stats = {}, CMVNStats(dim)
    for i in range(num_utts):
        frames = int(rng.integers(min_frames, max_frames + 1))
        base = rng.normal(size=(1, dim)) + np.cumsum(rng.normal(scale=0.3, size=(frames, dim)), axis=0)
        feats[f"spk{i % 4}_{i:04d}"] = base.astype(np.float32)
    if shard_utts:
        scp, rows = {}, []
        for k, shard in enumerate(make_shards(list(feats), shard_utts, seed=seed)):
            ark = os.path.join(path, f"shard.{k:06d}.ark")
            with kaldiio.WriteHelper(f"ark,scp:{ark},{ark}.scp") as writer:
                for utt in shard:
                    writer(utt, feats[utt])
            scp.update(read_kaldi_map(f"{ark}.scp"))
            os.remove(f"{ark}.scp")
            rows.append((ark, len(shard), sum(feats[u].shape[0] for u in shard)))
        write_kaldi_map(os.path.join(path, "feats.scp"), scp)
        write_shard_index(path, rows)
    else:
        with kaldiio.WriteHelper(f"ark,scp:{path}/feats.ark,{path}/feats.scp") as writer:
            for utt in sorted(feats):
                writer(utt, feats[utt])
    for utt in sorted(feats):
        stats.add(feats[utt])
    stats.save(os.path.join(path, "cmvn.ark"))
    write_kaldi_map(os.path.join(path, "utt2num_frames"), {u: f.shape[0] for u, f in feats.items()})
    write_kaldi_map(os.path.join(path, "utt2spk"), {u: u.split("_")[0] for u in feats})
    write_kaldi_map(os.path.join(path, "utt2lang"), {u: langs[i % len(langs)] for i, u in enumerate(sorted(feats))})
    homes = {f"spk{k}": f"{44 + k:.1f} {15 + 2 * k:.1f}" for k in range(4)}
    write_kaldi_map(os.path.join(path, "utt2geo"), {u: homes[u.split("_")[0]] for u in feats})
    words = ["dobar", "dan", "hvala", "lijepo", "god", "dag"]
    write_kaldi_map(os.path.join(path, "text"), {u: " ".join(words[(i + j) % 6] for j in range(3))
                                                 for i, u in enumerate(sorted(feats))})
    return path
