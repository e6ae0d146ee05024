"""The features stage: filterbanks of a data dir into a dump dir, in ``nj`` parallel jobs.

Output (``<out>`` is e.g. ``dump/train``)::

    <out>/data/feats.<job>.ark    float32 matrices, Kaldi binary format (kaldiio)
    <out>/feats.scp               utt -> <out>/data/feats.<job>.ark:<offset>
    <out>/utt2num_frames          utt -> frames
    <out>/cmvn.ark                global CMVN statistics of this set (Kaldi stats layout)
    <out>/{wav.scp, utt2spk, spk2utt, text, utt2*}   copied from the data dir

With ``--shard-utts N`` the arks are instead shards of N utterances drawn at random from the
whole set, ``<out>/data/shard.<k>.ark``, listed in ``<out>/shards.tsv``: a multi-node job then
gives each rank its own shards (:mod:`masr.data.shards`). The shards are dealt to the jobs.

Each ark is written as ``<ark>.tmp``; nothing is renamed into place, and no list file is
written, until every job has succeeded, so a failed run leaves no half-made dump dir. Arks of an
earlier extraction into the same dump dir that the new ``feats.scp`` does not use are removed.

Usage: ``python -m masr.features.extract conf/fbank.yaml --data data/train --out dump/train --nj 2 [--shard-utts N]``
"""

import dataclasses
import os
import shutil
import sys
import time

import kaldiio

from masr.audio import AudioError, read_audio
from masr.data.datadir import DataDir, write_kaldi_map
from masr.data.shards import SHARDS_FILE, make_shards, write_shard_index
from masr.features.cmvn import CMVNStats
from masr.features.fbank import FbankConfig, compute_fbank
from masr.utils.config import make_parser, parse_arguments
from masr.utils.parallel import parallel_map


class FeatureError(RuntimeError):
    """An utterance whose features cannot be computed; the message names it."""


def split_evenly(items, nj):
    """Split a list into ``nj`` contiguous parts of near-equal size (Kaldi's ``split_scp``).

    Example
    -------
    >>> split_evenly(list("abcde"), 2)
    [['a', 'b', 'c'], ['d', 'e']]
    """
    nj = max(1, min(nj, len(items)))
    size, extra = divmod(len(items), nj)
    parts, start = [], 0
    for j in range(nj):
        end = start + size + (1 if j < extra else 0)
        parts.append(items[start:end])
        start = end
    return parts


def _extract_job(job):
    """Compute one job's features into its arks; returns (job index, scp, frames, stats, seconds, shard rows)."""
    index, arks, config, wav_scp = job
    stats = CMVNStats(config.num_mel_bins)
    scp, num_frames, seconds, rows = {}, {}, 0.0, []
    for ark, entries in arks:
        ark_frames = 0
        with open(ark + ".tmp", "wb") as f:
            for utt, entry in entries:
                try:
                    wave, _ = read_audio(entry, config.sample_rate)
                    feats = compute_fbank(wave, config)
                except (AudioError, ValueError) as e:
                    raise FeatureError(f"{wav_scp}: utterance '{utt}': {e}") from None
                start = f.tell()
                kaldiio.save_ark(f, {utt: feats})
                scp[utt] = f"{ark}:{start + len(utt.encode()) + 1}"
                num_frames[utt] = feats.shape[0]
                ark_frames += feats.shape[0]
                stats.add(feats)
                seconds += len(wave) / config.sample_rate
        rows.append((ark, len(entries), ark_frames))
    return index, scp, num_frames, stats, seconds, rows


