"""Benchmark of pretraining input from audio shards: disk per hour, and filterbanks per CPU core / GPU.

The same recordings are written three ways by the features stage (``masr.features.extract``):
stored filterbanks (``feats.scp``), FLAC audio shards and Opus audio shards (``--audio-shards``,
``--audio-codec``). The script reports

- **disk**: bytes per hour of audio of each dump (arks or tar shards, with their listings),
  scaled to 1k hours and to the MASR paper's 429k hours;
- **CPU**: audio seconds per second that one CPU core (one process, one torch thread) turns into
  model input, as a DataLoader worker does: reading stored features; reading + decoding +
  filterbanks from audio shards (``fbank_device: cpu``); reading + decoding only
  (``fbank_device: cuda``, the filterbanks then on the GPU);
- **GPU** (when CUDA is available): audio seconds per second of ``BatchedFbank`` on padded
  batches, host-to-device copy included;
- **cores per GPU**: how many such CPU cores keep one GPU fed at a given pretraining step rate
  (audio seconds per second consumed by a training step; ``bash benchmarks/gpu.sh`` measures the
  paper-size step and prints it as ``audio s/s``).

Two sets of recordings: the embedded corpus (``--data``, default ``egs/mini/data/train``: eSpeak
NG speech, 16 kHz 16-bit WAV, written by ``egs/mini/run.sh`` stage 1), and real speech
(``--real-audio-dir``, default EmoDB's files in ``../shared/data/emodb/flac`` beside this
checkout), first converted to 16 kHz 16-bit WAV so that both codecs encode it (FLAC or Opus
sources would be copied as they are). The input rates are measured on the real speech.

Usage: ``python benchmarks/audio_shards.py [--data DIR] [--real-audio-dir DIR] [--limit 300]
[--rounds 3] [--device cpu|cuda] [--gpu-rates 1000 2000 4000 8000]
[--out benchmarks/results/audio_shards.md]``
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from machine import describe_machine  # noqa: E402

from masr.data.datadir import read_kaldi_map, write_data_dir  # noqa: E402
from masr.data.dataset import FeatsDataset  # noqa: E402
from masr.features.audio_shards import check_codec  # noqa: E402
from masr.features.extract import extract_features  # noqa: E402
from masr.features.fbank import FbankConfig  # noqa: E402
from masr.features.onthefly import AudioShardDataset, collate_waves  # noqa: E402
from masr.utils.fileio import atomic_open  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(ROOT, "egs", "mini", "data", "train")
DEFAULT_REAL = os.path.join(os.path.dirname(ROOT), "shared", "data", "emodb", "flac")
AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".opus")
PAPER_HOURS = 429_000


def wav_data_dir(audio_dir, limit, out, config):
    """A data dir of the first ``limit`` audio files of ``audio_dir``, converted to 16-bit WAV at
    ``config.sample_rate`` (one speaker per file)."""
    import soundfile as sf

    from masr.audio import read_audio

    names = sorted(n for n in os.listdir(audio_dir) if n.lower().endswith(AUDIO_SUFFIXES))[:limit]
    if not names:
        raise SystemExit(f"{audio_dir}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    os.makedirs(os.path.join(out, "wav"))
    wav = {}
    for name in names:
        utt = os.path.splitext(name)[0]
        wave, sr = read_audio(os.path.join(audio_dir, name), config.sample_rate)
        wav[utt] = os.path.join(out, "wav", utt + ".wav")
        sf.write(wav[utt], wave, sr, subtype="PCM_16")
    write_data_dir(os.path.join(out, "data"), {"wav.scp": wav, "utt2spk": {u: u for u in wav}})
    return os.path.join(out, "data")


def synthetic_data_dir(limit, out, config, seed=0):
    """``limit`` chirps in noise of 2 to 12 s as 16-bit WAV (for machines without the corpora: the
    input rates do not depend on what is said; the disk figures do, so they are not reported)."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(out, "wav"))
    wav = {}
    for i in range(limit):
        n = int(rng.uniform(2, 12) * config.sample_rate)
        t = np.arange(n) / config.sample_rate
        wave = 0.2 * np.sin(2 * np.pi * (rng.uniform(100, 400) + 50 * t) * t) + rng.normal(scale=0.01, size=n)
        wav[f"syn{i:05d}"] = os.path.join(out, "wav", f"syn{i:05d}.wav")
        sf.write(wav[f"syn{i:05d}"], wave.astype(np.float32), config.sample_rate, subtype="PCM_16")
    write_data_dir(os.path.join(out, "data"), {"wav.scp": wav, "utt2spk": {u: u for u in wav}})
    return os.path.join(out, "data")


