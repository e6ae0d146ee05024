"""Benchmark of feature reading under DDP: one ark per extraction job vs shuffled shards.

A synthetic dump dir (random 80-dim "filterbanks", utterance ids sorted by language as in a real
corpus) is written twice: as the features stage writes it by default (``nj`` contiguous arks) and
with ``--shard-utts`` (shuffled shards + ``shards.tsv``). For each number of ranks W, every
rank's epoch of batches is computed with the sampler pretraining uses for that layout
(``DynamicBucketBatchSampler`` / ``ShardedBatchSampler``), and the script reports

- how many ark files each rank reads in an epoch, and by how many ranks each file is read;
- rank 0's batches per epoch (more batches for the same data = smaller, part-filled batches)
  and the mean number of languages in a batch (batch-hard triplet mining needs several);
- the wall time of rank 0 reading its epoch through ``FeatsDataset`` (files are in the page
  cache after writing: this is the CPU cost of reading, not disk or network throughput).

Usage: ``python benchmarks/feature_reading.py [--utts 4000] [--ranks 4 16] [--shard-buffer 1 4]
[--out benchmarks/results/feature_reading.md]``
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kaldiio  # noqa: E402
import numpy as np  # noqa: E402

from machine import describe_machine  # noqa: E402

from masr.data.datadir import write_kaldi_map  # noqa: E402
from masr.data.dataset import FeatsDataset  # noqa: E402
from masr.data.sampler import DynamicBucketBatchSampler  # noqa: E402
from masr.data.shards import ShardedBatchSampler, make_shards, shard_of_items, write_shard_index  # noqa: E402
from masr.utils.fileio import atomic_open  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LANGS = [f"l{k:02d}" for k in range(20)]


def write_dump(path, feats, arks, sharded):
    """Write ``feats`` (utt -> matrix) into the given arks (list of lists of utts)."""
    os.makedirs(path, exist_ok=True)
    scp, rows = {}, []
    for k, utts in enumerate(arks):
        ark = os.path.join(path, f"{'shard' if sharded else 'feats'}.{k}.ark")
        with open(ark, "wb") as f:
            for utt in utts:
                start = f.tell()
                kaldiio.save_ark(f, {utt: feats[utt]})
                scp[utt] = f"{ark}:{start + len(utt.encode()) + 1}"
        rows.append((ark, len(utts), sum(feats[u].shape[0] for u in utts)))
    write_kaldi_map(os.path.join(path, "feats.scp"), scp)
    write_kaldi_map(os.path.join(path, "utt2num_frames"), {u: m.shape[0] for u, m in feats.items()})
    write_kaldi_map(os.path.join(path, "utt2lang"), {u: u.split("-")[0] for u in feats})
    if sharded:
        write_shard_index(path, rows)


def measure(dump, world, sharded, max_batch_frames, shard_buffer=1):
    ds = FeatsDataset(dump, streams=["lang"])
    ark_of = [entry.rsplit(":", 1)[0] for entry in ds.entries]
    common = dict(num_buckets=10, seed=0, world_size=world)
    if sharded:
        shard_of = shard_of_items(ds)
        samplers = [ShardedBatchSampler(shard_of, ds.num_frames, max_batch_frames, rank=r, shard_buffer=shard_buffer,
                                        **common)
                    for r in range(world)]
    else:
        samplers = [DynamicBucketBatchSampler(ds.num_frames, max_batch_frames, rank=r, **common) for r in range(world)]
    batches = [list(s) for s in samplers]
    arks_per_rank = [{ark_of[i] for b in rank_batches for i in b} for rank_batches in batches]
    readers = {}
    for arks in arks_per_rank:
        for ark in arks:
            readers[ark] = readers.get(ark, 0) + 1
    langs = [len({ds.utt_ids[i].split("-")[0] for i in b}) for b in batches[0]]
    t = time.time()
    for b in batches[0]:
        for i in b:
            ds[i]
    wall = time.time() - t
    return {
        "arks": len(set(ark_of)),
        "arks_per_rank": sum(len(a) for a in arks_per_rank) / world,
        "readers_per_ark": max(readers.values()),
        "batches": len(batches[0]),
        "langs_per_batch": sum(langs) / len(langs),
        "read_s": wall,
        "utts_per_s": sum(len(b) for b in batches[0]) / wall,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utts", type=int, default=4000)
    parser.add_argument("--nj", type=int, default=8, help="arks of the default layout (extraction jobs)")
    parser.add_argument("--shard-utts", type=int, default=125)
    parser.add_argument("--ranks", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--shard-buffer", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--max-batch-frames", type=int, default=20000)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks/results/feature_reading.md"))
    args = parser.parse_args(argv)
    machine = describe_machine()
    print(f"machine: {machine}")
    rng = np.random.default_rng(0)
    per_lang = args.utts // len(LANGS)
    feats = {f"{lang}-{i:06d}": rng.standard_normal((int(rng.integers(200, 1000)), 80)).astype(np.float32)
             for lang in LANGS for i in range(per_lang)}
    utts = sorted(feats)
    gib = sum(m.nbytes for m in feats.values()) / 2 ** 30
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        plain, sharded = os.path.join(tmp, "plain"), os.path.join(tmp, "sharded")
        step = -(-len(utts) // args.nj)
        write_dump(plain, feats, [utts[k:k + step] for k in range(0, len(utts), step)], sharded=False)
        write_dump(sharded, feats, make_shards(utts, args.shard_utts, seed=0), sharded=True)
        for world in args.ranks:
            layouts = [("one ark per job", plain, False, 1)] + [
                (f"shards, shard_buffer {b}", sharded, True, b) for b in args.shard_buffer]
            for name, dump, is_sharded, buffer in layouts:
                m = measure(dump, world, is_sharded, args.max_batch_frames, buffer)
                rows.append((name, world, f"{m['arks_per_rank']:.1f} of {m['arks']}", m["readers_per_ark"],
                             m["batches"], f"{m['langs_per_batch']:.1f}", f"{m['read_s']:.2f} s",
                             f"{m['utts_per_s']:.0f}"))
                print(rows[-1])
    command = (f"python benchmarks/feature_reading.py --utts {args.utts} --nj {args.nj} --shard-utts {args.shard_utts} "
               f"--ranks {' '.join(map(str, args.ranks))} --shard-buffer {' '.join(map(str, args.shard_buffer))}")
    with atomic_open(args.out) as f:
        f.write(f"Machine: {machine}  \n")
        f.write(f"Command: `{command}`  \n")
        f.write(f"Data: {len(feats)} utterances of 200-1000 frames x 80 ({gib:.2f} GiB), {len(LANGS)} languages, "
                f"ids sorted by language; batches of <= {args.max_batch_frames} padded frames\n\n")
        f.write("| layout | ranks | arks read per rank (per epoch) | ranks reading one ark (max) | batches of rank 0 "
                "| languages per batch | rank-0 epoch read (page cache) | utterances/s |\n")
        f.write("|---|---|---|---|---|---|---|---|\n")
        for row in rows:
            f.write("| " + " | ".join(str(c) for c in row) + " |\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
