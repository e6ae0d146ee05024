"""masr.utils.parallel: parallel_map in spawned workers, and a dead worker raises instead of hanging."""

import os
import signal

import pytest
from concurrent.futures.process import BrokenProcessPool

from masr.utils.parallel import parallel_map
from tests.helpers.deadline import deadline


def square(x):
    return x * x


def fail_on_three(x):
    if x == 3:
        raise ValueError("three is bad")
    return x


def die_on_three(x):
    """Kill this worker process for item 3, as the OOM killer (SIGKILL) would."""
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def test_inline_and_parallel_give_the_same_results():
    items = list(range(10))
    with deadline(60):
        assert list(parallel_map(square, items, nj=1)) == [x * x for x in items]
        assert list(parallel_map(square, items, nj=2, chunksize=3, ordered=True)) == [x * x for x in items]
        assert sorted(parallel_map(square, iter(items), nj=2, chunksize=4)) == [x * x for x in items]


def test_a_worker_exception_reaches_the_caller():
    with deadline(60), pytest.raises(ValueError, match="three is bad"):
        list(parallel_map(fail_on_three, range(6), nj=2, chunksize=1))


@pytest.mark.parametrize("ordered", [False, True])
def test_a_killed_worker_raises_broken_process_pool_instead_of_hanging(ordered):
    # multiprocessing.Pool replaces a dead worker and waits forever for its lost task
    with deadline(60), pytest.raises(BrokenProcessPool):
        list(parallel_map(die_on_three, range(8), nj=2, chunksize=1, ordered=ordered))
