"""Downloading and unpacking corpora, shared by every corpus module.

- :func:`download` fetches a URL (``http(s)://`` or ``file://``) into a file: resumable
  (``<dest>.part`` plus an HTTP ``Range`` request), checked against a SHA-256 or MD5 sum, and
  renamed into place only when complete; a file already there and verified is not fetched again.
- :func:`safe_extract` unpacks a tar (any compression) or zip archive, refusing members that
  would land outside the target folder (through ``..``, absolute paths, or chains of the
  archive's own symbolic links), and marks a finished extraction so that it is done once and an
  interrupted one is redone.
- :func:`require_manual` stops with instructions for corpora behind a licence page.

Why this module is long: resumable checked downloads and safe archive extraction are the security
boundary of every corpus module; the link-chain checks of :func:`safe_extract` need their helpers
beside them to be reviewable.
"""

import argparse
import collections
import hashlib
import http.client
import logging
import os
import re
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile

from masr.utils.fileio import atomic_open

logger = logging.getLogger(__name__)

#: Bytes read from the network at a time.
CHUNK_SIZE = 1 << 20

#: Symbolic links followed at most while resolving one path of an archive (Linux's MAXSYMLINKS);
#: more is refused as a loop.
MAX_LINK_DEPTH = 40


class DownloadError(RuntimeError):
    """A download that failed or was incomplete; the message names the URL and the file."""


class ChecksumError(DownloadError):
    """Downloaded content whose checksum is not the expected one."""


class UnsafeArchiveError(RuntimeError):
    """An archive member that would be written outside the target folder (or is a device)."""


class ManualDownloadError(FileNotFoundError):
    """A licensed corpus that has to be downloaded by hand."""


def file_checksum(path, algorithm="sha256"):
    """Hex digest of a file's content.

    Arguments
    ---------
    path : str
        The file.
    algorithm : str
        A :mod:`hashlib` name, e.g. ``"sha256"`` or ``"md5"``.

    Returns
    -------
    str

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> _ = open(p, "wb").write(b"abc")
    >>> file_checksum(p, "md5")
    '900150983cd24fb0d6963f7d28e17f72'
    """
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_SIZE), b""):
            h.update(block)
    return h.hexdigest()


def _verify(path, sha256, md5):
    """``None`` when ``path`` has the expected sums (or none is given), else ``(algo, expected, got)``."""
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected is not None:
            got = file_checksum(path, algorithm)
            if got.lower() != expected.lower():
                return algorithm, expected, got
    return None


def _content_range(response):
    """(first byte, total size or None) from a 206 response's ``Content-Range``, or None."""
    value = response.headers.get("Content-Range", "")
    try:
        unit, rest = value.split(" ", 1)
        span, total = rest.split("/", 1)
        first = int(span.split("-", 1)[0])
        return first, (None if total.strip() == "*" else int(total))
    except ValueError:
        return None


def _fetch(url, part, progress, timeout):
    """Append the rest of ``url`` to ``part``; returns the expected total size (or None)."""
    offset = os.path.getsize(part) if os.path.exists(part) else 0
    request = urllib.request.Request(url, headers={"User-Agent": "masr-download/1"})
    if offset and urllib.parse.urlsplit(url).scheme in ("http", "https"):
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: the .part may already be complete
            total = (e.headers.get("Content-Range") or "").rpartition("/")[2]
            if total.isdigit() and int(total) == offset:
                return offset
            os.remove(part)  # a stale .part longer than the file: start again
            return _fetch(url, part, progress, timeout)
        raise
    with response:
        status = getattr(response, "status", None)
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        resumed = offset > 0 and status == 206
        if resumed:
            content_range = _content_range(response)
            if content_range is None or content_range[0] != offset:
                raise DownloadError(f"{url}: server answered the range request from byte {offset} with "
                                    f"'{response.headers.get('Content-Range')}'")
            total = content_range[1] if content_range[1] is not None else (
                offset + length if length is not None else None)
        else:
            if offset:
                logger.info("%s: server ignored the range request; downloading from the start", url)
            offset, total = 0, length
        from tqdm import tqdm

        with open(part, "ab" if resumed else "wb") as f, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=os.path.basename(part)[:-len(".part")], disable=not progress,
        ) as bar:
            for block in iter(lambda: response.read(CHUNK_SIZE), b""):
                f.write(block)
                bar.update(len(block))
    return total


