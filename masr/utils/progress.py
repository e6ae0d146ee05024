"""Progress bars for the long loops of the toolkit (corpus preparation, feature extraction,
embedding, test-set prediction): one helper, :func:`progress`, around ``tqdm``.

A bar is shown only where someone watches it:

- on rank 0 only (the ``RANK`` environment variable of ``torchrun``; unset means rank 0);
- only when stderr is a terminal, so CI logs and recipe logs (``... 2>&1 | tee log``) get no
  progress lines. ``enabled=True`` or ``MASR_PROGRESS=1`` in the environment forces a bar
  into a log (redrawn at most every 30 seconds there), ``MASR_PROGRESS=0`` hides every bar;
- never with ``progress: false`` in a step's config (pass :func:`from_config`'s answer as
  ``enabled``).

Shown or not, the items iterated are exactly those of the wrapped iterable, in its order.
"""

import os
import sys

#: Environment variable: ``1`` forces bars on (also in logs), ``0`` turns them off.
ENV_VAR = "MASR_PROGRESS"

_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def _rank():
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


def _stderr_is_tty():
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False


def progress_enabled(enabled=None):
    """Whether :func:`progress` would show a bar (see the module docstring).

    Arguments
    ---------
    enabled : bool or None
        None: shown on a terminal (or as ``MASR_PROGRESS`` says); True: forced on; False: off.
        Ranks other than 0 never show a bar.

    Returns
    -------
    bool

    Example
    -------
    >>> progress_enabled(False)
    False
    """
    if _rank() != 0 or enabled is False:
        return False
    if enabled:
        return True
    env = os.environ.get(ENV_VAR, "").strip().lower()
    if env in _ON:
        return True
    if env in _OFF:
        return False
    return _stderr_is_tty()


def enabled(setting):
    """The ``enabled`` argument of :func:`progress` for a config's ``progress:`` value: False with
    ``false``, else None (a bar on a terminal only; ``true`` does not force bars into logs).

    Example
    -------
    >>> enabled(False), enabled(True)
    (False, None)
    """
    return False if setting is False else None


def from_config(config, key="progress"):
    """The ``enabled`` argument of :func:`progress` for a step's config: False with
    ``progress: false``, else None (a bar on a terminal only; ``progress: true`` does not force
    bars into logs).

    Example
    -------
    >>> from_config({"progress": False}), from_config({"progress": True}), from_config({})
    (False, None, None)
    """
    return False if (config or {}).get(key, True) is False else None


def progress(iterable=None, total=None, desc=None, enabled=None, unit="it", **kwargs):
    """Wrap ``iterable`` in a ``tqdm`` bar where one should be shown (module docstring).

    Arguments
    ---------
    iterable : iterable or None
        What to iterate; None for a bar advanced by hand with ``update(n)``.
    total : int or None
        Expected number of items (default ``len(iterable)`` where it has one).
    desc : str or None
        Label in front of the bar.
    enabled : bool or None
        None: on a terminal, rank 0; True: forced (still rank 0 only); False: off.
        :func:`from_config` turns a config's ``progress`` key into this value.
    unit : str
        What one item is (``utt``, ``file``, ...).
    **kwargs
        Further ``tqdm`` arguments.

    Returns
    -------
    tqdm.tqdm
        Iterate it as ``iterable`` (same items, same order), or call ``update(n)``; usable as a
        context manager. When no bar is shown it is a disabled ``tqdm`` that prints nothing.

    Example
    -------
    >>> list(progress(iter([3, 1, 2]), total=3, desc="items", enabled=False))
    [3, 1, 2]
    >>> with progress(total=10, desc="utterances", enabled=False) as bar:
    ...     bar.update(4)
    """
    from tqdm import tqdm

    shown = progress_enabled(enabled)
    if shown:
        kwargs.setdefault("dynamic_ncols", True)
        kwargs.setdefault("mininterval", 0.1 if _stderr_is_tty() else 30.0)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not shown, file=sys.stderr, **kwargs)
