"""A tiny pretraining run (``masr.train.pretrain``) for downstream tests, trained in a second."""

import functools
import os

import numpy as np
import soundfile as sf
import torch

from masr.data.datadir import write_kaldi_map
from masr.downstream import langid
from masr.ssl.bestrq import BestRQ
from masr.train import pretrain
from masr.train.run import seed_everything
from masr.train.schedule import WarmupDecay
from tests.helpers.dumps import make_dump_dir

TINY_BESTRQ = """\
seed: 0
__set_seed: !apply:masr.train.run.seed_everything [!ref <seed>]
train_dir: !PLACEHOLDER
valid_dir: null
exp_dir: !PLACEHOLDER
init_from: null
max_batch_frames: 600
num_buckets: 10
max_frames: 1000
feature_source: feats
fbank_device: cpu
num_workers: 0
weighted_sampling: false
sharded: false
shard_buffer: 4
max_steps: 2
grad_accum: 1
lr: 0.001
warmup_steps: 1
decay: cosine
min_lr_ratio: 0.0
optimizer: !name:torch.optim.AdamW
  lr: !ref <lr>
  betas: [0.9, 0.98]
  weight_decay: 0.01
scheduler: !name:masr.train.schedule.WarmupDecay
  warmup_steps: !ref <warmup_steps>
  total_steps: !ref <max_steps>
  decay: !ref <decay>
  min_ratio: !ref <min_lr_ratio>
clip_grad_norm: 5.0
max_nonfinite_steps: 0
precision: auto
cpu_threads: null
compile: false
pad_multiple: 1
compile_mode: null
log_every: 1
progress: false
valid_every: 0
valid_batches: 20
checkpoint_every: 2
keep_checkpoints: 3
keep_steps: []
model: !new:masr.ssl.bestrq.BestRQ
  input_dim: 20
  d_model: 32
  num_layers: 2
  nhead: 2
  d_ffn: 64
  kernel_size: 3
  codebook_size: 16
  mask_prob: 0.2
  mask_span: 2
  cmvn: !ref <train_dir>/cmvn.ark
"""


def with_settings(text, **settings):
    """A YAML config ``text`` with top-level keys set (values written as YAML); new keys are
    added before ``model:`` (or at the end), e.g. ``with_settings(TINY_LANGID, max_steps=4)``."""
    lines, done = [], set()
    for line in text.splitlines():
        key = line.split(":", 1)[0]
        if line.startswith("model:"):
            lines += [f"{k}: {v}" for k, v in settings.items() if k not in done]
            done.update(settings)
        if not line.startswith(" ") and key in settings:
            line, _ = f"{key}: {settings[key]}", done.add(key)
        lines.append(line)
    lines += [f"{k}: {v}" for k, v in settings.items() if k not in done]
    return "\n".join(lines) + "\n"


def tiny_bestrq_config(**settings):
    """:data:`TINY_BESTRQ` with top-level keys set, e.g. ``tiny_bestrq_config(max_steps=12, cpu_threads=1)``."""
    return with_settings(TINY_BESTRQ, **settings)


def make_pretrain_run(exp_dir, train_dir, steps=2):
    """Train a 2-layer, 32-dim BEST-RQ for ``steps`` steps on ``train_dir`` (a dump dir with
    20-dim features, e.g. ``tests.helpers.dumps.make_dump_dir``); returns ``exp_dir``."""
    os.makedirs(exp_dir, exist_ok=True)
    config = os.path.join(os.path.dirname(exp_dir.rstrip("/")) or ".", "tiny_bestrq.yaml")
    with open(config, "w", encoding="utf-8") as f:
        f.write(TINY_BESTRQ)
    assert pretrain.main([config, "--train_dir", train_dir, "--exp_dir", exp_dir, "--max_steps", str(steps),
                          "--checkpoint_every", str(steps), "--device", "cpu"]) == 0
    return exp_dir


# the tiny models read 20-dim features: their filterbanks must have 20 bins
TINY_FBANK = "num_mel_bins: 20\nframe_length: 25.0\nframe_shift: 10.0\nsample_rate: 16000\ndither: 0.0\n"

TINY_LANGID = """\
seed: 1
__set_seed: !apply:masr.train.run.seed_everything [!ref <seed>]
pretrained: !PLACEHOLDER
train_dir: !PLACEHOLDER
dev_dir: !PLACEHOLDER
test_dir: !PLACEHOLDER
pretrain_langs: !PLACEHOLDER
exp_dir: !PLACEHOLDER
fbank_config: !PLACEHOLDER
layer: null
dropout: 0.1
eer_pooling: pooled
max_batch_frames: 1200
num_buckets: 1
crop_frames: 50
max_frames: null
eval_batch_frames: 5000
num_workers: 0
head_init: random
probe_l2: 0.001
max_steps: 2
grad_accum: 1
freeze_encoder_steps: 1
lr: 0.01
encoder_lr: 0.001
warmup_steps: 1
decay: cosine
min_lr_ratio: 0.0
optimizer: !name:torch.optim.AdamW
  betas: [0.9, 0.98]
  weight_decay: 0.01
scheduler: !name:masr.train.schedule.WarmupDecay
  warmup_steps: !ref <warmup_steps>
  total_steps: !ref <max_steps>
  decay: !ref <decay>
  min_ratio: !ref <min_lr_ratio>
clip_grad_norm: 5.0
max_nonfinite_steps: 0
precision: fp32
cpu_threads: 1
log_every: 1
progress: false
checkpoint_every: 2
keep_checkpoints: 1000
"""


