"""The features stage: filterbanks of a data dir into a dump dir, in ``nj`` parallel jobs.

Output (``<out>`` is e.g. ``dump/train``)::

    <out>/data/feats.<job>.ark    float32 matrices, Kaldi binary format (kaldiio)
    <out>/feats.scp               utt -> <out>/data/feats.<job>.ark:<offset>
    <out>/utt2num_frames          utt -> frames
    <out>/cmvn.ark                global CMVN statistics of this set (Kaldi stats layout)
    <out>/{wav.scp, utt2spk, spk2utt, text, utt2*, weights.tsv}   copied from the data dir

With ``--shard-utts N`` the arks are instead shards of N utterances drawn at random from the
whole set, ``<out>/data/shard.<k>.ark``, listed in ``<out>/shards.tsv``: a multi-node job then
gives each rank its own shards (:mod:`masr.data.shards`). The shards are dealt to the jobs.

With ``--shard-utts N --audio-shards`` the shards hold the *audio* instead, from which
:class:`masr.features.onthefly.AudioShardDataset` computes the same filterbanks on the fly (a
tenth of the disk; :mod:`masr.features.audio_shards` describes the format)::

    <out>/data/audio.<k>.tar      tar files of FLAC (or, --audio-codec opus, Ogg Opus) members
    <out>/audio.scp               utt -> <out>/data/audio.<k>.tar:<offset of the member's header>
    <out>/fbank.json              the filterbank options (FbankConfig), for the readers

``shards.tsv`` then lists the tars; ``utt2num_frames`` and ``cmvn.ark`` are still computed here,
from the filterbanks (which are checked as below, then not stored). A dump dir holds
``feats.scp`` or ``audio.scp``, never both (every extraction replaces the whole folder).

**Input.** The data dir is checked first (:func:`masr.data.validate.validate_data_dir`, without
reading audio or looking up languages): an unsorted file, a duplicate key, a missing
``utt2spk``, ... raise :class:`~masr.data.datadir.DataDirError`, whose message names the file
and line (the command line prints it and exits 1). An utterance whose audio is unreadable, too
short for one frame or holds NaN/inf samples, or whose filterbank holds NaN/inf values (samples
far outside [-1, 1]), stops the extraction with a :class:`FeatureError` naming ``wav.scp`` and
the utterance. So does a worker process that dies (killed by the OOM killer, ``kill -9``): the
error names the jobs left unfinished (arks, first and last utterance) instead of waiting for
them forever.

**All or nothing.** The complete new dump (arks, lists, ``cmvn.ark``, copied files) is built
in a staging folder beside the output, ``<out>.tmp-<pid>``, its ``feats.scp`` already pointing
at the final place ``<out>/data/...``, flushed to disk (``fsync``), and then made ``<out>`` in
one step:

- when there is no ``<out>`` yet, by renaming the staging folder;
- on Linux, by swapping the two folders atomically (``renameat2`` with ``RENAME_EXCHANGE``),
  then deleting the previous dump, which now has the staging name;
- where that swap is not available (another OS, a file system without it), by renaming
  ``<out>`` to ``<out>.old-<pid>``, the staging folder to ``<out>``, and the previous dump to
  ``<out>.tmp-<pid>`` to be deleted. For that instant there is no ``<out>`` (a reader finds no
  ``feats.scp``; it never finds a mix of the two dumps).

The parent folder is then flushed, so the rename survives a power loss. A reader that opens
``<out>`` thus sees the previous dump or the new one, each complete: ``cmvn.ark`` always holds
the statistics of the ``feats.scp`` beside it. (A training that read ``feats.scp`` before the swap
and opens arks later would read the new arks at old offsets: do not re-extract a dump in use.)
The output folder is replaced as a whole: files that other tools put into ``<out>`` do not
outlive a new extraction, and a non-empty folder without ``feats.scp`` (not a dump: ``exp/``
given by a slip) is refused. If ``<out>`` is a symbolic link, the folder it points to is
replaced (``feats.scp`` names that folder).

A failed extraction removes its staging folder and leaves the previous dump as it was. A
*killed* one can leave a staging folder or a moved-aside previous dump, so every extraction
(and :func:`recover_dump_dir`) starts by cleaning up after killed runs into the same output:

- if ``<out>`` is missing and a ``<out>.old-<pid>`` exists, the run was killed between its two
  renames. That folder is the previous dump, complete (a dump is only ever moved aside whole,
  and deleted under a ``.tmp-`` name once the new one is in place): it is put back, as after
  any failed extraction; the new dump, never installed, is made again by the rerun;
- every other ``<out>.tmp-<pid>`` and ``<out>.old-<pid>`` is deleted (an unfinished staging
  folder, or a previous dump already replaced), and so are ``*.tmp`` files in ``<out>`` and
  ``<out>/data`` (left by killed runs of earlier versions).

Two extractions into the same output at the same time are not supported (each would delete
the other's staging folder).

**Progress.** On a terminal (rank 0) a bar counts the utterances done, advanced as each job
finishes; none in a log (:mod:`masr.utils.progress`), nor with ``progress: false`` in the config.

Usage: ``python -m masr.features.extract conf/fbank.yaml --data data/train --out dump/train --nj 2 [--shard-utts N
[--audio-shards [--audio-codec flac|opus]]]``

Why this module is long: the features stage is one transaction (parallel jobs, sharding, global
CMVN, and the atomic swap of the finished dump with recovery after a kill); its crash-safety steps
read best next to the code they protect.
"""

