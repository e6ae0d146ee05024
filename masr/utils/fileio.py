"""Atomic file writes: a reader never sees a half-written file.

Everything the toolkit writes (data-dir files, feature archives, statistics, checkpoints) goes
to a temporary file in the destination folder first and is renamed into place once complete;
``os.replace`` is atomic on POSIX file systems when both names are in the same folder.
"""

import contextlib
import os
import tempfile


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path, mode="w", encoding="utf-8", durable=False):
    """Open a temporary file that replaces ``path`` only if the block finishes without error.

    Arguments
    ---------
    path : str or os.PathLike
        The final file name. Its folder is created when missing.
    mode : str
        ``"w"`` (text) or ``"wb"`` (binary).
    encoding : str
        Text encoding (ignored in binary mode).
    durable : bool
        Also ``fsync`` before renaming, so the content survives a power loss (slow on many
        small files; a killed process never leaves a partial file either way).

    Yields
    ------
    file object
        Write to it; on error the temporary file is removed and ``path`` is left untouched.

    Example
    -------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> with atomic_open(os.path.join(d, "a.txt")) as f:
    ...     _ = f.write("hello\\n")
    >>> open(os.path.join(d, "a.txt")).read()
    'hello\\n'
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the mode a plain open() would
    try:
        with open(fd, mode, **({} if "b" in mode else {"encoding": encoding})) as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def fsync_file(path):
    """Flush a written file's content to disk (``fsync``), so a power loss cannot truncate it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path):
    """Flush a folder's entries to disk: needed after creating, renaming or removing files in it,
    or a power loss can undo the rename although the file's content was flushed."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path):
    """``fsync`` every file and folder under ``path`` (and ``path`` itself), deepest first."""
    for folder, _, files in os.walk(path, topdown=False):
        for name in files:
            fsync_file(os.path.join(folder, name))
        fsync_dir(folder)