def download(url, dest, sha256=None, md5=None, progress=True, retries=3, timeout=60):
    """Download ``url`` into the file ``dest``, resuming an earlier partial download.

    Bytes go to ``dest + ".part"``; a later call continues it with an HTTP ``Range`` request
    (a server that ignores the range sends the whole file, which then replaces the ``.part``).
    The ``.part`` becomes ``dest`` only once it has the announced length and the expected
    checksum. ``dest`` already present is kept when it verifies (or when no checksum is given);
    a present ``dest`` with the wrong checksum is downloaded again.

    Arguments
    ---------
    url : str
        ``http://``, ``https://`` or ``file://`` URL.
    dest : str
        The file to write (its folder is created).
    sha256, md5 : str or None
        Expected hex digests; either, both or neither.
    progress : bool
        Show a tqdm progress bar.
    retries : int
        Further attempts, each resuming, after a dropped connection or a server error (5xx).
    timeout : float
        Seconds to wait for the server on connect and on each read.

    Returns
    -------
    str
        ``dest``.

    Raises
    ------
    ChecksumError
        Content with the wrong checksum (the ``.part`` is deleted); names the URL, the file, the
        expected and the computed sums.
    DownloadError
        Incomplete content, an HTTP error or an unreachable server (a ``.part`` is kept to resume).

    Example
    -------
    >>> import tempfile, os, pathlib
    >>> d = tempfile.mkdtemp()
    >>> src = pathlib.Path(d, "src.txt"); _ = src.write_bytes(b"abc")
    >>> out = download(src.as_uri(), os.path.join(d, "out", "abc.txt"), md5="900150983cd24fb0d6963f7d28e17f72",
    ...                progress=False)
    >>> open(out, "rb").read()
    b'abc'
    """
    dest = os.fspath(dest)
    if os.path.exists(dest):
        bad = _verify(dest, sha256, md5)
        if bad is None:
            logger.info("%s: already downloaded", dest)
            return dest
        logger.warning("%s: %s is %s, expected %s; downloading it again", dest, bad[0], bad[2], bad[1])
        os.remove(dest)
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    part = dest + ".part"
    for attempt in range(retries + 1):
        try:
            total = _fetch(url, part, progress, timeout)
        except urllib.error.HTTPError as e:
            if e.code < 500:
                raise DownloadError(f"{url}: HTTP {e.code} {e.reason} (downloading to {dest})") from None
            problem = f"HTTP {e.code} {e.reason}"
        except (OSError, http.client.HTTPException) as e:  # URLError, reset, timeout, IncompleteRead
            problem = str(e) or type(e).__name__
        else:
            size = os.path.getsize(part)
            if total is None or size == total:
                break
            problem = f"connection closed after {size} of {total} bytes"
        if attempt == retries:
            raise DownloadError(f"{url}: {problem} (downloading to {dest}; rerun to resume from {part})")
        logger.warning("%s: %s; resuming (attempt %d of %d)", url, problem, attempt + 2, retries + 1)
        time.sleep(min(2 ** attempt, 30))
    bad = _verify(part, sha256, md5)
    if bad is not None:
        os.remove(part)
        algorithm, expected, got = bad
        raise ChecksumError(f"{url}: {algorithm} of the downloaded file {dest} is {got}, expected {expected} "
                            f"(file deleted)")
    os.replace(part, dest)
    return dest


# ----------------------------------------------------------------------------- extraction


def _inside(root, path):
    """Whether the normalised ``path`` is ``root`` or lies below it."""
    root = os.path.abspath(root)
    return os.path.commonpath([root, os.path.abspath(path)]) == root


