"""Benchmark of the pretraining input pipeline alone: batches/s from a dump dir vs the step rate.

Builds the dataset and batch sampler exactly as the pretraining stage does
(``masr.train.pretrain.build_pretrain_trainer``: ``FeatsDataset`` with the model's metadata streams and the
config's ``max_frames``, ``DynamicBucketBatchSampler`` with ``max_batch_frames``, ``num_buckets``
and ``seed``, ``collate_feats``), then, for each number of DataLoader workers, iterates the first
``--batches`` batches of epoch 0 through a ``torch.utils.data.DataLoader`` configured like the
trainer's (``batch_sampler``, ``collate_fn``, ``pin_memory``, ``prefetch_factor`` when workers > 0)
and moves each batch to the device (``non_blocking``), as the trainer does. Nothing else runs
meanwhile: this is what the loader can deliver, not what it delivers next to a training step
(one process of a run; ``sharded`` and ``weighted_sampling`` are not reproduced). The dump is
read through the page cache once it has been read: a first run on a large corpus measures the
disk, later ones the CPU cost of reading and collating.

Reported per worker count (and per pin-memory setting on cuda):

- first batch: milliseconds from creating the DataLoader to the first batch on the device
  (worker start-up + one batch; the trainer makes a new DataLoader, so pays this, every epoch);
- steady state, over batches 2..N: batches/s, milliseconds per batch, padded frames/s and
  seconds of audio/s (valid frames x 10 ms);
- loader headroom = loader batches/s / step batches/s (> 1: the loader keeps up with the step).

Each setting is measured ``--repeats`` times and the run with the median steady rate is shown.
With 0 workers the main process reads and collates with its torch threads (``cpu_threads`` on
CPU); on cores shared with other jobs, multi-threaded copies there can be many times slower.

The step rate is ``--step-ms`` (milliseconds the trainer spends per batch) or, without it,
measured here: the median of ``--steps`` training steps of the config's model (forward,
backward, clipping, AdamW; bf16 autocast on a GPU as ``precision: auto`` does) on the epoch's
first batches from the dump.

Usage::

    python benchmarks/input_pipeline.py egs/mini/conf/pretrain_bestrq.yaml --train-dir egs/mini/dump/pretrain \\
        --workers 0 1 2 --out benchmarks/results/input_pipeline.md
    python benchmarks/input_pipeline.py egs/mini/conf/pretrain_bestrq_paper.yaml --train-dir dump/pretrain \\
        --device cuda --workers 0 2 4 8 --prefetch-factor 2 4
"""

import argparse
import contextlib
import itertools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from machine import describe_machine  # noqa: E402

from masr.data.dataset import FeatsDataset, collate_feats  # noqa: E402
from masr.data.sampler import DynamicBucketBatchSampler, padding_fraction  # noqa: E402
from masr.train.pretrain import metadata_streams, ssl_step  # noqa: E402
from masr.utils.config import load_config  # noqa: E402
from masr.utils.fileio import atomic_open  # noqa: E402

#: Seconds of audio per feature frame (10 ms frame shift).
FRAME_SHIFT_S = 0.01

COLUMNS = ["workers", "prefetch", "pin memory", "batches", "padded frames", "first batch ms (start-up)",
           "steady batches/s", "load ms/batch", "padded frames/s", "s of audio/s", "headroom (loader / step)"]


def build_data(config, max_batch_frames=None):
    """The training dataset and batch sampler of ``build_pretrain_trainer`` (one process, not sharded,
    not weighted)."""
    dataset = FeatsDataset(config["train_dir"], streams=metadata_streams(config["model"]),
                           max_frames=config["max_frames"])
    sampler = DynamicBucketBatchSampler(dataset.num_frames, max_batch_frames or config["max_batch_frames"],
                                        num_buckets=config["num_buckets"], seed=config["seed"],
                                        drop_last=False)
    return dataset, sampler