def make_langid_models(root):
    """A tiny pretraining run, a LangID model fine-tuned from it, and two short recordings under
    ``root`` (a pathlib.Path); returns their paths (``run``, ``langid``, ``fbank``, ``wavs``, ``scp``)."""
    run_dir = make_pretrain_run(str(root / "exp" / "tiny_bestrq"), make_dump_dir(str(root / "pretrain"), seed=0))
    dirs = [make_dump_dir(str(root / name), num_utts=n, seed=seed)
            for name, n, seed in (("train", 24, 1), ("dev", 9, 2), ("test", 9, 3))]
    write_kaldi_map(str(root / "pretrain_utt2lang"), {"p1": "hrv"})
    (root / "fbank.yaml").write_text(TINY_FBANK)
    (root / "langid.yaml").write_text(TINY_LANGID)
    lid_dir = str(root / "exp" / "langid" / "tiny_bestrq" / "seed1")
    assert langid.main([str(root / "langid.yaml"), "--pretrained", run_dir, "--train_dir", dirs[0],
                        "--dev_dir", dirs[1], "--test_dir", dirs[2], "--pretrain_langs", str(root / "pretrain_utt2lang"),
                        "--fbank_config", str(root / "fbank.yaml"), "--exp_dir", lid_dir, "--device", "cpu"]) == 0
    rng = np.random.default_rng(0)
    wavs = []
    for i, seconds in enumerate((1.0, 0.6)):
        t = np.arange(int(16000 * seconds)) / 16000
        wave = 0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t) + 0.05 * rng.normal(size=t.shape)
        path = str(root / f"utt{i}.wav")
        sf.write(path, wave.astype(np.float32), 16000, subtype="FLOAT")
        wavs.append(path)
    write_kaldi_map(str(root / "wav.scp"), {"rec_a": wavs[0], "rec_b": wavs[1]})
    return {"root": root, "run": run_dir, "langid": lid_dir, "fbank": str(root / "fbank.yaml"), "wavs": wavs,
            "scp": str(root / "wav.scp")}


def pretrain_config(dump, exp_dir, model, **kw):
    """A complete pretraining config (every key ``masr.train.pretrain`` reads, as a loaded YAML
    gives them) for :func:`masr.train.pretrain.build_pretrain_trainer`; ``kw`` overrides keys.
    ``optimizer`` (AdamW) and ``scheduler`` (WarmupDecay) are built from the overridden scalars,
    as the egs YAMLs build them with ``!ref``."""
    c = dict(seed=0, model=model, train_dir=dump, valid_dir=None, exp_dir=exp_dir, init_from=None,
             feature_source="feats", fbank_device="cpu", max_batch_frames=400, num_buckets=10, max_frames=None, num_workers=0, weighted_sampling=False,
             sharded=False, shard_buffer=4, max_steps=8, grad_accum=1, lr=1e-3, warmup_steps=1, decay="cosine",
             min_lr_ratio=0.0, clip_grad_norm=5.0, max_nonfinite_steps=0, precision="fp32", cpu_threads=1,
             compile=False, pad_multiple=1, compile_mode=None, log_every=10, progress=False, valid_every=0,
             valid_batches=20, checkpoint_every=500, keep_checkpoints=3, keep_steps=[], allow_inexact_resume=False)
    c.update(kw)
    c.setdefault("optimizer", functools.partial(torch.optim.AdamW, lr=c["lr"], betas=[0.9, 0.98], weight_decay=0.01))
    c.setdefault("scheduler", functools.partial(WarmupDecay, warmup_steps=c["warmup_steps"],
                                                total_steps=c["max_steps"], decay=c["decay"],
                                                min_ratio=c["min_lr_ratio"]))
    return c


def trainer_config(dump, exp_dir, **kw):
    """A loaded pretraining config (a 1-layer BEST-RQ on ``dump``) for :func:`masr.train.pretrain.build_pretrain_trainer`:
    8 steps of 2 micro-batches, a checkpoint every 4; ``kw`` overrides keys."""
    seed_everything(7)
    model = BestRQ(input_dim=20, d_model=32, num_layers=1, nhead=2, d_ffn=64, kernel_size=3, codebook_size=32,
                   dropout=0.1, cmvn=os.path.join(dump, "cmvn.ark"))
    return pretrain_config(dump, exp_dir, model, **{
        **dict(seed=7, num_buckets=3, max_steps=8, grad_accum=2, lr=3e-3, warmup_steps=3, decay="cosine",
               min_lr_ratio=0.1, clip_grad_norm=1.0, checkpoint_every=4, keep_checkpoints=2, log_every=2), **kw})