def _check_member(archive, target, name, link=None, hardlink=False):
    """Raise :class:`UnsafeArchiveError` unless member ``name`` (and its ``link``) stays in ``target``."""

    def refuse(reason):
        raise UnsafeArchiveError(f"{archive}: refusing to extract member '{name}': {reason}; nothing was extracted")

    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or os.path.isabs(name) or re.match(r"[A-Za-z]:", name):
        refuse("absolute path")
    if ".." in parts:
        refuse("'..' in its path")
    if not _inside(target, os.path.join(target, name)):
        refuse("it would be written outside the target folder")
    if link is not None:
        # A symlink is resolved from the member's folder, a tar hardlink from the archive root.
        base = target if hardlink else os.path.join(target, os.path.dirname(name))
        if os.path.isabs(link) or not _inside(target, os.path.join(base, link)):
            refuse(f"{'hard' if hardlink else 'symbolic'} link to '{link}' outside the target folder")


class _Escape(Exception):
    """A path of the simulated extraction that leaves the target folder, or a link loop."""

    def __init__(self, loop, via):
        super().__init__(via)
        self.loop = loop  # True: too many links followed; False: the path leaves the target
        self.via = via  # the archive member (a symbolic link) whose target was being followed


def _components(path):
    return [c for c in path.split("/") if c not in ("", ".")]


def _resolve(links, start, path, follow_last=True):
    """Resolve ``path`` from the folder ``start`` as the OS would after extraction, following
    the archive's symbolic links, component by component.

    Arguments
    ---------
    links : dict
        Components (tuple, below the target) -> (link target, member name), of the symbolic links
        extracted so far.
    start : tuple of str
        The folder ``path`` is relative to, as components below the target (``()``: the target).
    path : str
        A relative ``/``-separated path (a member name or a link target).
    follow_last : bool
        Follow a symbolic link in the last component too.

    Returns
    -------
    tuple of str
        The components of the resolved path below the target. Components that are not (yet)
        links are taken as folders.

    Raises
    ------
    _Escape
        When the path leaves the target (a ``..`` above it, or an absolute link target), or when
        more than ``MAX_LINK_DEPTH`` links are followed (a loop).

    Example
    -------
    >>> links = {("d", "up"): ("..", "d/up")}
    >>> _resolve(links, (), "d/up/x")
    ('x',)
    >>> _resolve(links, ("d",), "up/..")
    Traceback (most recent call last):
    ...
    masr.corpora.download._Escape: d/up
    """
    pending = _components(path)[::-1]
    here, hops, via = list(start), 0, None
    while pending:
        part = pending.pop()
        if part == "..":
            if not here:
                raise _Escape(False, via)
            here.pop()
            continue
        link = links.get(tuple(here) + (part,))
        if link is None or not (pending or follow_last):
            here.append(part)
            continue
        hops += 1
        via = link[1]
        if hops > MAX_LINK_DEPTH:
            raise _Escape(True, via)
        if link[0].startswith("/"):
            raise _Escape(False, via)
        pending.extend(_components(link[0])[::-1])
    return tuple(here)


