"""Learning-rate schedules: linear warmup, then decay (as ``LambdaLR`` multipliers)."""

import math

import torch


def warmup_decay_factor(step, warmup_steps, total_steps, decay="cosine", min_ratio=0.0):
    """The LR multiplier at optimizer step ``step`` (0-based: the factor for the step about to run).

    Arguments
    ---------
    step : int
    warmup_steps : int
        Linear ramp from 1/warmup to 1 over these steps.
    total_steps : int
        Steps of the whole run (decay reaches ``min_ratio`` here).
    decay : str
        ``"cosine"``, ``"linear"``, ``"inverse_sqrt"`` (Transformer/BEST-RQ style) or ``"constant"``.
    min_ratio : float
        Floor of the multiplier after warmup.

    Example
    -------
    >>> [round(warmup_decay_factor(s, 2, 6, "linear"), 2) for s in range(7)]
    [0.5, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay == "constant":
        return 1.0
    if decay == "inverse_sqrt":
        return max(min_ratio, math.sqrt(max(warmup_steps, 1) / (step + 1)))
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if decay == "linear":
        value = 1.0 - progress
    elif decay == "cosine":
        value = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"unknown decay '{decay}' (cosine, linear, inverse_sqrt, constant)")
    return min_ratio + (1.0 - min_ratio) * value


class WarmupDecay(torch.optim.lr_scheduler.LambdaLR):
    """``LambdaLR`` with :func:`warmup_decay_factor`; step it once per optimizer step.

    Example
    -------
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = WarmupDecay(opt, warmup_steps=2, total_steps=4, decay="linear")
    >>> lrs = []
    >>> for _ in range(4):
    ...     lrs.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
    >>> lrs
    [0.5, 1.0, 1.0, 0.5]
    """

    def __init__(self, optimizer, warmup_steps, total_steps, decay="cosine", min_ratio=0.0):
        self.warmup_steps, self.total_steps, self.decay, self.min_ratio = warmup_steps, total_steps, decay, min_ratio
        super().__init__(optimizer, self._factor)

    def _factor(self, step):
        return warmup_decay_factor(step, self.warmup_steps, self.total_steps, self.decay, self.min_ratio)
