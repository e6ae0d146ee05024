"""Benchmark of batch-hard triplet mining + loss: masr.losses vs pytorch-metric-learning.

Both compute the MASR stream loss on the same batch: mining on p = [q ; alpha e], the triplet loss
(cosine distance, margin, sum over anchors) on q, forward + backward with respect to q:

- ``masr``: ``masr.losses.hard_triplet_loss(q, labels, margin, meta=e, alpha=alpha)`` (mining
  chunked over anchors, loss on the A selected pairs only);
- ``pml``: pytorch-metric-learning used the MASR way: ``BatchHardMiner(distance=CosineSimilarity())``
  on ``embeddings=p`` gives the (anchor, positive, negative) indices, then
  ``TripletMarginLoss(distance=CosineSimilarity(), margin=margin, reducer=SumReducer())`` on q with
  ``indices_tuple`` from the miner.

The batch: q ~ N(0, 1) of size (B, 256), labels from 100 classes, e = one binary 103-dim vector per
class (the size of a URIEL syntax vector). One semantic difference: pml's positives exclude the
anchor itself, so pml drops anchors whose label is unique in the batch, which masr keeps
(k+ = i); with 100 classes and B >= 1024 such anchors are vanishingly rare, and the table's loss
columns check that both give the same value.

Measured per case, each case in a fresh subprocess (so that one case's allocator state and peak
do not leak into another's):

- time: median over ``--runs`` forward + backward passes after ``--warmup`` ones
  (``torch.cuda.synchronize()`` around each on GPU);
- peak memory: on CUDA, ``torch.cuda.max_memory_allocated()`` minus the memory allocated before the
  first pass (the inputs); on CPU, the peak resident set size (``VmHWM``, reset through
  ``/proc/self/clear_refs`` after the warm-up passes) minus the resident set size at that point,
  i.e. the extra memory a pass needed (autograd graph, temporaries, q.grad), as the kernel saw it;
  measured in a process of its own (one warm-up, one pass) run with
  ``MALLOC_MMAP_THRESHOLD_=65536``, so that freed tensors leave the RSS at once (glibc's heap would
  otherwise keep some resident and hide them from the peak); the page faults this adds stay out of
  the timing process.

Usage::

    python benchmarks/triplet_mining.py                  # B = 1024, 4096, 16384 (CPU: about 2 min, 8 GiB)
    python benchmarks/triplet_mining.py --device cuda --sizes 1024 4096 16384 32768
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine import describe_machine, rss_kib  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIM, META_DIM, CLASSES, MARGIN, ALPHA = 256, 103, 100, 0.2, 1.0
MEMORY_CUDA = "max_memory_allocated above the inputs, over the timed passes"
MEMORY_CPU = "peak RSS (VmHWM) of one pass above the RSS after warm-up, in a fresh process per case"


def make_batch(size, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(size, DIM, generator=gen)
    labels = torch.randint(0, CLASSES, (size,), generator=gen)
    class_vectors = (torch.rand(CLASSES, META_DIM, generator=gen) < 0.5).float()
    return q.to(device), labels.to(device), class_vectors[labels].to(device)


def make_step(method, labels, meta, chunk_size):
    if method == "masr":
        from masr.losses import hard_triplet_loss

        def step(q):
            return hard_triplet_loss(q, labels, MARGIN, meta=meta, alpha=ALPHA, chunk_size=chunk_size)
        return step
    from pytorch_metric_learning.distances import CosineSimilarity
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.miners import BatchHardMiner
    from pytorch_metric_learning.reducers import SumReducer

    miner = BatchHardMiner(distance=CosineSimilarity())
    loss_fn = TripletMarginLoss(distance=CosineSimilarity(), margin=MARGIN, reducer=SumReducer())

    def step(q):
        p = torch.cat([q.detach(), ALPHA * meta], dim=1)
        triplets = miner(p, labels)
        return loss_fn(q, labels, indices_tuple=triplets)
    return step


def run_case(method, size, device, runs, warmup, chunk_size):
    """One case, in this process; returns a dict of figures."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    q0, labels, meta = make_batch(size, device)
    step = make_step(method, labels, meta, chunk_size)
    q = q0.clone().requires_grad_()

    def timed():
        q.grad = None
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        loss = step(q)
        loss.backward()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t, loss.item()

    for _ in range(warmup):  # one-time costs (kernels, library code paged in) stay out of the figures
        timed()
    q.grad = None
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS to the current RSS
        base = rss_kib("VmRSS") * 1024
    times, losses = zip(*(timed() for _ in range(runs)))
    peak = (torch.cuda.max_memory_allocated() if cuda else rss_kib("VmHWM") * 1024) - base
    return dict(method=method, size=size, ms=1000 * statistics.median(times), peak_mib=peak / 2**20,
                loss=losses[-1], runs=runs)