import ctypes
import dataclasses
import errno
import functools
import json
import logging
import os
import platform
import random
import re
import shutil
import sys
import time
from concurrent.futures.process import BrokenProcessPool

import kaldiio
import numpy as np

from masr.audio import AudioError, read_audio
from masr.data.datadir import DataDir, DataDirError, write_kaldi_map
from masr.data.shards import make_shards, write_shard_index
from masr.data.validate import validate_data_dir
from masr.features.audio_shards import (AUDIO_SCP, CODECS, FBANK_JSON, check_codec, decode_member, finish_tar,
                                        member_bytes, write_member)
from masr.features.cmvn import CMVNStats
from masr.features.fbank import FbankConfig, compute_fbank, expected_num_frames, first_non_finite
from masr.utils.config import make_parser, parse_arguments
from masr.utils.fileio import fsync_dir, fsync_tree
from masr.utils.parallel import parallel_map
from masr.utils.progress import from_config, progress

logger = logging.getLogger(__name__)

#: Files of the data dir copied into the dump dir (besides every ``utt2*``).
COPIED_FILES = ("wav.scp", "spk2utt", "text", "weights.tsv")

#: Jobs described one by one in the error for a dead worker; the rest are counted.
_JOBS_SHOWN = 4


class FeatureError(RuntimeError):
    """An utterance whose features cannot be computed, or a dead worker; the message names it."""


def split_evenly(items, nj):
    """Split a list into ``nj`` contiguous parts of near-equal size (Kaldi's ``split_scp``).

    Example
    -------
    >>> split_evenly(list("abcde"), 2)
    [['a', 'b', 'c'], ['d', 'e']]
    """
    nj = max(1, min(nj, len(items)))
    size, extra = divmod(len(items), nj)
    parts, start = [], 0
    for j in range(nj):
        end = start + size + (1 if j < extra else 0)
        parts.append(items[start:end])
        start = end
    return parts


def _check_finite(array, what, unit):
    """Raise ValueError naming the first ``unit`` (sample, frame) of ``array`` that is NaN/inf."""
    if not np.isfinite(array).all():
        raise ValueError(f"{what} NaN/inf (first at {unit} {first_non_finite(array)})")


