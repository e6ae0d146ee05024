"""Benchmark of BEST-RQ pretraining steps: masr's encoder paths side by side with SpeechBrain's recipe.

Builds, at each size, masr's :class:`masr.ssl.bestrq.BestRQ` with each ``--attention``
(``relpos_xl``: SpeechBrain's RelPosMHAXL; ``rope_sdpa``: rotary positions + fused
scaled_dot_product_attention), each with the front-end channels of ``--subsampling-channels`` (0: d_model, as before
``subsampling_channels`` existed; 64, ``+sub64`` in the table: the configs' choice), and, with ``--compare speechbrain``, SpeechBrain 1.1.2's BEST-RQ
recipe model at the same d_model / layers / heads / FFN / kernel / codebook
(``benchmarks/speechbrain_bestrq.py``), and times full training steps of all of them in one
process, interleaved: round after round, each model runs ``--steps-per-round`` steps (forward,
backward, gradient clipping, AdamW; bf16 autocast and fused AdamW on a GPU, fp32 on a CPU). The
figure is the median over rounds of the time per step, so a slow spell of the machine hits every
model alike. ``--compile on`` (or ``both``) also times the models compiled with
:func:`torch.compile`, masr's through ``masr.train.pretrain.compile_model`` (what ``compile: true``
in a config does). ``--masr-stream`` adds masr with a MASR language stream (lang2vec syntax
vectors, projection, batch-hard mining in groups of 16, lambda 16) around the rope_sdpa encoder:
its extra time over the same encoder without the stream is MASR's overhead.

Reported per model: ms/step, seconds of audio per second, peak memory (GPU: max allocated over
its rounds; CPU with ``--memory``: peak RSS of a fresh process running 2 steps of that model
alone, above the RSS after imports), FLOPs per step (``torch.utils.flop_counter``, eager),
MFU = achieved FLOP/s over the peak (GPU: dense bf16 spec, H100/H200 989 TFLOP/s; CPU: the fp32
matmul rate measured here), and the speed ratio against SpeechBrain in the same mode.

The two sides follow their own recipes where the recipes differ (each is what its user runs):
masking (masr: span masks, ~1/3 of the frames per utterance; SpeechBrain: 60 % of the shortest
utterance's 40 ms frames for the whole batch), activation (SiLU / GELU), front-end (masr: two
valid stride-2 convolutions with d_model channels; SpeechBrain: 128/32 channels, "same"
padding, LayerNorm). SpeechBrain's model runs without its random streaming chunks
(``streaming: False``): chunked attention is the same matmuls with another mask, and its random
draw per step would add noise, not cost.

Sizes (``--sizes``): ``mini`` (egs/mini/conf/pretrain_bestrq.yaml's model), ``d256x6``, ``recipe``
(SpeechBrain's BEST-RQ recipe, 94 M parameters), ``paper`` (egs/mini/conf/pretrain_bestrq_paper.yaml,
643 M), ``tiny`` (for tests). Usage::

    python benchmarks/pretrain_step.py --sizes mini d256x6 --compare speechbrain --memory     # CPU
    python benchmarks/pretrain_step.py --device cuda --sizes recipe --batch 64x1500 \\
        --compare speechbrain --compile both                                                  # GPU
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from machine import describe_machine, rss_kib  # noqa: E402

GPU_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}
FRAME_SECONDS = 0.01
#: the size keys both sides share
SIZE_KEYS = ("d_model", "num_layers", "nhead", "d_ffn", "kernel_size", "codebook_size", "codebook_dim")


def config_model_sizes(path):
    """The encoder sizes of a pretraining config's ``model:`` block, read without building it."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def tagged(loader, suffix, node):
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        return None

    Loader.add_multi_constructor("!", tagged)
    with open(path, encoding="utf-8") as f:
        model = yaml.load(f, Loader=Loader)["model"]
    return {k: model[k] for k in SIZE_KEYS}


def named_sizes():
    """Size name -> encoder sizes."""
    from speechbrain_bestrq import RECIPE

    return {
        "tiny": dict(d_model=32, num_layers=1, nhead=2, d_ffn=64, kernel_size=3, codebook_size=16, codebook_dim=16),
        "mini": config_model_sizes(os.path.join(ROOT, "egs/mini/conf/pretrain_bestrq.yaml")),
        "d256x6": dict(d_model=256, num_layers=6, nhead=4, d_ffn=1024, kernel_size=15, codebook_size=64,
                       codebook_dim=16),
        "recipe": {k: RECIPE[k] for k in SIZE_KEYS},
        "paper": config_model_sizes(os.path.join(ROOT, "egs/mini/conf/pretrain_bestrq_paper.yaml")),
    }


def masr_stream_spec():
    """The MASR language stream of egs/mix/conf/continue_masr.yaml (lang2vec syntax vectors)."""
    return {"name": "lang", "encoder": {"kind": "lang2vec", "feature": "syntactic"}, "proj_dim": 128,
            "alpha": 1.0, "weight": 16.0, "margin": 0.2, "mining_group_size": 16, "reduction": "sum"}


