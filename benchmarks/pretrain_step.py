"""Benchmark of SSL pretraining steps: frames/s, audio seconds per second, peak memory, MFU.

Builds the model of a pretraining config, feeds it random filterbank batches of the config's
``max_batch_frames`` (utterances of ``--utt-frames`` frames), and times full training steps
(forward, backward, clipping, AdamW) after warm-up steps. FLOPs per step are counted once with
``torch.utils.flop_counter.FlopCounterMode``; MFU = achieved FLOP/s / peak FLOP/s, where the
peak is the GPU's dense bf16 figure (H100/H200: 989 TFLOP/s; override with --peak-tflops) or,
on CPU, the fp32 rate this machine reaches on a large matrix product (measured here).

Usage::

    python benchmarks/pretrain_step.py egs/mini/conf/pretrain_bestrq.yaml --steps 5
    python benchmarks/pretrain_step.py egs/mini/conf/pretrain_bestrq_paper.yaml --device cuda --steps 20
"""

import argparse
import contextlib
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine import describe_machine  # noqa: E402

from masr.utils.config import load_config  # noqa: E402

GPU_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def measured_cpu_peak_tflops(n=2048, repeats=5):
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - t) / 1e12


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--utt-frames", type=int, default=1000, help="frames per utterance (10 s)")
    parser.add_argument("--max-batch-frames", type=int, default=None, help="override the config's")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--out", default=None, help="also write the figures as Markdown here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    config = load_config(args.config, {"train_dir": "unused", "exp_dir": "unused",
                                       "model": {"cmvn": None}})
    model = config["model"].to(device).train()
    budget = args.max_batch_frames or config["max_batch_frames"]
    batch = max(1, budget // args.utt_frames)
    feats = torch.randn(batch, args.utt_frames, 80, device=device)
    lengths = torch.full((batch,), args.utt_frames, device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = model(feats, lengths).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - t) / args.steps
    if device.type == "cuda":
        peak_mem = torch.cuda.max_memory_allocated() / 2**30
        name = torch.cuda.get_device_name(0)
        peak = args.peak_tflops or next((v for k, v in GPU_PEAK_TFLOPS.items() if k in name), None)
        peak_note = "dense bf16 spec"
    else:
        peak_mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        peak = args.peak_tflops or measured_cpu_peak_tflops()
        peak_note = f"measured fp32 matmul, {torch.get_num_threads()} threads"
    frames = batch * args.utt_frames
    params = sum(p.numel() for p in model.parameters())
    lines = [
        f"machine: {describe_machine()}",
        f"config: {args.config}  ({params / 1e6:.1f} M parameters, {'bf16 autocast' if bf16 else 'fp32'})",
        f"batch: {batch} x {args.utt_frames} frames = {frames} frames ({frames / 100:.0f} s of audio)",
        f"step time: {seconds * 1000:.1f} ms  |  {frames / seconds:,.0f} frames/s  |  "
        f"{frames / 100 / seconds:,.1f} s of audio per second",
        f"peak memory: {peak_mem:.2f} GiB ({'GPU allocated' if device.type == 'cuda' else 'process max RSS'})",
    ]
    if peak:
        lines.append(f"FLOPs/step: {flops / 1e12:.3f} TFLOP  |  achieved {flops / seconds / 1e12:.3f} TFLOP/s  |  "
                     f"MFU {100 * flops / seconds / 1e12 / peak:.1f}% of {peak:.2f} TFLOP/s ({peak_note})")
    print("\n".join(lines))
    if args.out:
        command = "python benchmarks/pretrain_step.py " + " ".join(argv if argv is not None else sys.argv[1:])
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(f"Command: `{command}`\n\n" + "".join(f"- {line}\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
