"""A tiny pretraining run (``masr.train.pretrain``) for downstream tests, trained in a second."""

import os

from masr.train import pretrain

TINY_BESTRQ = """\
seed: 0
__set_seed: !apply:masr.train.pretrain.seed_everything [!ref <seed>]
train_dir: !PLACEHOLDER
valid_dir: null
exp_dir: !PLACEHOLDER
init_from: null
max_batch_frames: 600
max_frames: 1000
max_steps: 2
lr: 0.001
warmup_steps: 1
checkpoint_every: 2
log_every: 1
progress: false
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


def tiny_bestrq_config(**settings):
    """:data:`TINY_BESTRQ` with top-level keys set (values written as YAML), new ones added before
    the model, e.g. ``tiny_bestrq_config(max_steps=12, cpu_threads=1)``."""
    lines, done = [], set()
    for line in TINY_BESTRQ.splitlines():
        key = line.split(":", 1)[0]
        if line.startswith("model:"):
            lines += [f"{k}: {v}" for k, v in settings.items() if k not in done]
        if not line.startswith(" ") and key in settings:
            line, _ = f"{key}: {settings[key]}", done.add(key)
        lines.append(line)
    return "\n".join(lines) + "\n"


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
