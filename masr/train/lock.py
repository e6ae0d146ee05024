"""One writer per run folder: an exclusive lock on ``<exp>/.lock`` while a run trains.

Two trainings writing checkpoints into the same folder corrupt each other's resume (each deletes
the other's checkpoints, and the newest one holds whichever wrote last). The lock is
``fcntl.flock``: the kernel drops it when its process ends, even by ``kill -9``, so a crashed run
never leaves a stale lock behind, and the next run simply takes it.
"""

import contextlib
import fcntl
import os

#: The lock file in a run folder; it holds the pid of the process that has the lock.
LOCK_FILE = ".lock"


class ExpDirLocked(RuntimeError):
    """Another process is training in the same run folder."""


@contextlib.contextmanager
def exp_dir_lock(exp_dir):
    """Hold the exclusive lock of ``exp_dir`` for the block (the folder is created if missing).

    Raises
    ------
    ExpDirLocked
        At once, without waiting, when another process holds it; the message names the folder
        and that process's pid.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with exp_dir_lock(d):
    ...     with exp_dir_lock(d):
    ...         pass
    Traceback (most recent call last):
    ...
    masr.train.lock.ExpDirLocked: ...: another process (pid ...) is training in this folder; ...
    """
    os.makedirs(exp_dir, exist_ok=True)
    path = os.path.join(exp_dir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ExpDirLocked(f"{exp_dir}: another process (pid {holder}) is training in this folder; wait for it "
                               f"to end, or stop it, before training here again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