def _extract_job(job):
    """Compute one job's features into its (staged) arks.

    Arguments
    ---------
    job : tuple
        ``(index, arks, config, wav_scp, codec)``: ``arks`` a list of ``(ark, staged_ark, entries)``,
        ``ark`` the final path named in ``feats.scp``, ``staged_ark`` the file written,
        ``entries`` the ``(utt, wav.scp entry)`` pairs; ``wav_scp`` the path named in errors;
        ``codec`` None to write feature arks, else ``"flac"``/``"opus"``: the arks are audio
        shards (tars, named in ``audio.scp``) and the features are only counted.

    Returns
    -------
    tuple
        ``(index, scp, num_frames, stats, seconds, shard rows)``.

    Raises
    ------
    FeatureError
        Naming ``wav_scp`` and the utterance: unreadable or too short audio, NaN/inf samples or
        filterbank values.
    """
    index, arks, config, wav_scp, codec, cmvn_subset = job
    stats = CMVNStats(config.num_mel_bins)
    scp, num_frames, seconds, rows = {}, {}, 0.0, []
    for ark, staged, entries in arks:
        ark_frames = 0
        with open(staged, "wb") as f:
            for member, (utt, entry) in enumerate(entries):
                try:
                    audio = None
                    if codec:   # the member, and the very samples training will decode from it
                        native, rate = read_audio(entry, None)
                        _check_finite(native, f"audio '{entry}' holds", "sample")
                        audio = member_bytes(entry, native, rate, config.sample_rate, codec)
                        wave = decode_member(audio[0], config.sample_rate)
                    else:
                        wave, _ = read_audio(entry, config.sample_rate)
                    _check_finite(wave, f"audio '{entry}' holds", "sample")
                    if cmvn_subset is not None and utt not in cmvn_subset:   # frames only: no filterbank
                        feats = None
                        frames = expected_num_frames(len(wave), config)
                        if frames == 0:
                            raise ValueError(f"{len(wave)} samples is shorter than one {config.frame_length} ms window")
                    else:   # utt2num_frames and cmvn.ark: what training sees
                        feats = compute_fbank(wave, config)
                        _check_finite(feats, "the filterbank holds", "frame")
                        frames = feats.shape[0]
                except (AudioError, ValueError) as e:
                    raise FeatureError(f"{wav_scp}: utterance '{utt}': {e}") from None
                if audio:
                    scp[utt] = f"{ark}:{write_member(f, member, *audio)}"
                else:
                    start = f.tell()
                    kaldiio.save_ark(f, {utt: feats})
                    scp[utt] = f"{ark}:{start + len(utt.encode()) + 1}"
                num_frames[utt] = frames
                ark_frames += frames
                if feats is not None:
                    stats.add(feats)
                seconds += len(wave) / config.sample_rate
            if codec:
                finish_tar(f)
        rows.append((ark, len(entries), ark_frames))
    return index, scp, num_frames, stats, seconds, rows


def _describe_job(job):
    index, arks = job[:2]
    utts = [utt for _, _, entries in arks for utt, _ in entries]
    names = [os.path.basename(ark) for ark, _, _ in arks]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more arks" if len(names) > 3 else "")
    span = f"utterances '{utts[0]}' .. '{utts[-1]}'" if utts else "no utterances"
    return f"job {index + 1}: {shown} ({len(utts)} {span})"


def _run_jobs(jobs, out_dir, show_progress=None):
    """The jobs' results, by job index; a dead worker becomes a FeatureError naming the unfinished jobs.

    The progress bar (:func:`masr.utils.progress.progress`, ``show_progress`` its ``enabled``)
    counts utterances in this process, advancing by a job's utterances as the job finishes.
    """
    results = {}
    total = sum(len(entries) for _, arks, *_ in jobs for _, _, entries in arks)
    try:
        with progress(total=total, desc=f"features {os.path.basename(out_dir)}", unit="utt",
                      enabled=show_progress) as bar:
            for result in parallel_map(_extract_job, jobs, nj=len(jobs), chunksize=1):
                results[result[0]] = result
                bar.update(len(result[1]))
    except BrokenProcessPool as e:
        unfinished = [job for job in jobs if job[0] not in results]
        shown = "; ".join(_describe_job(job) for job in unfinished[:_JOBS_SHOWN])
        more = f"; and {len(unfinished) - _JOBS_SHOWN} more" if len(unfinished) > _JOBS_SHOWN else ""
        raise FeatureError(
            f"{out_dir}: a worker process died (killed by a signal, e.g. by the OOM killer: see dmesg; "
            f"a smaller --nj needs less memory) before {len(unfinished)} of {len(jobs)} job(s) finished: "
            f"{shown}{more}; the previous dump is unchanged") from e
    return [results[j] for j in sorted(results)]


