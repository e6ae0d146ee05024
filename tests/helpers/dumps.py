"""Tiny dump dirs (features or audio shards, + metadata) for training tests, generated on the fly."""

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


def make_audio_dump_dir(path, num_utts=24, shard_utts=4, seed=0, langs=("hrv", "srp", "swe"), num_mel_bins=20,
                        weights=None):
    """Audio shards (``masr.features.extract --audio-shards``) of ``num_utts`` short 16 kHz
    recordings (chirps in noise, 0.45 to 1.25 s: 43 to 123 frames), with ``utt2lang`` and
    ``utt2corpus``; ``weights`` ({(corpus, language): weight}) adds a ``weights.tsv`` for weighted
    sampling (``masr.corpora.mix``). The data dir is ``<path>.data``; returns the dump dir."""
    import soundfile as sf

    from masr.corpora.mix import write_weights
    from masr.data.datadir import write_data_dir
    from masr.features.extract import extract_features
    from masr.features.fbank import FbankConfig

    rng = np.random.default_rng(seed)
    data, wavs = f"{path}.data", f"{path}.wav"
    os.makedirs(wavs, exist_ok=True)
    wav_scp, utt2spk, utt2lang = {}, {}, {}
    for i in range(num_utts):
        utt = f"spk{i % 4}_{i:04d}"
        n = int(rng.integers(7200, 20000))
        t = np.arange(n) / 16000
        f0 = rng.uniform(150, 600)
        wave = 0.2 * np.sin(2 * np.pi * (f0 + rng.uniform(-200, 400) * t) * t) + rng.normal(scale=0.02, size=n)
        wav_scp[utt] = os.path.join(wavs, f"{utt}.wav")
        sf.write(wav_scp[utt], wave.astype(np.float32), 16000, subtype="PCM_16")
        utt2spk[utt], utt2lang[utt] = f"spk{i % 4}", langs[i % len(langs)]
    files = {"wav.scp": wav_scp, "utt2spk": utt2spk, "utt2lang": utt2lang,
             "utt2corpus": dict.fromkeys(wav_scp, "cv")}
    write_data_dir(data, files)
    if weights:
        counts = {}
        for lang in utt2lang.values():
            counts["cv", lang] = counts.get(("cv", lang), 0) + 1
        write_weights(os.path.join(data, "weights.tsv"), counts, weights)
    extract_features(data, path, FbankConfig(num_mel_bins=num_mel_bins), nj=1, shard_utts=shard_utts,
                     shard_seed=seed, audio_shards=True)
    return path
