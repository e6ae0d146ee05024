"""A time limit for a block of a test: a regression that would hang fails instead."""

import contextlib
import signal


@contextlib.contextmanager
def deadline(seconds):
    """Fail (instead of hanging the test run) when the block takes longer than ``seconds``."""
    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: hung")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
