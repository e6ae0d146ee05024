"""The machine a measurement or a report was made on, as one line of text.

Benchmarks print it with every figure and ``masr.report.results`` writes it in the header of
``RESULTS.md`` (``benchmarks/machine.py`` re-exports :func:`describe_machine`, so both use this one
implementation). Only standard-library probes (``/proc`` on Linux) and, when installed, PyTorch are
used; every probe that fails is left out rather than raising.
"""

import os
import platform


def describe_machine():
    """One line: CPU model, cores, RAM, GPU (if any), PyTorch and Python versions.

    Returns
    -------
    str
        Parts joined by ``"; "``, e.g. ``"AMD EPYC 7B13, 16 cores; 125 GiB RAM; torch 2.4.0;
        Python 3.11.9"``. The CPU model comes from ``/proc/cpuinfo`` (else
        ``platform.processor()``), the RAM from ``/proc/meminfo``, the GPU is the name of CUDA
        device 0 when CUDA is available.

    Example
    -------
    >>> line = describe_machine()
    >>> "cores" in line and "Python" in line
    True
    """
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    parts = [f"{cpu}, {os.cpu_count()} cores"]
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line.split()[1] for line in f if line.startswith("MemTotal")))
        parts.append(f"{kb / 2**20:.0f} GiB RAM")
    except (OSError, StopIteration):
        pass
    try:
        import torch

        if torch.cuda.is_available():
            parts.append(f"GPU {torch.cuda.get_device_name(0)}")
        parts.append(f"torch {torch.__version__}")
    except ImportError:
        pass
    parts.append(f"Python {platform.python_version()}")
    return "; ".join(parts)
