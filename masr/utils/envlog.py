"""A record of the environment a run used: ``<folder>/env.log`` (as SpeechBrain writes).

What was run, where and with what: date, command line, host, Python, platform, the versions of
torch, torchaudio, speechbrain, numpy and of every distribution the project declares
(``pyproject.toml``: dependencies and extras), CUDA (available or not, devices, the CUDA version
torch was built with, ``nvidia-smi``'s GPU list when that program exists), CPU count, and the git
commit of the masr checkout with its dirty state. Every probe that fails writes ``unknown`` or
the reason instead of raising: a run is never stopped by its environment record.

Call it once per run, on rank 0 only under DDP (every rank would write the same file).
"""

import datetime
import importlib.metadata
import os
import platform
import re
import shlex
import shutil
import socket
import subprocess
import sys

from masr.utils.fileio import atomic_open

# The folder holding the masr package: the checkout (or site-packages for an installed copy).
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Reported first, in this order, whether the project declares them or not.
MAIN_DISTRIBUTIONS = ("torch", "torchaudio", "speechbrain", "numpy")

_TIMEOUT = 10  # seconds per external program (git, nvidia-smi)


def write_env_log(folder, name="env.log"):
    """Write the environment record to ``<folder>/env.log``, atomically.

    Arguments
    ---------
    folder : str or os.PathLike
        The run's folder (created when missing).
    name : str
        The file name inside ``folder``.

    Returns
    -------
    str
        The path of the file written.

    Raises
    ------
    OSError
        Only when the file itself cannot be written; probes that fail are reported in the file.

    Example
    -------
    >>> import tempfile
    >>> path = write_env_log(tempfile.mkdtemp())
    >>> text = open(path).read()
    >>> "torch:" in text and "git commit:" in text and "CUDA available:" in text
    True
    """
    path = os.path.join(os.fspath(folder), name)
    text = env_report()
    with atomic_open(path) as f:
        f.write(text)
    return path


def env_report():
    """The text of ``env.log``: one ``key: value`` line per fact, then indented lists.

    Returns
    -------
    str
        Ends with a newline.

    Example
    -------
    >>> report = env_report()
    >>> report.splitlines()[0].startswith("date: ")
    True
    """
    _import_quietly("torch")  # for torch.__version__ (with its build, e.g. +cu130) and the CUDA lines
    lines = [
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"command: {_command_line()}",
        f"working directory: {_safe(os.getcwd)}",
        f"host: {_safe(socket.gethostname)}",
        f"python: {sys.version.splitlines()[0]} ({sys.executable})",
        f"platform: {_safe(platform.platform)}",
        f"masr: {ROOT}",
    ]
    commit, dirty = git_state(ROOT)
    lines.append(f"git commit: {commit}")
    lines.append(f"git dirty: {dirty}")
    for dist in MAIN_DISTRIBUTIONS:
        lines.append(f"{dist}: {_module_version(dist)}")
    lines.extend(_cuda_lines())
    lines.append(f"CPU count: {os.cpu_count()}"
                 + (f" ({len(os.sched_getaffinity(0))} usable)" if hasattr(os, "sched_getaffinity") else ""))
    lines.append("declared distributions:")
    for dist in declared_distributions():
        lines.append(f"  {dist}=={_distribution_version(dist)}")
    return "\n".join(lines) + "\n"


def git_state(path):
    """The commit checked out at ``path`` and whether the checkout has uncommitted changes.

    ``git`` runs with a fixed argument list, no shell, ``cwd=path`` and a time limit. ``path``
    must be the top of the checkout: an installed copy of masr inside some other repository
    (site-packages in a ``.venv`` of a clone) is not that repository's commit.

    Arguments
    ---------
    path : str
        The folder holding the ``masr`` package.

    Returns
    -------
    tuple of str
        ``(sha, dirty)``: ``dirty`` is ``"no"``, ``"yes (N changed paths)"`` or ``"unknown"``;
        both are ``"unknown"`` when git is missing, fails, or ``path`` is not a checkout's top.

    Example
    -------
    >>> import tempfile
    >>> git_state(tempfile.mkdtemp())
    ('unknown', 'unknown')
    """
    def git(*args):
        done = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, timeout=_TIMEOUT,
                              check=True, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
        return done.stdout.strip()

    try:
        top = git("rev-parse", "--show-toplevel")
        if os.path.realpath(top) != os.path.realpath(path):
            return "unknown", "unknown"
        sha = git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError, ValueError):
        return "unknown", "unknown"
    try:
        changed = git("status", "--porcelain").splitlines()
    except (OSError, subprocess.SubprocessError, ValueError):
        return sha, "unknown"
    return sha, f"yes ({len(changed)} changed paths)" if changed else "no"