def subset_data_dir(data, limit, out):
    """The first ``limit`` utterances of a data dir (wav.scp and utt2spk)."""
    wav = read_kaldi_map(os.path.join(data, "wav.scp"))
    keep = sorted(wav)[:limit]
    spk = read_kaldi_map(os.path.join(data, "utt2spk"))
    write_data_dir(out, {"wav.scp": {u: wav[u] for u in keep}, "utt2spk": {u: spk[u] for u in keep}})
    return out


def dump_bytes(dump_dir):
    """Bytes of a dump's feature arks or audio shards and their listings."""
    total = sum(os.path.getsize(os.path.join(dump_dir, "data", n)) for n in os.listdir(os.path.join(dump_dir, "data")))
    for listing in ("feats.scp", "audio.scp", "utt2num_frames", "shards.tsv", "cmvn.ark", "fbank.json"):
        path = os.path.join(dump_dir, listing)
        total += os.path.getsize(path) if os.path.isfile(path) else 0
    return total


def audio_hours(dump_dir, config):
    frames = sum(int(n) for n in read_kaldi_map(os.path.join(dump_dir, "utt2num_frames")).values())
    return frames * config.frame_shift / 1000 / 3600


def rate(dataset, seconds_of, rounds):
    """Best of ``rounds`` passes over ``dataset``: audio seconds per wall second (one process)."""
    audio = sum(seconds_of(i) for i in range(len(dataset)))
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(len(dataset)):
            dataset[i]
        best = min(best, time.perf_counter() - t0)
    return audio / best