#: languages drawn for the utterances of a --masr-stream batch (lang2vec knows them all)
STREAM_LANGS = ["eng", "deu", "fra", "spa", "ita", "pol", "rus", "hin", "ben", "tam", "tel", "mar", "urd",
                "guj", "kan", "mal"]


def build(name, sizes, seed=0):
    """One model of the comparison: ``speechbrain`` or ``masr/<attention>[+sub<C>][+lang]``:
    masr's BEST-RQ with that attention, ``subsampling_channels=C`` (default d_model) and MASR's
    language stream."""
    torch.manual_seed(seed)
    if name == "speechbrain":
        from speechbrain_bestrq import build_speechbrain_bestrq

        model = build_speechbrain_bestrq(**sizes)
        model.streaming = False
        return model
    from masr.ssl.bestrq import BestRQ

    attention, *options = name.split("/", 1)[1].split("+")
    channels = next((int(o[3:]) for o in options if o.startswith("sub")), None)
    model = BestRQ(input_dim=80, attention=attention, subsampling_channels=channels, **sizes)
    if "lang" in options:
        from masr.model import MASR

        model = MASR(model, [masr_stream_spec()])
    return model


class Runner:
    """A model, its optimizer and one training step on a fixed batch."""

    def __init__(self, name, sizes, mode, feats, lengths, device):
        self.name, self.mode = name, mode
        self.model = build(name, sizes).to(device).train()
        self.params = sum(p.numel() for p in self.model.parameters())
        fused = device.type == "cuda" or None
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, fused=fused)
        self.feats, self.lengths, self.device = feats, lengths, device
        self.metadata = None
        if name.endswith("+lang"):
            self.metadata = {"lang": [STREAM_LANGS[i % len(STREAM_LANGS)] for i in range(feats.shape[0])]}
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
        self.precision = "bf16 autocast" if bf16 else "fp32"
        # FLOPs of a step, counted on the eager model (before any compilation; one untimed step)
        self.flops = self.count_flops()
        if mode == "compiled":
            if name == "speechbrain":
                self.model.compile()
            else:
                from masr.train.pretrain import compile_model

                compile_model(self.model)
        self.times, self.peak_memory = [], 0.0

    def loss(self):
        if self.name == "speechbrain":
            return self.model(self.feats, self.lengths)
        if self.metadata is not None:
            return self.model(self.feats, self.lengths, metadata=self.metadata).loss
        return self.model(self.feats, self.lengths).loss

    def step(self):
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss = self.loss()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.optimizer.step()

    def count_flops(self):
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            self.step()
        return counter.get_total_flops()


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measured_cpu_peak_tflops(n=2048, repeats=5):
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - t) / 1e12


def parse_batch(text):
    utts, frames = text.lower().split("x")
    return int(utts), int(frames)


def cpu_memory_of(name, size, batch, mode):
    """Peak RSS (GiB) of a fresh process running 2 steps of one model, above its RSS after imports."""
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker-memory", name, size, batch, mode],
                         capture_output=True, text=True, check=True, env=dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536"))
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_gib"]


def worker_memory(name, size, batch, mode):
    base = rss_kib("VmRSS")
    utts, frames = parse_batch(batch)
    device = torch.device("cpu")
    feats, lengths = torch.randn(utts, frames, 80), torch.full((utts,), frames)
    runner = Runner(name, named_sizes()[size], mode, feats, lengths, device)
    for _ in range(2):
        runner.step()
    print(json.dumps({"peak_gib": (rss_kib("VmHWM") - base) / 2**20}))


