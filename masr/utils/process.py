"""Child processes that do not outlive their parent.

A process killed with ``kill -9`` (by a user, a scheduler, the OOM killer) cannot stop its
children. Without help they live on as orphans: torchrun's workers go on training and writing
checkpoints, feature-extraction workers go on computing into files nobody will rename. Linux
lets a child ask to be killed when its parent dies (``prctl(PR_SET_PDEATHSIG)``).
"""

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent=None, sig=signal.SIGKILL):
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux; elsewhere
    nothing is done). Call it first thing in a child process.

    Arguments
    ---------
    parent : int or None
        The parent's pid as the parent knew it (``os.getpid()`` there): when this process's
        parent is already another one, the parent died before the request, and this process
        exits at once. ``None``: the parent at the time of the call.
    sig : signal.Signals

    The request follows the thread that created the child, so the parent must create its
    children from a thread that lives as long as it does (the main thread, as ``torchrun`` and
    :func:`masr.utils.parallel.parallel_map` do).

    Returns
    -------
    bool
        Whether the request was made.
    """
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid() if parent is None else parent
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    return True