def gpu_rate(dataset, device, batch_size, rounds):
    """Audio seconds per second of BatchedFbank on ``device`` over padded batches (copy included)."""
    from masr.features.batched_fbank import BatchedFbank

    fbank = BatchedFbank(dataset.fbank).to(device)
    batches = [collate_waves([dataset[i] for i in range(s, min(s + batch_size, len(dataset)))])
               for s in range(0, len(dataset), batch_size)]
    audio = sum(int(b["wave_lengths"].sum()) for b in batches) / dataset.fbank.sample_rate
    for b in batches[:2]:  # warm-up: kernels, FFT plans
        fbank(b["wave"].to(device), b["wave_lengths"].to(device))
    torch.cuda.synchronize(device)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for b in batches:
            fbank(b["wave"].to(device, non_blocking=True), b["wave_lengths"].to(device, non_blocking=True))
        torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return audio / best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="the embedded corpus' data dir (egs/mini stage 1)")
    parser.add_argument("--real-audio-dir", default=DEFAULT_REAL, help="a folder of real speech (default: EmoDB)")
    parser.add_argument("--limit", type=int, default=300, help="recordings used of each set (default 300)")
    parser.add_argument("--synthetic", action="store_true",
                        help="synthetic recordings instead of the two sets (input rates only; e.g. on a GPU "
                             "machine without the corpora)")
    parser.add_argument("--shard-utts", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="passes timed; the best is reported")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cuda: also time batched filterbanks on the GPU")
    parser.add_argument("--gpu-batch", type=int, default=64, help="utterances per GPU filterbank batch")
    parser.add_argument("--gpu-rates", type=float, nargs="+", default=[1000, 2000, 4000, 8000],
                        help="training step rates (audio s/s per GPU) of the cores-per-GPU table")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "audio_shards.md"))
    args = parser.parse_args(argv)
    for option, path in (("--data", args.data), ("--real-audio-dir", args.real_audio_dir)):
        if not args.synthetic and not os.path.isdir(path):
            parser.error(f"{option} {path}: no such folder")
    torch.set_num_threads(1)   # one DataLoader worker = one process, one thread
    config = FbankConfig()
    codecs = ["flac"]
    try:
        check_codec("opus")
        codecs.append("opus")
    except ValueError as e:
        print(f"opus shards left out: {e}", file=sys.stderr)

    tmp = tempfile.mkdtemp(prefix="audio_shards_bench.")
    try:
        if args.synthetic:
            sets = {"synthetic (chirps in noise, 16 kHz WAV)": synthetic_data_dir(args.limit, os.path.join(tmp, "syn"),
                                                                                 config)}
        else:
            sets = {"embedded corpus (eSpeak NG, 16 kHz WAV)": subset_data_dir(args.data, args.limit,
                                                                               os.path.join(tmp, "mini")),
                    "real speech (EmoDB as 16 kHz WAV)": wav_data_dir(args.real_audio_dir, args.limit,
                                                                       os.path.join(tmp, "real"), config)}
        disk, hours, stage2 = {}, {}, {}
        for k, (name, data) in enumerate(sets.items()):
            dumps, seconds = {}, {}

            def extract(label, folder, **kw):
                t0 = time.perf_counter()
                stats = extract_features(data, os.path.join(tmp, f"{k}.{folder}"), config, nj=1,
                                         shard_utts=args.shard_utts, **kw)
                seconds[label] = stats["audio_seconds"] / (time.perf_counter() - t0)
                dumps[label] = os.path.join(tmp, f"{k}.{folder}")

            extract("stored filterbanks", "feats")
            for codec in codecs:
                extract(f"{codec.upper()} shards", codec, audio_shards=True, audio_codec=codec)
            hours[name] = audio_hours(dumps["stored filterbanks"], config)
            disk[name] = {dump: dump_bytes(d) / hours[name] for dump, d in dumps.items()}
            extract("FLAC shards, CMVN from 10% (--cmvn-utts)", "flac_cmvn10", audio_shards=True,
                    cmvn_utts=max(1, args.limit // 10))
            stage2[name] = seconds

        cpu, gpu = {}, {}   # rates on the last set: real speech
        feats = FeatsDataset(dumps["stored filterbanks"])
        cpu["stored filterbanks: read"] = rate(feats, lambda i: feats.num_frames[i] / 100, args.rounds)
        for codec in codecs:
            dump = dumps[f"{codec.upper()} shards"]
            on_cpu = AudioShardDataset(dump)
            decode = AudioShardDataset(dump, return_wave=True)
            seconds = [n / 100 for n in on_cpu.num_frames]
            cpu[f"{codec.upper()} shards: read + decode + filterbank (fbank_device: cpu)"] = rate(
                on_cpu, seconds.__getitem__, args.rounds)
            cpu[f"{codec.upper()} shards: read + decode (fbank_device: cuda)"] = rate(
                decode, seconds.__getitem__, args.rounds)
            if args.device.startswith("cuda"):
                gpu[codec.upper()] = gpu_rate(decode, torch.device(args.device), args.gpu_batch, args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    lines = ["# Pretraining input from audio shards: disk and filterbanks per core", "",
             f"Machine: {describe_machine()}  ",
             f"Command: `python benchmarks/audio_shards.py {' '.join(argv if argv is not None else sys.argv[1:])}`  ",
             f"Recordings: the first {args.limit} utterances of each set below; 80-dim filterbanks every 10 ms; "
             f"shards of {args.shard_utts} utterances; best of {args.rounds} passes", "",
             "## Disk", "",
             "Bytes of each dump's arks or tar shards and listings per hour of audio, scaled linearly.", "",
             "| recordings | dump | MB per hour of audio | 1k hours | the paper's 429k hours |",
             "|---|---|---|---|---|"]
    for name, by_dump in disk.items():
        if args.synthetic:
            lines.append("| synthetic | not reported: synthetic audio does not compress as speech does | | | |")
            break
        for dump, per_hour in by_dump.items():
            lines.append(f"| {name}, {hours[name]:.2f} h | {dump} | {per_hour / 1e6:.1f} | "
                         f"{per_hour * 1000 / 1e9:.1f} GB | {per_hour * PAPER_HOURS / 1e12:.1f} TB |")
    lines += ["", "## Stage 2 per CPU core (one job, worker start-up included)", "",
              "Audio seconds per second that `masr.features.extract --nj 1` turns into each dump.", "",
              "| recordings | dump | audio s per s |", "|---|---|---|"]
    for name, by_dump in stage2.items():
        for dump, r in by_dump.items():
            lines.append(f"| {name} | {dump} | {r:.0f} |")
    lines += ["", f"## Input per CPU core (one process, one thread; {list(sets)[-1]})", "",
              "| what a DataLoader worker does | audio s per s | x real time |", "|---|---|---|"]
    for name, r in cpu.items():
        lines.append(f"| {name} | {r:.0f} | {r:.0f}x |")
    lines += ["", "## Batched filterbanks on the GPU (BatchedFbank, host-to-device copy included)", ""]
    if gpu:
        lines += ["| shards | audio s per s |", "|---|---|"]
        lines += [f"| {codec} | {r:.0f} |" for codec, r in gpu.items()]
    else:
        lines.append(f"not measured: no CUDA device (`--device {args.device}`)")
    lines += ["", "## CPU cores per GPU to keep it fed", "",
              "A GPU whose training step consumes R audio seconds per second (the `audio s/s` of "
              "`bash benchmarks/gpu.sh`'s paper-size step) needs R / (rate per core) DataLoader workers:", "",
              "| worker | " + " | ".join(f"R = {r:.0f}" for r in args.gpu_rates) + " |",
              "|---|" + "---|" * len(args.gpu_rates)]
    for name, r in cpu.items():
        lines.append(f"| {name} | " + " | ".join(f"{need / r:.1f}" for need in args.gpu_rates) + " |")
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with atomic_open(args.out) as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
