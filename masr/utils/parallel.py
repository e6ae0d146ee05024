"""Running one function over many items in ``nj`` worker processes.

Workers are *spawned*, not forked: a process forked after PyTorch started its OpenMP thread pool
can hang or crawl. Each worker is limited to one intra-op thread, so ``nj`` workers use ``nj``
cores, as Kaldi's ``--nj`` does.

The workers are a :class:`concurrent.futures.ProcessPoolExecutor`, not a
``multiprocessing.Pool``: when a worker dies (killed by the OOM killer, ``kill -9``) the pool
notices, and :func:`parallel_map` raises
:class:`~concurrent.futures.process.BrokenProcessPool` at once, where a ``Pool`` would replace
the worker and wait forever for the lost task's result.
"""

import itertools
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context

from masr.utils.process import die_with_parent


def _init_worker(parent=None):
    # A worker dies with the process that started it (kill -9, the OOM killer): no orphans.
    die_with_parent(parent)
    # Read by PyTorch / NumPy's BLAS when (and if) the worker imports them.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if "torch" in sys.modules:  # already imported with the spawning module
        sys.modules["torch"].set_num_threads(1)


def _run_chunk(fn, chunk):
    """``fn`` over one chunk of items, in a worker."""
    return [fn(item) for item in chunk]


def _chunks(items, size):
    it = iter(items)
    while True:
        chunk = list(itertools.islice(it, size))
        if not chunk:
            return
        yield chunk


def _stop(executor):
    """Cancel what has not started and end the workers now (as ``Pool.terminate`` does)."""
    stop = getattr(executor, "terminate_workers", None)   # Python >= 3.14
    if stop is not None:
        stop()
        return
    processes = dict(getattr(executor, "_processes", None) or {})
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes.values():
        try:
            if process.is_alive():
                process.terminate()
        except (ValueError, ProcessLookupError):   # already ended
            pass


def parallel_map(fn, items, nj=1, chunksize=16, ordered=False):
    """Apply ``fn`` to every item using ``nj`` processes; yields results.

    Arguments
    ---------
    fn : callable
        A picklable (module-level) function of one argument.
    items : iterable
    nj : int
        Number of processes; ``nj <= 1`` runs in this process.
    chunksize : int
        Items sent to a worker at a time.
    ordered : bool
        Yield results in input order (otherwise in completion order).

    Returns
    -------
    generator
        ``fn(item)`` for every item. The workers start when iteration starts; when it stops
        early (an exception, or the generator is closed) the workers are ended.

    Raises
    ------
    BrokenProcessPool
        A worker process died (killed by a signal, e.g. by the OOM killer) before its items were
        done; raised promptly, the remaining workers ended.
    Exception
        Whatever ``fn`` raised in a worker, re-raised here.

    Example
    -------
    >>> sorted(parallel_map(abs, [-2, 1, -3], nj=1))
    [1, 2, 3]
    """
    if nj <= 1:
        yield from map(fn, items)
        return
    executor = ProcessPoolExecutor(nj, mp_context=get_context("spawn"), initializer=_init_worker,
                                   initargs=(os.getpid(),))
    finished = False
    try:
        if ordered:
            yield from executor.map(fn, items, chunksize=max(1, chunksize))
        else:
            pending = {executor.submit(_run_chunk, fn, chunk) for chunk in _chunks(items, max(1, chunksize))}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield from future.result()
        finished = True
    finally:
        if finished:
            executor.shutdown(wait=True)
        else:
            _stop(executor)