def _worker(method, size, args, runs, warmup, env=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", method, str(size), "--device", args.device,
           "--runs", str(runs), "--warmup", str(warmup), "--chunk-size", str(args.chunk_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return dict(method=method, size=size, error=err[:120])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_in_subprocess(method, size, args):
    """Time (and on CUDA, memory) in one fresh process; on CPU, the memory in a second one."""
    res = _worker(method, size, args, args.runs, args.warmup)
    if "error" in res or args.device.startswith("cuda"):
        return res
    # a fixed mmap threshold: glibc then serves every allocation >= 64 KiB with mmap and unmaps it
    # on free, so the RSS follows what the pass holds instead of what the heap once grew to; it
    # adds page faults, hence a process of its own, kept out of the timing
    mem = _worker(method, size, args, 1, 1, env=dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536"))
    res["peak_mib"] = mem.get("peak_mib", float("nan"))
    return res


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="batch sizes B (default: 1024 4096 16384)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--methods", nargs="+", default=["masr", "pml"], choices=["masr", "pml"])
    parser.add_argument("--runs", type=int, default=None, help="timed passes (default: 20 CUDA, 3 CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed passes first (default: 3 CUDA, 1 CPU)")
    parser.add_argument("--chunk-size", type=int, default=1024, help="masr's anchors per mining chunk")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks/results/triplet_mining.md"))
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "B"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    args.runs = args.runs or (20 if cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    if args.worker:
        print(json.dumps(run_case(args.worker[0], int(args.worker[1]), args.device, args.runs, args.warmup,
                                  args.chunk_size)))
        return 0
    sizes = args.sizes or [1024, 4096, 16384]
    import pytorch_metric_learning

    machine = describe_machine()
    load_before = os.getloadavg()[0]
    header = [
        f"Machine: {machine}  ",
        f"Device: {args.device}; pytorch-metric-learning {pytorch_metric_learning.__version__}; "
        f"torch threads {torch.get_num_threads()}  ",
        f"Batch: q (B, {DIM}) fp32, {CLASSES} classes, e (B, {META_DIM}) binary per class, margin {MARGIN}, "
        f"alpha {ALPHA}; masr chunk_size {args.chunk_size}  ",
        f"Time: median of {args.runs} forward+backward passes after {args.warmup} warm-up; "
        f"peak memory: {MEMORY_CUDA if cuda else MEMORY_CPU}",
        "",
        "| B | masr fwd+bwd | pml fwd+bwd | speed-up | masr peak mem | pml peak mem | masr loss | pml loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(header), flush=True)
    rows = []
    for size in sizes:
        res = {m: run_in_subprocess(m, size, args) for m in args.methods}

        def cell(method, key, fmt):
            r = res.get(method)
            if r is None:
                return "-"
            if "error" in r:
                return f"failed: {r['error']}"
            return fmt.format(r[key])

        ok = all(m in res and "error" not in res[m] for m in ("masr", "pml"))
        speedup = f"{res['pml']['ms'] / res['masr']['ms']:.1f}x" if ok else "-"
        row = (f"| {size} | {cell('masr', 'ms', '{:.1f} ms')} | {cell('pml', 'ms', '{:.1f} ms')} | {speedup} | "
               f"{cell('masr', 'peak_mib', '{:.0f} MiB')} | {cell('pml', 'peak_mib', '{:.0f} MiB')} | "
               f"{cell('masr', 'loss', '{:.4f}')} | {cell('pml', 'loss', '{:.4f}')} |")
        print(row, flush=True)
        rows.append(row)
    load = (f"1-min load average before the run: {load_before:.2f} on {os.cpu_count()} cores (0 = idle; higher: other processes "
            f"shared the cores and the times are inflated)")
    print(f"\n{load}")
    rows += ["", load]
    command = "python benchmarks/triplet_mining.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(f"Command: `{command.strip()}`\n\n" + "\n".join(header + rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
