"""One writer per run folder: an exclusive lock on ``<exp>/.lock`` while a run trains.

Two trainings writing checkpoints into the same folder corrupt each other's resume (each deletes
the other's checkpoints, and the newest one holds whichever wrote last). The lock is a POSIX
record lock (``fcntl.lockf``): the kernel drops it when its process ends, even by ``kill -9``, so
a crashed run never leaves a stale lock behind and the next run simply takes it. Unlike
``flock``, it is not shared with forked children (DataLoader workers), which may outlive a killed
trainer by a few seconds; it also works on NFS. It guards against other processes only.
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
    >>> import subprocess, sys, tempfile
    >>> d = tempfile.mkdtemp()
    >>> second = "from masr.train.lock import exp_dir_lock\\nwith exp_dir_lock(%r): pass" % d
    >>> with exp_dir_lock(d):  # a second process wants to train in the same folder
    ...     print(subprocess.run([sys.executable, "-c", second], capture_output=True, text=True).stderr.splitlines()[-1])
    masr.train.lock.ExpDirLocked: ...: another process (pid ...) is training in this folder; ...
    """
    os.makedirs(exp_dir, exist_ok=True)
    path = os.path.join(exp_dir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # EACCES or EAGAIN: held by another process
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ExpDirLocked(f"{exp_dir}: another process (pid {holder}) is training in this folder; wait for it "
                               f"to end, or stop it, before training here again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