def extract_features(data_dir, out_dir, config, nj=1, shard_utts=0, shard_seed=0):
    """Compute filterbanks for every utterance of ``data_dir`` into ``out_dir``.

    Arguments
    ---------
    data_dir : str
        A valid Kaldi-style data dir with ``wav.scp``.
    out_dir : str
        The dump dir to write (see the module docstring).
    config : FbankConfig
    nj : int
        Parallel jobs (processes).
    shard_utts : int
        0: one ark per job, utterances in sorted order. N > 0: shards of N random utterances
        (``shard_seed``), listed in ``shards.tsv`` (see the module docstring).
    shard_seed : int

    Returns
    -------
    dict
        ``utterances``, ``audio_seconds``, ``wall_seconds``, ``frames``.

    Raises
    ------
    FeatureError
        An utterance's audio is unreadable or too short; nothing is left in ``out_dir``.
    """
    start = time.time()
    data = DataDir(data_dir)
    wav_scp = data.read("wav.scp")
    out_dir = os.path.abspath(out_dir)
    os.makedirs(os.path.join(out_dir, "data"), exist_ok=True)
    if shard_utts:
        shards = make_shards(list(wav_scp), shard_utts, seed=shard_seed)
        arks = [(os.path.join(out_dir, "data", f"shard.{k:06d}.ark"), [(u, wav_scp[u]) for u in shard])
                for k, shard in enumerate(shards)]
        parts = [arks[j::nj] for j in range(min(nj, len(arks)))]   # shards dealt to the jobs
    else:
        parts = [[(os.path.join(out_dir, "data", f"feats.{j + 1}.ark"), part)]
                 for j, part in enumerate(split_evenly(sorted(wav_scp.items()), nj))]
    ark_paths = [ark for part in parts for ark, _ in part]
    jobs = [(j, part, config, data.file("wav.scp")) for j, part in enumerate(parts)]
    try:
        results = sorted(parallel_map(_extract_job, jobs, nj=len(jobs), chunksize=1), key=lambda r: r[0])
    except BaseException:
        for ark in ark_paths:
            if os.path.exists(ark + ".tmp"):
                os.remove(ark + ".tmp")
        raise
    for ark in ark_paths:
        os.replace(ark + ".tmp", ark)
    scp, num_frames, stats = {}, {}, CMVNStats(config.num_mel_bins)
    shard_rows = []
    for _, job_scp, job_frames, job_stats, _, rows in results:
        scp.update(job_scp)
        num_frames.update(job_frames)
        stats.merge(job_stats)
        shard_rows.extend(rows)
    for name in os.listdir(data.path):
        if name in ("wav.scp", "spk2utt", "text", "weights.tsv") or name.startswith("utt2"):
            shutil.copyfile(data.file(name), os.path.join(out_dir, name))
    write_kaldi_map(os.path.join(out_dir, "utt2num_frames"), num_frames)
    stats.save(os.path.join(out_dir, "cmvn.ark"))
    index = os.path.join(out_dir, SHARDS_FILE)
    if shard_utts:
        write_shard_index(out_dir, sorted(shard_rows))
    elif os.path.exists(index):
        os.remove(index)   # an earlier sharded extraction's index would no longer be true
    write_kaldi_map(os.path.join(out_dir, "feats.scp"), scp)  # last: its presence marks success
    for name in os.listdir(os.path.join(out_dir, "data")):   # arks of an earlier extraction
        path = os.path.join(out_dir, "data", name)
        if name.endswith(".ark") and path not in ark_paths:
            os.remove(path)
    return {
        "utterances": len(scp),
        "audio_seconds": sum(r[4] for r in results),
        "wall_seconds": time.time() - start,
        "frames": stats.count,
    }


def main(argv=None):
    parser = make_parser("Compute log-mel filterbanks of a data dir (Kaldi-compatible).")
    parser.add_argument("--data", required=True, help="input data dir (with wav.scp)")
    parser.add_argument("--out", required=True, help="output dump dir")
    parser.add_argument("--nj", type=int, default=1, help="parallel jobs")
    parser.add_argument("--shard-utts", type=int, default=0,
                        help="write shards of N random utterances for multi-node training (default 0: one ark per job)")
    args, config = parse_arguments(parser, argv)
    fields = {f.name for f in dataclasses.fields(FbankConfig)}
    unknown = sorted(set(config) - fields)
    if unknown:
        parser.error(f"{args.config}: unknown filterbank option(s): {', '.join(unknown)}")
    try:
        s = extract_features(args.data, args.out, FbankConfig(**config), nj=args.nj, shard_utts=args.shard_utts)
    except FeatureError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    speed = s["audio_seconds"] / s["wall_seconds"]
    print(f"{args.out}: {s['utterances']} utterances, {s['audio_seconds'] / 3600:.2f} h of audio, "
          f"{s['frames']} frames in {s['wall_seconds']:.1f} s with nj={args.nj}: "
          f"{speed:.0f} s of audio per second ({speed / args.nj:.0f} per job)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