def _check_links(archive, members):
    """Simulate the extraction of tar ``members`` in order and refuse any member whose path, or
    symbolic link, leads outside the target once the archive's own links are followed.

    Each member's path is resolved through the links extracted before it (tarfile creates the
    folders above a member, and writes a file, through existing links); each link's target is
    resolved when it is extracted and again once all members are (a later link can redirect an
    earlier one); a hard link's target is resolved from the archive root; folders are resolved
    again at the end (their permissions and times are set last). Chains deeper than
    ``MAX_LINK_DEPTH`` links are refused as loops.
    """

    def refuse(name, err, link=None, hard=False):
        if err.loop:
            reason = f"symbolic link loop or chain of more than {MAX_LINK_DEPTH} links (through '{err.via}')"
        elif link is not None:
            reason = (f"{'hard' if hard else 'symbolic'} link to '{link}' leads outside the target folder "
                      f"through the archive's symbolic link '{err.via}'")
        else:
            reason = f"its path leads outside the target folder through the archive's symbolic link '{err.via}'"
        raise UnsafeArchiveError(f"{archive}: refusing to extract member '{name}': {reason}; nothing was extracted")

    links, folders = {}, []
    for m in members:
        parts = _components(m.name)
        try:
            if m.issym():
                if not parts:
                    raise UnsafeArchiveError(f"{archive}: refusing to extract member '{m.name}': symbolic link "
                                             f"in place of the target folder; nothing was extracted")
                where = _resolve(links, (), "/".join(parts[:-1])) + (parts[-1],)
                links[where] = (m.linkname, m.name)
            else:
                _resolve(links, (), m.name)
                if m.isdir():
                    folders.append(m.name)
        except _Escape as err:
            refuse(m.name, err)
        try:
            if m.issym():
                _resolve(links, where[:-1], m.linkname)
            elif m.islnk():
                _resolve(links, (), m.linkname)
        except _Escape as err:
            refuse(m.name, err, m.linkname, m.islnk())
    for where, (link, name) in links.items():
        try:
            _resolve(links, where[:-1], link)
        except _Escape as err:
            refuse(name, err, link)
    for name in folders:
        try:
            _resolve(links, (), name)
        except _Escape as err:
            refuse(name, err)


