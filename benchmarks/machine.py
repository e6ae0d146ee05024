"""The machine a benchmark ran on, printed with every figure (implemented in ``masr.utils.machine``)."""

from masr.utils.machine import describe_machine

__all__ = ["describe_machine"]
