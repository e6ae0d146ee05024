"""The training loop shared by pretraining and fine-tuning (LangID, CTC ASR).

Why a small loop of our own rather than SpeechBrain's ``Brain`` (which does checkpoint every N
steps and accumulate gradients): the runs here are defined by ``max_steps`` optimizer steps, not
epochs, and stop there on every DDP rank together; exact resume needs the batch sampler's
position *within* an epoch and every rank's RNG states in the checkpoint, verified on resume
(:mod:`masr.train.checkpoint`); a step with a NaN/inf loss is skipped and counted. With ``Brain``
these would be overrides of its fit loop and checkpointer. The loop below is ~300 lines a reader
can follow top to bottom.

One optimizer step = ``grad_accum`` micro-batches. Per step: forward under bf16 autocast on GPU
(fp32 on CPU), backward (DDP gradient sync only on the last micro-batch), gradient clipping,
``optimizer.step()``, ``scheduler.step()``. A step whose loss or gradient norm is NaN or inf is
skipped and counted (``max_nonfinite_steps``, then :class:`NonFiniteLossError`); that check is
the one wait for the device per step (as in ESPnet and fairseq). Metrics are summed as device
tensors and read only when logged. Every ``log_every`` steps a line goes to
``<exp>/train_log.txt``, scalars to TensorBoard (``<exp>/tensorboard``) and the progress bar;
every ``checkpoint_every`` steps (and at the end) a checkpoint (see ``masr.train.checkpoint``).
A run started again in the same ``exp_dir`` resumes from its newest checkpoint and continues
exactly as if it had never stopped.
"""

import contextlib
import os
import sys
import time

import torch
from torch.utils.data import DataLoader

from masr.train import distributed
from masr.train.checkpoint import (
    CheckpointError,
    check_exact_resume,
    find_resumable,
    load_model_weights,
    remove_unfinished,
    save_checkpoint,
    set_rng_state,
)

#: Seconds of audio per feature frame (10 ms hop), for the audio-seconds-per-second figure.
FRAME_SECONDS = 0.01