def run(args):
    device = torch.device(args.device)
    utts, frames = parse_batch(args.batch)
    sizes = named_sizes()
    modes = {"off": ["eager"], "on": ["compiled"], "both": ["eager", "compiled"]}[args.compile]
    suffix = lambda c: f"+sub{c}" if c else ""  # noqa: E731
    names = [f"masr/{a}{suffix(c)}" for c in args.subsampling_channels for a in args.attention]
    if args.masr_stream:
        names.append(f"masr/rope_sdpa{suffix(args.subsampling_channels[-1])}+lang")
    if args.compare == "speechbrain":
        names.append("speechbrain")
    if device.type == "cuda":
        gpu = torch.cuda.get_device_name(0)
        peak = args.peak_tflops or next((v for k, v in GPU_PEAK_TFLOPS.items() if k in gpu), None)
        peak_note = f"{peak} TFLOP/s dense bf16 spec of the {gpu}" if peak else "no peak known"
    else:
        peak = args.peak_tflops or measured_cpu_peak_tflops()
        peak_note = f"{peak:.2f} TFLOP/s, fp32 matmul measured here with {torch.get_num_threads()} threads"
    rows = []
    for size in args.sizes:
        gen = torch.Generator().manual_seed(0)
        feats = torch.randn(utts, frames, 80, generator=gen).to(device)
        lengths = torch.full((utts,), frames, device=device)
        for mode in modes:
            runners = [Runner(name, sizes[size], mode, feats, lengths, device) for name in names]
            for runner in runners:
                for _ in range(args.warmup):
                    runner.step()
            synchronize(device)
            for _ in range(args.rounds):
                for runner in runners:
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    synchronize(device)
                    t = time.perf_counter()
                    for _ in range(args.steps_per_round):
                        runner.step()
                    synchronize(device)
                    runner.times.append((time.perf_counter() - t) / args.steps_per_round)
                    if device.type == "cuda":
                        runner.peak_memory = max(runner.peak_memory, torch.cuda.max_memory_allocated() / 2**30)
            for runner in runners:
                seconds = statistics.median(runner.times)
                memory = runner.peak_memory if device.type == "cuda" else None
                if device.type == "cpu" and args.memory:
                    memory = cpu_memory_of(runner.name, size, args.batch, mode)
                rows.append({"size": size, "mode": mode, "model": runner.name, "params": runner.params,
                             "precision": runner.precision, "seconds": seconds, "memory": memory,
                             "flops": runner.flops})
            del runners
            if device.type == "cuda":
                torch.cuda.empty_cache()
    for r in rows:
        sb = next((o for o in rows if o["size"] == r["size"] and o["mode"] == r["mode"]
                   and o["model"] == "speechbrain"), None)
        r["vs_speechbrain"] = sb["seconds"] / r["seconds"] if sb and r["model"] != "speechbrain" else None
        base = next((o for o in rows if o["size"] == r["size"] and o["mode"] == r["mode"]
                     and o["model"] == r["model"].replace("+lang", "")), None)
        r["vs_encoder"] = r["seconds"] / base["seconds"] - 1 if base and r["model"].endswith("+lang") else None
    return rows, peak, peak_note, utts, frames


def render(rows, peak, peak_note, utts, frames, command):
    audio = utts * frames * FRAME_SECONDS
    lines = [
        f"Machine: {describe_machine()}  ",
        f"Command: `{command}`  ",
        f"Batch: {utts} x {frames} frames ({audio:.0f} s of audio, 10 ms frames), random filterbanks; "
        f"a step = forward, backward, gradient clipping, AdamW; median over rounds of interleaved steps  ",
        f"MFU: achieved FLOP/s (FLOPs counted on the eager model) / {peak_note}",
        "",
        "| size | mode | model | parameters | ms/step | audio s/s | peak memory | TFLOP/step | MFU | vs SpeechBrain |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        flops = r["flops"]
        mfu = f"{100 * flops / r['seconds'] / 1e12 / peak:.1f}%" if flops and peak else "n/a"
        ratio = f"**{r['vs_speechbrain']:.2f}x**" if r["vs_speechbrain"] else ""
        if r["vs_encoder"] is not None:
            ratio += f" (MASR stream: {100 * r['vs_encoder']:+.1f}% over {r['model'].replace('+lang', '')})"
        memory = f"{r['memory']:.2f} GiB" if r["memory"] is not None else "not measured"
        lines.append(f"| {r['size']} | {r['mode']} | {r['model']} | {r['params'] / 1e6:.1f} M | "
                     f"{1000 * r['seconds']:.1f} | {audio / r['seconds']:,.0f} | {memory} | "
                     f"{flops / 1e12:.3f} | {mfu} | {ratio} |" if flops else
                     f"| {r['size']} | {r['mode']} | {r['model']} | {r['params'] / 1e6:.1f} M | "
                     f"{1000 * r['seconds']:.1f} | {audio / r['seconds']:,.0f} | {memory} | n/a | n/a | {ratio} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["mini", "d256x6"],
                        choices=["tiny", "mini", "d256x6", "recipe", "paper"])
    parser.add_argument("--batch", default="12x500", help="UTTSxFRAMES (default 12 x 5 s)")
    parser.add_argument("--attention", nargs="+", default=["relpos_xl", "rope_sdpa"],
                        choices=["relpos_xl", "rope_sdpa"])
    parser.add_argument("--compare", choices=["speechbrain", "none"], default="speechbrain")
    parser.add_argument("--subsampling-channels", type=int, nargs="+", default=[0, 64],
                        help="masr's front-end channels to time (+sub<C> in the table; 0: d_model)")
    parser.add_argument("--masr-stream", action="store_true", help="also time MASR's language stream")
    parser.add_argument("--compile", choices=["off", "on", "both"], default="off")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps-per-round", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--memory", action="store_true", help="CPU: peak RSS per model, in a fresh process each")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--out", default=None, help="also write the table (Markdown) here")
    parser.add_argument("--worker-memory", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker_memory:
        worker_memory(*args.worker_memory)
        return 0
    rows, peak, peak_note, utts, frames = run(args)
    command = "python benchmarks/pretrain_step.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = render(rows, peak, peak_note, utts, frames, command)
    print(text)
    if args.out:
        from masr.utils.fileio import atomic_open

        with atomic_open(args.out) as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
