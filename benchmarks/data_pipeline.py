"""Benchmark of the data stages: embedded-corpus build time and filterbank extraction speed.

Prints the figures with the machine, and writes them as a Markdown table (default
``benchmarks/results/data_pipeline.md``) so the docs quote what the code measured.

Usage: ``python benchmarks/data_pipeline.py [--corpus-config egs/mini/conf/corpus.yaml] [--nj 1 2]``
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine import describe_machine  # noqa: E402

from masr.corpora.mini import build_corpus  # noqa: E402
from masr.features.extract import extract_features  # noqa: E402
from masr.features.fbank import FbankConfig  # noqa: E402
from masr.utils.config import load_config  # noqa: E402
from masr.utils.fileio import atomic_open  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus-config", default=os.path.join(ROOT, "egs/mini/conf/corpus.yaml"))
    parser.add_argument("--fbank-config", default=os.path.join(ROOT, "egs/mini/conf/fbank.yaml"))
    parser.add_argument("--nj", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks/results/data_pipeline.md"))
    args = parser.parse_args(argv)
    machine = describe_machine()
    print(f"machine: {machine}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = load_config(args.corpus_config)
        fbank = FbankConfig(**load_config(args.fbank_config))
        for nj in args.nj:
            db, data = os.path.join(tmp, f"db{nj}"), os.path.join(tmp, f"data{nj}")
            s = build_corpus(corpus, db, data, nj=nj)
            rows.append(("corpus build", nj, f"{s['seconds']:.1f} s",
                         f"{s['utterances']} utts, {s['hours']:.2f} h, {s['languages']} languages "
                         f"({s['pretrain_languages']} in pretraining), {s['speakers']} speakers"))
            print(rows[-1])
        data = os.path.join(tmp, f"data{args.nj[-1]}", "train")
        import torch

        torch.set_num_threads(1)  # nj=1 runs in this process: one core, as each worker has
        for nj in args.nj:
            t = time.time()
            s = extract_features(data, os.path.join(tmp, f"dump{nj}"), fbank, nj=nj)
            wall = time.time() - t
            speed = s["audio_seconds"] / wall
            rows.append(("fbank (train split, incl. worker start-up)", nj, f"{wall:.1f} s",
                         f"{s['audio_seconds'] / 3600:.2f} h: {speed:.0f} s audio/s, {speed / nj:.0f} s audio/s/core"))
            print(rows[-1])
    with atomic_open(args.out) as f:
        f.write(f"Machine: {machine}  \n")
        f.write(f"Command: `python benchmarks/data_pipeline.py --nj {' '.join(map(str, args.nj))}`\n\n")
        f.write("| step | nj | wall time | figures |\n|---|---|---|---|\n")
        for row in rows:
            f.write("| " + " | ".join(str(c) for c in row) + " |\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