def to_device(batch, device):
    """The trainer's ``_to_device``."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_loader(dataset, sampler, device, num_workers, pin_memory, prefetch_factor, num_batches):
    """Iterate the first ``num_batches`` (>= 2) batches of epoch 0 through a trainer-like DataLoader.

    Returns
    -------
    dict
        ``batches``, ``padded_frames``, ``valid_frames`` (over all batches), ``first_s`` (DataLoader
        creation to the first batch on the device), and the steady state over batches 2..N:
        ``steady_s``, ``steady_batches``, ``steady_padded``, ``steady_valid``.
    """
    sampler.load_state_dict({"epoch": 0, "batches_done": 0})
    kwargs = dict(batch_sampler=sampler, collate_fn=collate_feats, num_workers=num_workers, pin_memory=pin_memory,
                  generator=torch.Generator().manual_seed(0))
    if num_workers > 0:
        kwargs["prefetch_factor"] = prefetch_factor
    counts = {"batches": 0, "padded_frames": 0, "valid_frames": 0}
    _sync(device)
    start = time.perf_counter()
    loader = torch.utils.data.DataLoader(dataset, **kwargs)
    iterator = iter(loader)
    first = None
    for _ in range(num_batches):
        batch = next(iterator)
        feats = batch["feats"]
        counts["batches"] += 1
        counts["padded_frames"] += feats.shape[0] * feats.shape[1]
        counts["valid_frames"] += int(batch["lengths"].sum())
        batch = to_device(batch, device)
        if first is None:
            _sync(device)
            first = time.perf_counter()
            after_first = dict(counts)
    _sync(device)
    end = time.perf_counter()
    del iterator, loader   # shuts the workers down (not timed)
    return dict(counts, first_s=first - start, steady_s=end - first,
                steady_batches=counts["batches"] - after_first["batches"],
                steady_padded=counts["padded_frames"] - after_first["padded_frames"],
                steady_valid=counts["valid_frames"] - after_first["valid_frames"])


def measure_step(config, dataset, sampler, device, steps, warmup):
    """Milliseconds per batch of training steps of the config's model on the epoch's first batches.

    One step = ``grad_accum`` batches (forward + backward each) + gradient clipping + AdamW, as
    ``masr.train.trainer.Trainer`` does. Returns (ms per batch, description).
    """
    model = config["model"].to(device).train()
    optimizer = config["optimizer"](model.parameters(), fused=device.type == "cuda" or None)  # as pretraining
    accum = config["grad_accum"]
    clip = config["clip_grad_norm"]
    precision = config["precision"]
    bf16 = device.type == "cuda" and (precision == "bf16" or (precision == "auto" and torch.cuda.is_bf16_supported()))
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    sampler.load_state_dict({"epoch": 0, "batches_done": 0})
    indices = list(itertools.islice(itertools.cycle(list(sampler)), (warmup + steps) * accum))
    batches = [to_device(collate_feats([dataset[i] for i in b]), device) for b in indices]

    def step(micro):
        optimizer.zero_grad(set_to_none=True)
        for batch in micro:
            with autocast():
                loss, _ = ssl_step(model, batch)
            (loss / accum).backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()

    for k in range(warmup):
        step(batches[k * accum:(k + 1) * accum])
    timed = batches[warmup * accum:]
    times = []
    for k in range(steps):
        _sync(device)
        t = time.perf_counter()
        step(timed[k * accum:(k + 1) * accum])
        _sync(device)
        times.append(time.perf_counter() - t)
    ms = statistics.median(times) * 1000 / accum
    frames = sum(b["feats"].shape[0] * b["feats"].shape[1] for b in timed) / len(timed)
    params = sum(p.numel() for p in model.parameters())
    what = (f"measured: {ms:.1f} ms per batch = {1000 / ms:.2f} batches/s (median of {steps} step(s) of {accum} "
            f"batch(es) after {warmup} warm-up, {min(times) * 1000 / accum:.0f}-{max(times) * 1000 / accum:.0f} ms; "
            f"forward + backward + clipping + AdamW; {params / 1e6:.1f} M parameters, "
            f"{'bf16 autocast' if bf16 else 'fp32'}, {device.type}; {frames:.0f} padded frames per batch)")
    return ms, what


def _fmt_rate(x):
    return f"{x:,.1f}" if x < 100 else f"{x:,.0f}"


def _fmt_ratio(x):
    return f"{x:.2f}x" if x < 10 else f"{_fmt_rate(x)}x"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="pretraining config (HyperPyYAML)")
    parser.add_argument("--train-dir", required=True, help="dump dir (feats.scp, utt2num_frames, ...)")
    parser.add_argument("--workers", type=int, nargs="+", default=None,
                        help="DataLoader num_workers to measure (default: 0 and the config's num_workers)")
    parser.add_argument("--batches", type=int, default=None,
                        help="batches per measurement, >= 2 (default and at most: one epoch)")
    parser.add_argument("--pin-memory", choices=["auto", "on", "off"], default="auto",
                        help="auto: off on cpu, both on and off on cuda")
    parser.add_argument("--prefetch-factor", type=int, nargs="+", default=[2],
                        help="DataLoader prefetch_factor(s) when workers > 0 (2: PyTorch's default, the trainer's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--max-batch-frames", type=int, default=None, help="override the config's")
    parser.add_argument("--step-ms", type=float, default=None,
                        help="milliseconds the trainer spends per batch (default: measure training steps here)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="measurements per loader setting; the one with the median steady rate is reported")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps when measuring the step (median)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up training steps when measuring the step")
    parser.add_argument("--out", default=None, help="also write the Markdown here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    if args.pin_memory == "on" and device.type != "cuda":
        parser.error("--pin-memory on needs --device cuda (pinned memory speeds host-to-GPU copies)")
    if args.batches is not None and args.batches < 2:
        parser.error("--batches must be >= 2 (the first batch is timed apart from the steady state)")
    if min(args.prefetch_factor) < 1 or (args.workers and min(args.workers) < 0):
        parser.error("--prefetch-factor must be >= 1 and --workers >= 0")
    if args.repeats < 1 or args.steps < 1 or args.warmup < 0:
        parser.error("--repeats and --steps must be >= 1, --warmup >= 0")

    load_before = os.getloadavg()[0]
    config = load_config(args.config, {"train_dir": args.train_dir, "exp_dir": "unused", "model": {"cmvn": None}})
    if device.type == "cpu":
        if config["cpu_threads"]:
            torch.set_num_threads(config["cpu_threads"])   # as training_run does
    workers = args.workers if args.workers is not None else sorted({0, config["num_workers"]})
    pins = {"auto": [False, True] if device.type == "cuda" else [False], "on": [True], "off": [False]}[args.pin_memory]
    dataset, sampler = build_data(config, args.max_batch_frames)
    epoch = len(sampler)
    if epoch < 2:
        sys.exit(f"error: {args.train_dir}: one epoch has {epoch} batch(es) of <= {sampler.max_batch_frames} "
                 f"padded frames; need at least 2")
    num_batches = min(args.batches or epoch, epoch)
    machine = describe_machine()
    command = "python benchmarks/input_pipeline.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"machine: {machine}\ncommand: {command}")
    hours = sum(dataset.num_frames) * FRAME_SHIFT_S / 3600
    padding = padding_fraction(sampler.epoch_batches(0), dataset.num_frames)
    data = (f"{args.train_dir}: {len(dataset)} utterances, {hours:.2f} h (max_frames {config['max_frames']}, "
            f"{dataset.num_dropped} dropped); epoch 0: {epoch} batches of <= {sampler.max_batch_frames} padded frames "
            f"(num_buckets {sampler.num_buckets}, seed {sampler.seed}, {100 * padding:.1f}% padding); "
            f"{num_batches} batches per measurement; streams: {', '.join(dataset.streams) or 'none'}")
    print(f"data: {data}")

    results = []
    for w in workers:
        for pin in pins:
            for prefetch in (args.prefetch_factor if w > 0 else [None]):
                runs = sorted((measure_loader(dataset, sampler, device, w, pin, prefetch, num_batches)
                               for _ in range(args.repeats)), key=lambda m: m["steady_batches"] / m["steady_s"])
                m = runs[len(runs) // 2]
                m.update(workers=w, pin=pin, prefetch=prefetch)
                results.append(m)
                print(f"workers {w}, prefetch {prefetch or '-'}, pin {'on' if pin else 'off'}: first batch "
                      f"{m['first_s']:.3f} s, {m['steady_batches'] / m['steady_s']:.1f} batches/s")

    if args.step_ms is not None:
        step_ms, step_what = args.step_ms, f"given: --step-ms {args.step_ms:g} = {1000 / args.step_ms:.2f} batches/s"
    else:
        step_ms, step_what = measure_step(config, dataset, sampler, device, args.steps, args.warmup)
    print(f"step: {step_what}")
    step_rate = 1000 / step_ms

    rows = []
    for m in results:
        rate = m["steady_batches"] / m["steady_s"]
        rows.append([m["workers"], m["prefetch"] or "-", "on" if m["pin"] else "off", m["batches"],
                     f"{m['padded_frames']:,}", f"{1000 * m['first_s']:.2f}", _fmt_rate(rate), f"{1000 / rate:.2f}",
                     f"{m['steady_padded'] / m['steady_s']:,.0f}",
                     _fmt_rate(m["steady_valid"] * FRAME_SHIFT_S / m["steady_s"]),
                     _fmt_ratio(rate / step_rate)])
    table = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    table += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    load = (f"1-min load average before / after the run: {load_before:.2f} / {os.getloadavg()[0]:.2f} on "
            f"{os.cpu_count()} cores (0 = idle; the run itself adds about 1; higher: other processes shared the "
            f"cores and the rates, above all the CPU step's, are lower than on an idle machine)")
    text = "\n".join([
        f"Machine: {machine}  ",
        f"Command: `{command}`  ",
        f"Data: {data}  ",
        f"Step: {step_what}  ",
        f"Device: {device.type}; torch threads {torch.get_num_threads()}",
        "",
        *table,
        "",
        "First batch: from creating the DataLoader to the first batch on the device (worker start-up + one batch). "
        "Steady state: batches 2..N alone (the loader with nothing else running). With 0 workers the main process "
        "reads and collates (with its torch threads); each worker process uses 1 thread and hands its batches over "
        "through shared memory. "
        f"Each row: the median of {args.repeats} measurement(s) by steady rate. "
        "Headroom = steady loader batches/s / step batches/s; > 1: the loader keeps up with the step.",
        "",
        load,
    ]) + "\n"
    print("\n" + text)
    if args.out:
        with atomic_open(args.out) as f:
            f.write(text)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