def declared_distributions():
    """The names of the distributions the project declares: dependencies, then extras' packages.

    Read from the checkout's ``pyproject.toml`` (the code that runs) when there is one and
    ``tomllib`` exists (Python >= 3.11), else from the installed masr's metadata.

    Returns
    -------
    list of str
        Distribution names in declaration order, without duplicates; empty when neither source
        can be read.

    Example
    -------
    >>> "torch" in declared_distributions()
    True
    """
    requirements = _pyproject_requirements()
    if requirements is None:
        try:
            requirements = importlib.metadata.requires("masr") or []
        except importlib.metadata.PackageNotFoundError:
            requirements = []
    names = []
    for requirement in requirements:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        if match and match.group(1) not in names:
            names.append(match.group(1))
    return names


def _pyproject_requirements():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return None
    try:
        with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
            project = tomllib.load(f).get("project", {})
    except (OSError, ValueError):
        return None
    if project.get("name") != "masr":
        return None
    extras = project.get("optional-dependencies", {})
    return list(project.get("dependencies", [])) + [r for reqs in extras.values() for r in reqs]


def _command_line():
    argv = list(sys.argv)
    if not argv:
        return "unknown"
    if argv[0] == "-c":
        return "python -c " + shlex.join(argv[1:])
    return shlex.join(argv)


def _safe(function):
    try:
        return function()
    except Exception as e:  # noqa: BLE001 - a probe never stops the run
        return f"unknown ({type(e).__name__}: {e})"


def _distribution_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
    except Exception as e:  # noqa: BLE001 - broken metadata
        return f"unknown ({type(e).__name__})"


def _import_quietly(name):
    try:
        __import__(name)
    except Exception:  # noqa: BLE001 - reported as not installed / unknown where it is used
        pass


def _module_version(name):
    """``module.__version__`` of an imported module (torch's carries its build, e.g. ``+cu130``),
    else the installed distribution's version (nothing is imported for it)."""
    version = getattr(sys.modules.get(name), "__version__", None)
    return str(version) if version is not None else _distribution_version(name)


def _cuda_lines():
    lines = []
    try:
        import torch

        available = torch.cuda.is_available()
        lines.append(f"CUDA available: {available}")
        lines.append(f"torch CUDA version: {torch.version.cuda}")
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        lines.append(f"cuDNN version: {cudnn}")
        if available:
            for index in range(torch.cuda.device_count()):
                lines.append(f"CUDA device {index}: {torch.cuda.get_device_name(index)}")
    except Exception as e:  # noqa: BLE001 - torch missing or CUDA initialisation failing
        lines.append(f"CUDA available: unknown ({type(e).__name__}: {e})")
    smi = _nvidia_smi()
    lines.append(f"nvidia-smi:{smi}" if smi.startswith("\n") else f"nvidia-smi: {smi}")
    return lines


def _nvidia_smi():
    """GPU names, driver and memory from ``nvidia-smi`` when the program exists."""
    program = shutil.which("nvidia-smi")
    if program is None:
        return "not found"
    try:
        done = subprocess.run([program, "--query-gpu=index,name,driver_version,memory.total",
                               "--format=csv,noheader"], capture_output=True, text=True, timeout=_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as e:
        return f"failed ({type(e).__name__}: {e})"
    if done.returncode != 0:
        return f"failed (exit status {done.returncode}: {(done.stderr or done.stdout).strip()[:200]})"
    gpus = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    return "".join(f"\n  {gpu}" for gpu in gpus) if gpus else "no GPU listed"
