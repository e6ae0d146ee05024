"""The machine a benchmark ran on, printed with every figure (implemented in ``masr.utils.machine``),
and this process's memory as the kernel counts it."""

from masr.utils.machine import describe_machine

__all__ = ["describe_machine", "rss_kib"]


def rss_kib(field):
    """A memory figure of this process from ``/proc/self/status`` in KiB: ``"VmRSS"`` (resident now)
    or ``"VmHWM"`` (peak resident)."""
    with open("/proc/self/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith(field + ":")))