def _check_archive(archive, target):
    """Open ``archive`` and check every member; returns ``(kind, members)``."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            infos = z.infolist()
        for info in infos:
            _check_member(archive, target, info.filename)
        return "zip", infos
    try:
        with tarfile.open(archive, "r:*") as t:
            members = t.getmembers()
    except tarfile.TarError as e:
        raise UnsafeArchiveError(f"{archive}: not a readable tar or zip archive ({e})") from None
    for m in members:
        if m.ischr() or m.isblk() or m.isfifo():
            raise UnsafeArchiveError(f"{archive}: refusing to extract member '{m.name}': device file or FIFO; "
                                     f"nothing was extracted")
        _check_member(archive, target, m.name, m.linkname if (m.issym() or m.islnk()) else None, m.islnk())
    _check_links(archive, members)
    return "tar", members


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def safe_extract(archive, target):
    """Unpack a tar (any compression) or zip archive into ``target``, safely and once.

    Every member is checked before anything is written: absolute paths, ``..`` components,
    symbolic or hard links leading outside ``target`` (absolute link targets included), paths
    or links that leave ``target`` once the archive's own symbolic links are followed (chains such
    as ``a -> b``, ``b -> c/..`` are resolved through a simulation of the extracted tree, and
    loops or chains of more than ``MAX_LINK_DEPTH`` links are refused) and device files or FIFOs
    are refused. This check alone keeps the extraction inside ``target``; where Python has it,
    tarfile's ``filter="data"`` is applied as well. The archive is unpacked into a staging folder inside ``target``,
    its top-level entries are then moved into place (replacing leftovers of an interrupted run),
    and the marker ``target/.extracted-<archive name>`` (the archive's size and mtime) is written
    last. A call that finds a matching marker does nothing; without one it starts from scratch.

    Arguments
    ---------
    archive : str
        ``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz`` or ``.zip`` file.
    target : str
        Folder to unpack into (created when missing).

    Returns
    -------
    str
        ``target``.

    Raises
    ------
    UnsafeArchiveError
        A member that is unsafe (the message names the archive and the member; nothing is
        extracted), or an archive that is neither tar nor zip.

    Example
    -------
    >>> import io, os, tarfile, tempfile
    >>> d = tempfile.mkdtemp()
    >>> with tarfile.open(os.path.join(d, "a.tar.gz"), "w:gz") as t:
    ...     info = tarfile.TarInfo("corpus/readme.txt"); info.size = 2
    ...     t.addfile(info, io.BytesIO(b"hi"))
    >>> out = safe_extract(os.path.join(d, "a.tar.gz"), os.path.join(d, "out"))
    >>> open(os.path.join(out, "corpus", "readme.txt")).read()
    'hi'
    >>> sorted(os.listdir(out))
    ['.extracted-a.tar.gz', 'corpus']
    """
    archive, target = os.fspath(archive), os.path.abspath(target)
    name = os.path.basename(archive)
    marker = os.path.join(target, f".extracted-{name}")
    st = os.stat(archive)
    stamp = f"size={st.st_size} mtime_ns={st.st_mtime_ns}\n"
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as f:
            if f.read() == stamp:
                logger.info("%s: already extracted into %s", archive, target)
                return target
        os.remove(marker)  # the archive changed since
    staging = os.path.join(target, f".extracting-{name}")
    kind, members = _check_archive(archive, staging)
    _remove(staging)  # left by an interrupted run
    os.makedirs(staging)
    if kind == "zip":
        with zipfile.ZipFile(archive) as z:
            z.extractall(staging, members)
    else:
        with tarfile.open(archive, "r:*") as t:
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            t.extractall(staging, members, **extra)
    for entry in os.listdir(staging):
        _remove(os.path.join(target, entry))
        os.replace(os.path.join(staging, entry), os.path.join(target, entry))
    os.rmdir(staging)
    with atomic_open(marker) as f:
        f.write(stamp)
    return target


def require_manual(path, corpus, page):
    """Return ``path`` if it exists, else explain how to get a licensed corpus.

    Arguments
    ---------
    path : str
        Where the corpus is expected.
    corpus : str
        Its name, for the message.
    page : str
        The page where its licence is accepted and the download offered.

    Returns
    -------
    str
        ``path``.

    Raises
    ------
    ManualDownloadError
        When ``path`` does not exist.

    Example
    -------
    >>> require_manual("/nonexistent/iemocap", "IEMOCAP", "https://sail.usc.edu/iemocap/")
    ... # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    masr.corpora.download.ManualDownloadError: IEMOCAP needs a manual download: accept the licence
    at https://sail.usc.edu/iemocap/, then point --data-root at it (not found: /nonexistent/iemocap)
    """
    if not os.path.exists(path):
        raise ManualDownloadError(f"{corpus} needs a manual download: accept the licence at {page}, "
                                  f"then point --data-root at it (not found: {path})")
    return path


def corpus_main(corpus, module, streams, argv=None):
    """The command line shared by corpus modules: find (or download) the corpus, then prepare it.

    ``module`` provides ``URL``, ``locate(data_root)`` (raising :class:`FileNotFoundError`),
    ``download(dest)`` and ``prepare(data_root, out_dir, nj)`` (returning the files written).
    Prints the utterance count and the label counts of ``streams`` (``utt2*`` file names).

    Returns
    -------
    int
        Exit status: 0, or 1 after printing the problem to stderr.
    """
    parser = argparse.ArgumentParser(prog=f"python -m {module.__name__}", description=module.__doc__.split("\n")[0])
    parser.add_argument("--data-root", required=True,
                        help=f"folder holding {corpus}/ (downloaded into with --download)")
    parser.add_argument("--out", help=f"data directory to write, e.g. data/{corpus}")
    parser.add_argument("--download", action="store_true", help=f"download {module.URL} when the corpus is missing")
    parser.add_argument("--locate", action="store_true", help="only print the corpus folder (exit 1 when missing)")
    parser.add_argument("--nj", type=int, default=1, help="processes reading audio durations")
    args = parser.parse_args(argv)
    if not args.out and not args.locate:
        parser.error("--out is required")
    try:
        try:
            folder = module.locate(args.data_root)
        except FileNotFoundError as e:
            if isinstance(e, ManualDownloadError):
                raise  # a licensed corpus: its message says where to get it; --download cannot
            if not args.download or args.locate:
                raise FileNotFoundError(f"{e}\nGet it with --download (fetches {module.URL} into {args.data_root})")
            folder = module.download(args.data_root)
        if args.locate:
            print(folder)
            return 0
        files = module.prepare(args.data_root, args.out, nj=args.nj)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"{corpus}: {e}", file=sys.stderr)
        return 1
    print(f"{corpus}: {len(files['wav.scp'])} utterances from {folder} -> {args.out}")
    for name in streams:
        counts = collections.Counter(files[name].values())
        print(f"  {name[4:]}: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))
    return 0
