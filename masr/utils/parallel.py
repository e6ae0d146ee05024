"""Running one function over many items in ``nj`` worker processes.

Workers are *spawned*, not forked: a process forked after PyTorch started its OpenMP thread pool
can hang or crawl. Each worker is limited to one intra-op thread, so ``nj`` workers use ``nj``
cores, as Kaldi's ``--nj`` does.
"""

import os
import sys
from multiprocessing import get_context


def _init_worker():
    # Read by PyTorch / NumPy's BLAS when (and if) the worker imports them.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if "torch" in sys.modules:  # already imported with the spawning module
        sys.modules["torch"].set_num_threads(1)


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

    Example
    -------
    >>> sorted(parallel_map(abs, [-2, 1, -3], nj=1))
    [1, 2, 3]
    """
    if nj <= 1:
        yield from map(fn, items)
        return
    with get_context("spawn").Pool(nj, initializer=_init_worker) as pool:
        imap = pool.imap if ordered else pool.imap_unordered
        yield from imap(fn, items, chunksize=chunksize)