# -- the all-or-nothing swap (module docstring) --------------------------------------------------

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
#: ``renameat2`` system call numbers, for a C library without the ``renameat2`` function.
_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "riscv64": 276, "ppc64le": 357, "ppc64": 357,
                  "s390x": 347, "i386": 353, "i686": 353, "armv7l": 382}


@functools.lru_cache(maxsize=None)
def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def exchange_paths(a, b):
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Arguments
    ---------
    a, b : str
        Two existing files or folders on the same file system.

    Returns
    -------
    bool
        True once swapped; False where the swap is not available (not Linux, an old kernel or C
        library, a file system without it), nothing changed.

    Raises
    ------
    OSError
        The swap is available but failed (e.g. a path does not exist).

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> for name in ("a", "b"):
    ...     with open(os.path.join(d, name), "w") as f:
    ...         _ = f.write(name)
    >>> if exchange_paths(os.path.join(d, "a"), os.path.join(d, "b")):
    ...     assert open(os.path.join(d, "a")).read() == "b"
    """
    libc = _libc() if sys.platform.startswith("linux") else None
    if libc is None:
        return False
    old, new = os.fsencode(a), os.fsencode(b)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        renameat2.restype = ctypes.c_int
        rc = renameat2(_AT_FDCWD, old, _AT_FDCWD, new, _RENAME_EXCHANGE)
    elif platform.machine() in _SYS_RENAMEAT2:
        libc.syscall.restype = ctypes.c_long
        rc = libc.syscall(ctypes.c_long(_SYS_RENAMEAT2[platform.machine()]), ctypes.c_long(_AT_FDCWD), old,
                          ctypes.c_long(_AT_FDCWD), new, ctypes.c_long(_RENAME_EXCHANGE))
    else:
        return False
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), a, None, b)


def _step(name):
    """Called after each step of the swap (``renamed``, ``exchanged``, ``moved-aside``, and
    ``staged`` before it); does nothing. Tests replace it to stop the swap there, as a kill would."""


def _leftovers(out_dir):
    """``(name, pid, kind)`` of the ``<out>.tmp-<pid>`` / ``<out>.old-<pid>`` entries beside ``out_dir``."""
    parent, base = os.path.split(out_dir)
    pattern = re.compile(re.escape(base) + r"\.(tmp|old)-([0-9]+)")
    found = []
    for name in os.listdir(parent) if os.path.isdir(parent) else []:
        match = pattern.fullmatch(name)
        if match:
            found.append((os.path.join(parent, name), int(match.group(2)), match.group(1)))
    return found


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def recover_dump_dir(out_dir):
    """Clean up what killed extractions into ``out_dir`` left behind (module docstring).

    Arguments
    ---------
    out_dir : str
        A dump dir (which may not exist).

    Returns
    -------
    list of str
        What was done, one line per step (empty when there was nothing to clean).

    Example
    -------
    >>> import tempfile
    >>> out = os.path.join(tempfile.mkdtemp(), "train")
    >>> os.makedirs(out + ".old-123"); os.makedirs(out + ".tmp-123/data")
    >>> [line.split(": ", 1)[1] for line in recover_dump_dir(out)]
    ['put the previous dump back', 'removed an unfinished staging folder']
    >>> os.listdir(os.path.dirname(out))
    ['train']
    """
    done = []
    leftovers = _leftovers(out_dir)
    olds = [path for path, _, kind in leftovers if kind == "old"]
    if olds and not os.path.lexists(out_dir):
        previous = max(olds, key=os.path.getmtime)  # never more than one unless runs were concurrent
        os.rename(previous, out_dir)
        done.append(f"{previous}: put the previous dump back")
    for path, _, kind in leftovers:
        if os.path.lexists(path):
            _remove(path)
            what = "an unfinished staging folder" if kind == "tmp" else "a previous dump already replaced"
            done.append(f"{path}: removed {what}")
    for folder in (out_dir, os.path.join(out_dir, "data")):
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            path = os.path.join(folder, name)
            if name.endswith(".tmp") and os.path.isfile(path):
                os.remove(path)
                done.append(f"{path}: removed a stale temporary file")
    if done:
        fsync_dir(os.path.dirname(out_dir))
    return done


def _install(staging, out_dir):
    """Make the complete, flushed ``staging`` folder ``out_dir`` in one step (module docstring)."""
    if not os.path.lexists(out_dir):
        os.rename(staging, out_dir)
        _step("renamed")
    elif exchange_paths(staging, out_dir):
        _step("exchanged")
        shutil.rmtree(staging, ignore_errors=True)   # the previous dump; if left, the next run removes it
    else:
        old = f"{out_dir}.old-{os.getpid()}"
        os.rename(out_dir, old)
        _step("moved-aside")
        os.rename(staging, out_dir)   # on failure the caller's recover_dump_dir puts the old one back
        _step("renamed")
        os.rename(old, staging)   # deleted under the .tmp- name: an .old- folder is always complete
        shutil.rmtree(staging, ignore_errors=True)
    fsync_dir(os.path.dirname(out_dir))


def _output_path(data_dir, out_dir):
    """The absolute output folder (a symbolic link resolved); ValueError if it would replace the data dir."""
    out_dir = os.path.abspath(out_dir)
    if os.path.islink(out_dir):
        out_dir = os.path.realpath(out_dir)
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"{out_dir}: the output dump dir is not a folder")
    data_real, out_real = os.path.realpath(data_dir), os.path.realpath(out_dir)
    if data_real == out_real or data_real.startswith(out_real + os.sep):
        raise ValueError(f"{out_dir}: the output dump dir would replace the data dir {data_dir}; "
                         f"write the features elsewhere (e.g. dump/<set>)")
    if (os.path.isdir(out_dir) and os.listdir(out_dir)
            and not any(os.path.isfile(os.path.join(out_dir, scp)) for scp in ("feats.scp", AUDIO_SCP))):
        raise ValueError(f"{out_dir}: holds files but no feats.scp, so it is not a dump dir (nor an audio "
                         f"dump: no {AUDIO_SCP}); the features stage "
                         f"replaces its output folder as a whole and only replaces an earlier dump (e.g. dump/<set>)")
    return out_dir


def extract_features(data_dir, out_dir, config, nj=1, shard_utts=0, shard_seed=0, show_progress=None,
                     audio_shards=False, audio_codec="flac", cmvn_utts=0):
    """Compute filterbanks for every utterance of ``data_dir`` into ``out_dir``.

    Arguments
    ---------
    data_dir : str
        A valid Kaldi-style data dir with ``wav.scp``.
    out_dir : str
        The dump dir to write, replaced as a whole (see the module docstring).
    config : FbankConfig
    nj : int
        Parallel jobs (processes).
    shard_utts : int
        0: one ark per job, utterances in sorted order. N > 0: shards of N random utterances
        (``shard_seed``), listed in ``shards.tsv`` (see the module docstring).
    shard_seed : int
    show_progress : bool or None
        A progress bar of the utterances done, advanced as each job finishes: None on a terminal
        (rank 0), True forced, False off (:func:`masr.utils.progress.progress`).
    audio_shards : bool
        Write the audio into shards (``audio.scp``, ``fbank.json``) instead of the features;
        needs ``shard_utts`` > 0 (see the module docstring).
    audio_codec : str
        ``"flac"`` or ``"opus"``: how audio that is not copied unchanged is encoded
        (:func:`masr.features.audio_shards.member_bytes`).
    cmvn_utts : int
        Audio shards only: compute the global CMVN statistics from this many utterances drawn at
        random (seeded with ``shard_seed``) and only decode the others (for ``utt2num_frames``):
        the filterbanks are about two thirds of stage 2's time. 0: all utterances (the default).

    Returns
    -------
    dict
        ``utterances``, ``audio_seconds``, ``wall_seconds``, ``frames``.

    Raises
    ------
    DataDirError
        The data dir is invalid (unsorted, duplicate keys, ...: the message names file and line).
    FeatureError
        An utterance's audio is unreadable, too short or holds NaN/inf (or its filterbank does),
        or a worker process died. The previous dump in ``out_dir`` (if any) is left as it was
        and nothing else is left behind.
    ValueError
        ``out_dir`` is not a folder, or would replace ``data_dir``; ``audio_shards`` without
        ``shard_utts``, or an unknown or unsupported ``audio_codec``.

    Example
    -------
    >>> import tempfile
    >>> import numpy as np, soundfile as sf
    >>> from masr.data.datadir import write_data_dir
    >>> d = tempfile.mkdtemp()
    >>> sf.write(os.path.join(d, "a.wav"), np.zeros(8000, dtype=np.float32), 16000)
    >>> write_data_dir(os.path.join(d, "data"), {"wav.scp": {"s1_a": os.path.join(d, "a.wav")},
    ...                                          "utt2spk": {"s1_a": "s1"}})
    >>> extract_features(os.path.join(d, "data"), os.path.join(d, "dump"), FbankConfig())["frames"]
    48
    >>> sorted(os.listdir(os.path.join(d, "dump")))
    ['cmvn.ark', 'data', 'feats.scp', 'spk2utt', 'utt2num_frames', 'utt2spk', 'wav.scp']
    """
    start = time.time()
    nj = max(1, int(nj))
    codec = None
    if audio_shards:
        if not shard_utts:
            raise ValueError("audio shards need shards: give shard_utts > 0 (--shard-utts N)")
        check_codec(audio_codec)
        codec = audio_codec
    validate_data_dir(data_dir, check_audio=False, check_lang=False)
    out_dir = _output_path(data_dir, out_dir)
    data = DataDir(data_dir)
    wav_scp = data.read("wav.scp")
    os.makedirs(os.path.dirname(out_dir), exist_ok=True)
    recover_dump_dir(out_dir)
    staging = f"{out_dir}.tmp-{os.getpid()}"
    try:
        os.makedirs(os.path.join(staging, "data"))

        def ark(name):   # (path named in feats.scp, file written now)
            return os.path.join(out_dir, "data", name), os.path.join(staging, "data", name)

        if shard_utts:
            shards = make_shards(list(wav_scp), shard_utts, seed=shard_seed)
            name = "audio.{:06d}.tar" if codec else "shard.{:06d}.ark"
            arks = [(*ark(name.format(k)), [(u, wav_scp[u]) for u in shard]) for k, shard in enumerate(shards)]
            parts = [arks[j::nj] for j in range(max(1, min(nj, len(arks))))]   # shards dealt to the jobs
        else:
            parts = [[(*ark(f"feats.{j + 1}.ark"), part)]
                     for j, part in enumerate(split_evenly(sorted(wav_scp.items()), nj))]
        subset = None
        if codec and 0 < cmvn_utts < len(wav_scp):   # CMVN of a random sample: the others are only decoded
            subset = set(random.Random(shard_seed).sample(sorted(wav_scp), cmvn_utts))
        jobs = [(j, part, config, data.file("wav.scp"), codec, subset) for j, part in enumerate(parts)]
        results = _run_jobs(jobs, out_dir, show_progress)
        scp, num_frames, stats, shard_rows = {}, {}, CMVNStats(config.num_mel_bins), []
        for _, job_scp, job_frames, job_stats, _, rows in results:
            scp.update(job_scp)
            num_frames.update(job_frames)
            stats.merge(job_stats)
            shard_rows.extend(rows)
        for name in sorted(os.listdir(data.path)):
            if (name in COPIED_FILES or name.startswith("utt2")) and os.path.isfile(data.file(name)):
                shutil.copyfile(data.file(name), os.path.join(staging, name))
        write_kaldi_map(os.path.join(staging, "utt2num_frames"), num_frames)
        stats.save(os.path.join(staging, "cmvn.ark"))
        if shard_utts:
            write_shard_index(staging, sorted(shard_rows))
        if codec:
            with open(os.path.join(staging, FBANK_JSON), "w", encoding="utf-8") as f:
                json.dump(dataclasses.asdict(config), f, indent=2, sort_keys=True)
                f.write("\n")
        write_kaldi_map(os.path.join(staging, AUDIO_SCP if codec else "feats.scp"), scp)
        fsync_tree(staging)
        _step("staged")
        _install(staging, out_dir)
    except BaseException:
        try:
            recover_dump_dir(out_dir)   # removes the staging folder; puts a moved-aside dump back
        except OSError as e:   # keep the original error; the next extraction cleans up
            logger.warning("%s: could not clean up after the failed extraction: %s", out_dir, e)
        raise
    return {
        "utterances": len(scp),
        "audio_seconds": sum(r[4] for r in results),
        "wall_seconds": time.time() - start,
        "frames": sum(num_frames.values()),
    }


def main(argv=None):
    """Command line (module docstring); returns the exit status: 1 for an invalid data dir or a
    failed utterance, the message on stderr."""
    parser = make_parser("Compute log-mel filterbanks of a data dir (Kaldi-compatible).")
    parser.add_argument("--data", required=True, help="input data dir (with wav.scp)")
    parser.add_argument("--out", required=True, help="output dump dir (replaced as a whole)")
    parser.add_argument("--nj", type=int, default=1, help="parallel jobs")
    parser.add_argument("--shard-utts", type=int, default=0,
                        help="write shards of N random utterances for multi-node training (default 0: one ark per job)")
    parser.add_argument("--audio-shards", action="store_true",
                        help="write the audio into the shards (tar files, audio.scp) instead of the features, "
                             "for filterbanks computed on the fly; needs --shard-utts N")
    parser.add_argument("--cmvn-utts", type=int, default=0,
                        help="audio shards: CMVN statistics from N random utterances, the others only decoded "
                             "(default 0: all)")
    parser.add_argument("--audio-codec", default="flac", choices=CODECS,
                        help="codec of audio that is not FLAC/Opus at the target rate already (default flac: "
                             "lossless for 16-bit sources; opus: lossy, smaller)")
    args, config = parse_arguments(parser, argv)
    show_progress = from_config(config)   # ``progress: false`` in the config: no bar
    config.pop("progress", None)
    fields = {f.name for f in dataclasses.fields(FbankConfig)}
    unknown = sorted(set(config) - fields)
    if unknown:
        parser.error(f"{args.config}: unknown filterbank option(s): {', '.join(unknown)}")
    if args.audio_shards and args.shard_utts <= 0:
        parser.error("--audio-shards needs --shard-utts N (N > 0): the audio is written in shards")
    try:
        _output_path(args.data, args.out)
        if args.audio_shards:
            check_codec(args.audio_codec)
    except ValueError as e:
        parser.error(str(e))
    try:
        s = extract_features(args.data, args.out, FbankConfig(**config), nj=args.nj, shard_utts=args.shard_utts,
                             show_progress=show_progress, audio_shards=args.audio_shards,
                             audio_codec=args.audio_codec, cmvn_utts=args.cmvn_utts)
    except (DataDirError, FeatureError, OSError) as e:  # OSError: e.g. no space left, no permission
        print(f"error: {e}", file=sys.stderr)
        return 1
    speed = s["audio_seconds"] / s["wall_seconds"]
    print(f"{args.out}: {s['utterances']} utterances, {s['audio_seconds'] / 3600:.2f} h of audio, "
          f"{s['frames']} frames in {s['wall_seconds']:.1f} s with nj={args.nj}: "
          f"{speed:.0f} s of audio per second ({speed / args.nj:.0f} per job)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