#: Utterance ids named in a non-finite-loss error.
_EXAMPLES = 10


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why (entry points print it and exit with 1)."""


class NonFiniteLossError(TrainingError):
    """More optimizer steps had a NaN/inf loss or gradient norm than ``max_nonfinite_steps``."""


class EmptyEpochError(TrainingError):
    """The sampler gave no batch for a whole epoch (no usable utterance), which would loop forever."""


__all__ = ["Trainer", "TrainingError", "NonFiniteLossError", "EmptyEpochError", "CheckpointError"]


class Trainer:
    """Train ``model`` for ``max_steps`` optimizer steps.

    Arguments
    ---------
    model : torch.nn.Module
    optimizer : torch.optim.Optimizer
    scheduler : torch.optim.lr_scheduler.LRScheduler
        Stepped once per optimizer step.
    dataset : torch.utils.data.Dataset
    sampler : masr.data.sampler.DynamicBucketBatchSampler
        Batch sampler with ``set_epoch`` and ``state_dict``/``load_state_dict``.
    collate_fn : callable
        Batch items -> dict with at least ``feats`` and ``lengths``.
    step_fn : callable
        ``step_fn(model, batch) -> (loss, metrics)``: the task's objective on one batch;
        metrics is a dict of scalar tensors.
    exp_dir : str
        Where logs, TensorBoard scalars and checkpoints go.
    max_steps : int
    grad_accum : int
        Micro-batches per optimizer step.
    clip_grad_norm : float or None
    checkpoint_every, keep_checkpoints, log_every : int
    keep_steps : list of int
        Checkpoints never deleted (a step that is no multiple of ``checkpoint_every`` is saved too).
    precision : str
        ``"auto"`` (bf16 autocast on a CUDA GPU that supports it, else fp32), ``"bf16"``, ``"fp32"``.
    device : torch.device
    rank, world_size : int
        From :func:`masr.train.distributed.init`.
    num_workers : int
        DataLoader workers (loading only; the sampler runs in this process).
    valid_fn : callable or None
        ``valid_fn(model) -> dict of floats``, run on rank 0 every ``valid_every`` steps with
        the model in eval mode and the RNG state preserved.
    valid_every : int
    init_from : str or None
        A checkpoint of another run to take the weights from when this run has none of its own.
    progress : bool
        Show a progress bar (rank 0).
    find_unused_parameters : bool
        Passed to DDP: True when some parameters get no gradient in a step (a frozen encoder
        during a warm-up, SSL heads a downstream task does not use).
    max_nonfinite_steps : int
        A step whose loss or gradient norm is NaN or inf is skipped (no update; logged with its
        utterance ids) and counted; the count-exceeding one stops training with
        :class:`NonFiniteLossError` (0: the first one does). The count is kept in checkpoints.
    allow_inexact_resume : bool
        Resume even when the checkpoint was written by another number of processes or lacks
        an RNG file (logged); otherwise that is a :class:`CheckpointError`.

    A model with a ``set_step(step)`` method is told the step before each optimizer step (e.g.
    to keep its encoder frozen during a warm-up); resumed runs tell it the restored step.
    """

    def __init__(self, model, optimizer, scheduler, dataset, sampler, collate_fn, step_fn, exp_dir, max_steps,
                 grad_accum=1, clip_grad_norm=5.0, checkpoint_every=500, keep_checkpoints=3, log_every=10,
                 precision="auto", device=None, rank=0, world_size=1, num_workers=0, valid_fn=None,
                 valid_every=0, init_from=None, progress=True, find_unused_parameters=False, keep_steps=(),
                 max_nonfinite_steps=0, allow_inexact_resume=False):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.dataset, self.sampler, self.collate_fn, self.step_fn = dataset, sampler, collate_fn, step_fn
        self.exp_dir, self.max_steps, self.grad_accum = exp_dir, max_steps, grad_accum
        self.clip_grad_norm, self.checkpoint_every, self.keep = clip_grad_norm, checkpoint_every, keep_checkpoints
        self.log_every, self.valid_fn, self.valid_every = log_every, valid_fn, valid_every
        self.device = device or torch.device("cpu")
        self.rank, self.world_size, self.num_workers = rank, world_size, num_workers
        self.init_from, self.progress = init_from, progress and rank == 0
        self.find_unused_parameters = find_unused_parameters
        self.keep_steps = {int(step) for step in keep_steps or ()}
        self.max_nonfinite_steps, self.allow_inexact_resume = max_nonfinite_steps, allow_inexact_resume
        self.nonfinite_steps = 0
        self.autocast_dtype = self._resolve_precision(precision)
        self.step, self.epoch, self.batches_in_epoch = 0, 0, 0
        self.ckpt_dir = os.path.join(exp_dir, "checkpoints")
        self._writer = None

    def _resolve_precision(self, precision):
        if precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, got '{precision}'")
        on_gpu = self.device.type == "cuda"
        if precision == "auto":
            precision = "bf16" if on_gpu and torch.cuda.is_bf16_supported() else "fp32"
        if precision == "bf16" and not on_gpu:
            raise ValueError("bf16 autocast is for CUDA devices; use precision fp32 on CPU")
        return torch.bfloat16 if precision == "bf16" else None

    # ---- state -----------------------------------------------------------------------------
    def state_dict(self):
        return {
            "model": self._unwrapped().state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "trainer": {"step": self.step, "epoch": self.epoch, "batches_in_epoch": self.batches_in_epoch,
                        "nonfinite_steps": self.nonfinite_steps},
        }

    def _unwrapped(self):
        return self.model.module if hasattr(self.model, "module") else self.model

    def _resume_or_init(self):
        if self.rank == 0:
            remove_unfinished(self.ckpt_dir)
        distributed.barrier()
        found = self._agreed_checkpoint()
        if found:
            _, path, state, rng, skipped = found
            for broken, reason in skipped:
                self._warn(f"checkpoint {broken} is broken ({reason}); resuming from the older {path}")
            for problem in check_exact_resume(path, self.world_size, self.allow_inexact_resume):
                self._warn(f"--allow-inexact-resume: resuming {path} although {problem}")
            self._unwrapped().load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            pos = state["trainer"]
            self.step, self.epoch, self.batches_in_epoch = pos["step"], pos["epoch"], pos["batches_in_epoch"]
            self.nonfinite_steps = pos.get("nonfinite_steps", 0)
            if rng is not None:
                set_rng_state(rng)
            self._log_line(f"resumed from {path} (step {self.step}, epoch {self.epoch}, "
                           f"batch {self.batches_in_epoch} of the epoch)")
        elif self.init_from:
            missing, unexpected = load_model_weights(self._unwrapped(), self.init_from)
            self._log_line(f"initialised from {self.init_from}; not in it (newly initialised): "
                           f"{missing or 'none'}; ignored from it: {unexpected or 'none'}")

    def _agreed_checkpoint(self):
        """:func:`find_resumable` on every rank, until all ranks resume the same step: a rank that
        cannot read the newest checkpoint (a broken RNG file of its own, say) makes every rank take
        an older one, and an error on one rank is an error on all (never a hang)."""
        at_most = None
        while True:
            error = None
            try:
                found = find_resumable(self.ckpt_dir, self.rank, map_location=self.device, at_most=at_most)
            except CheckpointError as e:
                found, error = None, e
            step = -2 if error else found[0] if found else -1
            lowest, highest = distributed.min_max(step)
            if lowest == highest:
                if error:
                    raise error
                return found
            if lowest == -2:
                raise error or CheckpointError(f"{self.ckpt_dir}: another process of this run cannot resume any "
                                               f"checkpoint (see its error)")
            if lowest == -1:
                raise CheckpointError(f"{self.ckpt_dir}: some processes of this run see checkpoints, others none; "
                                      f"do all nodes see the same run folder?")
            at_most = lowest

    # ---- logging ---------------------------------------------------------------------------
    def _log_line(self, text):
        if self.rank != 0:
            return
        os.makedirs(self.exp_dir, exist_ok=True)
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}"
        with open(os.path.join(self.exp_dir, "train_log.txt"), "a", encoding="utf-8") as f:
            f.write(line + "\n")
        if not self.progress:
            print(line, flush=True)

    def _warn(self, text):
        """A warning: in the log, and on stderr even with a progress bar."""
        self._log_line(f"WARNING: {text}")
        if self.rank == 0 and self.progress:
            print(f"WARNING: {text}", file=sys.stderr, flush=True)

    def _scalars(self, prefix, values):
        if self.rank != 0:
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(os.path.join(self.exp_dir, "tensorboard"))
        for key, value in values.items():
            self._writer.add_scalar(f"{prefix}/{key}", value, self.step)

    # ---- the loop --------------------------------------------------------------------------
    def _batches(self):
        """Batches from the saved position on, epoch after epoch; updates the position."""
        first = True
        while True:
            if first:
                self.sampler.load_state_dict({"epoch": self.epoch, "batches_done": self.batches_in_epoch})
                first = False
            else:
                self.sampler.set_epoch(self.epoch)
            # The DataLoader draws its workers' base seed when an iterator starts; a generator of
            # its own keeps that draw off the global RNG, which a resumed run restores exactly.
            loader = DataLoader(self.dataset, batch_sampler=self.sampler, collate_fn=self.collate_fn,
                                num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
                                generator=torch.Generator().manual_seed(self.epoch))
            got = 0
            for batch in loader:
                self.batches_in_epoch += 1
                got += 1
                yield batch
            if got == 0 and self.batches_in_epoch == 0:
                raise EmptyEpochError(f"epoch {self.epoch} has no batch: the training set ({len(self.dataset)} "
                                      f"utterance(s)) gives the sampler nothing to draw (max_batch_frames "
                                      f"smaller than every utterance, or no usable utterance)")
            self.epoch += 1
            self.batches_in_epoch = 0

    def _to_device(self, batch):
        return {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    def fit(self):
        """Run (or resume) training to ``max_steps``; returns the last logged metrics."""
        self.model.to(self.device)
        self._resume_or_init()
        if self.world_size > 1 and not hasattr(self.model, "module"):
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=self.find_unused_parameters)
        if self.step >= self.max_steps:
            self._log_line(f"already at step {self.step} >= max_steps {self.max_steps}; nothing to do")
            return {}
        self.model.train()
        self._log_line(f"training from step {self.step} to {self.max_steps}; {self.world_size} process(es); "
                       f"device {self.device}; precision {'bf16' if self.autocast_dtype else 'fp32'}; "
                       f"{sum(p.numel() for p in self._unwrapped().parameters() if p.requires_grad):,} trainable parameters")
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.max_steps, initial=self.step, unit="step", dynamic_ncols=True,
                       mininterval=1.0 if sys.stderr.isatty() else 30.0)
        sums, count, frames, t0, last = {}, 0, 0, time.time(), {}
        batches = self._batches()
        set_step = getattr(self._unwrapped(), "set_step", None)
        while self.step < self.max_steps:
            if set_step is not None:
                set_step(self.step)
            self.optimizer.zero_grad(set_to_none=True)
            step_sums, step_frames, step_batches = {}, 0, []
            for micro in range(self.grad_accum):
                batch = next(batches)
                lengths_on_host = int(batch["lengths"].sum())  # counted before the copy to the device
                step_batches.append(batch)  # host tensors: named in an error should the step be non-finite
                batch = self._to_device(batch)
                last_micro = micro == self.grad_accum - 1
                sync = contextlib.nullcontext() if last_micro or self.world_size == 1 else self.model.no_sync()
                autocast = (torch.autocast(self.device.type, dtype=self.autocast_dtype)
                            if self.autocast_dtype else contextlib.nullcontext())
                with sync:
                    with autocast:
                        loss, metrics = self.step_fn(self.model, batch)
                    (loss / self.grad_accum).backward()
                # metrics stay on the device until a log step: no host synchronisation for them
                for key, value in {"loss": loss, **metrics}.items():
                    step_sums[key] = step_sums.get(key, 0.0) + (value.detach() if torch.is_tensor(value) else value)
                step_frames += lengths_on_host
            if self.clip_grad_norm:
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
            else:
                grads = [p.grad for p in self.model.parameters() if p.grad is not None]
                grad_norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
            if not self._finite(grad_norm, step_sums["loss"]):  # one synchronisation per step
                self._skip_nonfinite(step_sums["loss"], grad_norm, step_batches)
                continue
            for key, value in step_sums.items():
                sums[key] = sums.get(key, 0.0) + value
            count += self.grad_accum
            frames += step_frames
            lr, *group_lrs = [group["lr"] for group in self.optimizer.param_groups]
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            if bar is not None:
                bar.update(1)
            if self.step % self.log_every == 0 or self.step == self.max_steps:
                elapsed = time.time() - t0
                means = distributed.all_reduce_mean({k: float(v) / count for k, v in sums.items()})
                total_frames = distributed.all_reduce_mean({"f": frames})["f"] * self.world_size
                speed = {"frames_per_second": total_frames / elapsed,
                         "audio_seconds_per_second": total_frames * FRAME_SECONDS / elapsed, "lr": lr}
                for i, group_lr in enumerate(group_lrs, start=1):
                    speed[f"lr_group{i}"] = group_lr  # e.g. a fine-tuning head's own rate
                if grad_norm is not None:
                    speed["grad_norm"] = float(grad_norm)
                last = {**means, **speed}
                self._scalars("train", last)
                self._log_line(f"step {self.step} | epoch {self.epoch} | "
                               + " | ".join(f"{k} {v:.4g}" for k, v in last.items()))
                if bar is not None:
                    bar.set_postfix(loss=f"{means['loss']:.3f}", fps=f"{speed['frames_per_second']:.0f}")
                sums, count, frames, t0 = {}, 0, 0, time.time()
            if self.valid_fn is not None and self.valid_every and self.step % self.valid_every == 0:
                self._validate()
            if self.step % self.checkpoint_every == 0 or self.step == self.max_steps or self.step in self.keep_steps:
                path = save_checkpoint(self.ckpt_dir, self.step, self.state_dict() if self.rank == 0 else None,
                                       rank=self.rank, keep=self.keep, keep_steps=self.keep_steps,
                                       world_size=self.world_size)
                self._log_line(f"saved {path}")
        if bar is not None:
            bar.close()
        if self._writer is not None:
            self._writer.close()
        return last

    def _finite(self, grad_norm, loss):
        """Whether a step may update the model. Under DDP only the gradient norm decides: it is
        the same on every rank after the all-reduce (a local loss is not), so all ranks agree."""
        finite = torch.isfinite(grad_norm)
        if self.world_size == 1:
            finite = finite & torch.isfinite(torch.as_tensor(loss))
        return bool(finite)

    def _skip_nonfinite(self, loss, grad_norm, batches):
        """Count a step with a NaN/inf loss or gradient: skip it, or stop when too many were."""
        self.optimizer.zero_grad(set_to_none=True)
        self.nonfinite_steps += 1
        utts = [u for b in batches for u in b.get("utt", [])]
        bad = [u for b in batches for u, x in zip(b.get("utt", []), b["feats"] if "feats" in b else b["wave"])
               if torch.is_tensor(x) and not bool(torch.isfinite(x).all())]
        named = bad or utts
        shown = ", ".join(named[:_EXAMPLES]) + (f" and {len(named) - _EXAMPLES} more" if len(named) > _EXAMPLES else "")
        batch = "a batch" if self.world_size == 1 else f"rank {self.rank}'s batch (another rank's may be the cause)"
        where = (f"utterance(s) with NaN/inf features: {shown}" if bad
                 else f"{batch} of utterances {shown}" if utts else batch)
        what = (f"step {self.step + 1}: loss {float(loss) / self.grad_accum:.4g}, gradient norm "
                f"{float(grad_norm):.4g} on {where}")
        if self.nonfinite_steps > self.max_nonfinite_steps:
            self._log_line(f"{what}: non-finite step {self.nonfinite_steps}, more than max_nonfinite_steps "
                           f"{self.max_nonfinite_steps}; stopping")
            raise NonFiniteLossError(
                f"{self.exp_dir}: {what}: {self.nonfinite_steps} step(s) with a NaN/inf loss or gradient, more than "
                f"max_nonfinite_steps {self.max_nonfinite_steps}. Check those utterances' audio and features, or "
                f"lower the learning rate; the newest checkpoint is left as it was")
        self._warn(f"{what}: skipped without updating the model ({self.nonfinite_steps} of at most "
                   f"{self.max_nonfinite_steps} non-finite steps)")

    def _validate(self):
        if self.rank == 0:
            model = self._unwrapped()
            model.eval()
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                with torch.no_grad():
                    values = self.valid_fn(model)
            model.train()
            self._scalars("valid", values)
            self._log_line(f"step {self.step} | valid | " + " | ".join(f"{k} {v:.4g}" for k, v in values.items()))
        distributed.barrier()
