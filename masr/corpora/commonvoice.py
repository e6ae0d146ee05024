"""Mozilla Common Voice: crowd-sourced read speech in many locales (manual download).

Common Voice is downloaded by hand after accepting its terms at :data:`PAGE` (one archive per
locale and release); :func:`locate` explains that when it is missing.

Source layout (as unpacked from a release archive)::

    <root>/cv-corpus-<version>/<locale>/{train,dev,test,validated,...}.tsv
    <root>/cv-corpus-<version>/<locale>/clips/*.mp3
    <root>/cv-corpus-<version>/<locale>/clip_durations.tsv     (newer releases: clip, duration[ms])

``<root>/<locale>/`` (no release folder) is accepted too; with several releases the newest
(highest version, compared numerically) is used unless ``version`` is given. The TSVs have a
header and are read by column name (``client_id``, ``path``, ``sentence``, ``gender`` are used;
``up_votes``, ``down_votes``, ``age``, ``accents``, ``locale``, ``segment``, and the newer
``sentence_id``, ``variant``, ``sentence_domain`` are allowed and ignored).

Output, one data directory per split holding every locale asked for::

    <out>/<split>/  wav.scp utt2spk spk2utt text utt2dur utt2lang utt2locale [utt2gender]

- speakers are ``<locale>-<first 20 characters of client_id>`` and utterances
  ``<speaker>-<clip stem>`` (``-`` in a locale becomes ``_``: ``zh_CN-...``); two client ids
  sharing the 20-character prefix are an error;
- ``wav.scp`` holds the MP3 paths themselves: soundfile (libsndfile >= 1.1, checked by
  :func:`mp3_supported`) reads MP3; with an older libsndfile, ``ffmpeg`` decodes through a pipe;
- ``utt2dur`` from ``clip_durations.tsv`` when present, else from the MP3 header;
- ``utt2lang`` from :data:`LOCALES` (URIEL codes, checked); a locale not in the table is an error
  naming it (add it to the table);
- ``utt2gender`` (``m``/``f``) only when every utterance of the split is ``male``/``female``
  (also ``male_masculine``/``female_feminine``); otherwise not written (logged);
- rows without a sentence are skipped (logged).

Usage::

    python -m masr.corpora.commonvoice --data-root DIR --out data/cv --locales "hi,ta" [--splits train,dev,test]
"""

import argparse
import collections
import csv
import glob
import logging
import os
import re
import shlex
import shutil
import sys

from masr.audio import audio_info
from masr.corpora.download import require_manual
from masr.data.datadir import write_data_dir
from masr.utils.parallel import parallel_map
from masr.utils.progress import progress

logger = logging.getLogger(__name__)

PAGE = "https://commonvoice.mozilla.org/datasets"
URL = PAGE
SPLITS = ("train", "dev", "test")
REQUIRED_COLUMNS = ("client_id", "path", "sentence")
SPEAKER_CHARS = 20
GENDERS = {"male": "m", "female": "f", "male_masculine": "m", "female_feminine": "f"}

#: Common Voice locale -> URIEL ISO 639-3 code (each checked to be in lang2vec). Macrolanguages
#: URIEL lacks get the individual language recorded: fa -> pes, ar -> arb (MSA sentences),
#: mn -> khk, uz -> uzn, az -> azj, ms -> zsm, sq -> als (Tosk, standard Albanian), et -> ekk,
#: sw -> swh, zh-CN/zh-TW -> cmn, zh-HK -> yue, ps -> pst, tl/fil -> tgl, yi -> ydd,
#: ne-NP -> nep, or -> ori. Not mapped (not in URIEL): ia (Interlingua), sc (Sardinian), skr.
LOCALES = dict(item.split(":") for item in """
en:eng de:deu fr:fra es:spa it:ita nl:nld pl:pol pt:por ru:rus uk:ukr ca:cat eu:eus fa:pes ar:arb tr:tur
ta:tam te:tel hi:hin bn:ben mr:mar pa-IN:pan or:ori as:asm ml:mal ur:urd gu-IN:guj kn:kan sd:snd mai:mai
sat:sat ne-NP:nep ja:jpn zh-CN:cmn zh-TW:cmn zh-HK:yue yue:yue ko:kor cy:cym ga-IE:gle sv-SE:swe fi:fin
et:ekk lv:lav lt:lit hu:hun cs:ces sk:slk sl:slv sr:srp bg:bul ro:ron el:ell ka:kat hy-AM:hye kk:kaz
ky:kir tt:tat ba:bak cv:chv sah:sah mn:khk id:ind vi:vie th:tha sw:swh rw:kin lg:lug ha:hau yo:yor ig:ibo
mt:mlt eo:epo gl:glg br:bre fy-NL:fry rm-sursilv:roh rm-vallader:roh dv:div be:bel mk:mkd sq:als ab:abk
kab:kab ckb:ckb kmr:kmr ug:uig uz:uzn az:azj mhr:mhr mrj:mrj mdf:mdf myv:myv cnh:cnh hsb:hsb dsb:dsb
ast:ast oc:oci ps:pst da:dan nn-NO:nno nb-NO:nob is:isl he:heb ms:zsm tk:tuk tig:tig ti:tir am:amh
zu:zul xh:xho af:afr so:som lo:lao my:mya km:khm tl:tgl fil:tgl yi:ydd tw:twi ln:lin lb:ltz
""".split())


def mp3_supported():
    """Whether soundfile (libsndfile >= 1.1) reads MP3 here."""
    import soundfile as sf

    return "MP3" in sf.available_formats()


def wav_entry(path, use_soundfile=None):
    """The ``wav.scp`` value of an MP3 clip: the path (soundfile reads MP3) or an ``ffmpeg`` pipe.

    Example
    -------
    >>> wav_entry("/cv/clips/a b.mp3", use_soundfile=True)
    '/cv/clips/a b.mp3'
    >>> wav_entry("/cv/clips/a b.mp3", use_soundfile=False)
    "ffmpeg -nostdin -loglevel error -i '/cv/clips/a b.mp3' -f wav -ac 1 -ar 16000 - |"
    """
    if use_soundfile is None:
        use_soundfile = mp3_supported()
    if use_soundfile:
        return path
    return f"ffmpeg -nostdin -loglevel error -i {shlex.quote(path)} -f wav -ac 1 -ar 16000 - |"


def _version_key(folder):
    return [int(x) for x in re.findall(r"\d+", os.path.basename(folder))]


def locate(data_root, locale, version=None):
    """The folder of ``locale`` (holding its TSVs and ``clips/``) under ``data_root``.

    Raises
    ------
    masr.corpora.download.ManualDownloadError or FileNotFoundError
        Naming the download page and the folders looked at.
    """
    require_manual(data_root, "Common Voice", PAGE)
    pattern = f"cv-corpus-{version}" if version else "cv-corpus-*"
    releases = sorted(glob.glob(os.path.join(data_root, pattern)), key=_version_key, reverse=True)
    tried = [os.path.join(r, locale) for r in releases] + [os.path.join(data_root, locale)]
    for folder in tried:
        if os.path.isdir(os.path.join(folder, "clips")):
            return folder
    raise FileNotFoundError(f"Common Voice locale {locale} not found under {data_root}: looked for clips/ in "
                            f"{', '.join(tried)}; download it from {PAGE} (after accepting the terms) and unpack "
                            f"it there")


def download(dest):
    """Common Voice is not downloaded by script (terms must be accepted): raises, naming the page."""
    raise FileNotFoundError(f"Common Voice needs a manual download: accept the terms at {PAGE}, unpack the "
                            f"archives into {dest}")


def uriel_code(locale):
    """URIEL code of a Common Voice locale.

    Example
    -------
    >>> uriel_code("pa-IN"), uriel_code("zh-HK")
    ('pan', 'yue')
    """
    if locale not in LOCALES:
        raise ValueError(f"Common Voice locale '{locale}' has no ISO 639-3 code in masr.corpora.commonvoice.LOCALES "
                         f"(add it, with a code URIEL knows)")
    return LOCALES[locale]


def read_durations(folder):
    """clip file name -> seconds from ``clip_durations.tsv`` (empty when absent)."""
    path = os.path.join(folder, "clip_durations.tsv")
    out = {}
    if not os.path.isfile(path):
        return out
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        for lineno, row in enumerate(reader, start=2):
            try:
                out[row["clip"]] = float(row["duration[ms]"]) / 1000
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{path}:{lineno}: expected 'clip<TAB>duration[ms]', got {row}") from None
    return out


def read_tsv(path):
    """Rows of a Common Voice split TSV, read by header name: yields ``(lineno, row dict)``.

    Raises
    ------
    ValueError
        ``path:line``: a missing required column, or a row with fewer fields than the header.
    """
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            return
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}:1: header lacks column(s) {' '.join(missing)} (got {' '.join(header)})")
        for lineno, fields in enumerate(reader, start=2):
            if not fields:
                continue
            if len(fields) < len(header):
                # trailing empty fields may be dropped; the required ones must be there
                if len(fields) <= max(header.index(c) for c in REQUIRED_COLUMNS):
                    raise ValueError(f"{path}:{lineno}: {len(fields)} fields, the header has {len(header)}")
                fields = fields + [""] * (len(header) - len(fields))
            yield lineno, dict(zip(header, fields))


def _token(text):
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def prepare_locale(folder, locale, split, durations=None):
    """Records of one locale's split: {utt: (path, spk, text, gender or None, lineno)}.

    Raises
    ------
    FileNotFoundError
        The TSV, or a clip it lists (naming ``file:line``).
    ValueError
        Malformed rows, an utterance repeated, or two client ids sharing their id prefix.
    """
    path = os.path.join(folder, f"{split}.tsv")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not found (Common Voice {locale} {split} split)")
    loc = _token(locale)
    records, clients = {}, {}
    with progress(read_tsv(path), desc=f"commonvoice {locale} {split}", unit="utt", leave=False) as rows:
        for lineno, row in rows:
            where = f"{path}:{lineno}"
            client, clip = row["client_id"].strip(), row["path"].strip()
            if not client or not clip or "/" in clip:
                raise ValueError(f"{where}: empty client_id or a path that is empty or holds '/' ({clip!r})")
            spk = f"{loc}-{_token(client[:SPEAKER_CHARS])}"
            if clients.setdefault(spk, client) != client:
                raise ValueError(f"{where}: client ids {clients[spk]} and {client} share the speaker id {spk}")
            text = " ".join(row["sentence"].split())
            if not text:
                logger.warning("%s: no sentence; clip %s skipped", where, clip)
                continue
            audio = os.path.abspath(os.path.join(folder, "clips", clip))
            if not os.path.isfile(audio):
                raise FileNotFoundError(f"{where}: clip {audio} not found")
            utt = f"{spk}-{_token(os.path.splitext(clip)[0])}"
            if utt in records:
                raise ValueError(f"{where}: clip {clip} already listed on line {records[utt][4]}")
            gender = GENDERS.get(row.get("gender", "").strip().lower())
            records[utt] = (audio, spk, text, gender, lineno, (durations or {}).get(clip))
    return records


def prepare(data_root, out_dir, locales, splits=SPLITS, version=None, nj=1):
    """Write ``<out_dir>/<split>`` for each split, holding every locale of ``locales``.

    Returns
    -------
    dict
        split -> {file name: {utt: value}}.
    """
    if isinstance(locales, str):
        locales = [w for w in re.split(r"[\s,]+", locales) if w]
    if not locales:
        raise ValueError("no Common Voice locale given")
    codes = {loc: uriel_code(loc) for loc in locales}
    folders = {loc: locate(data_root, loc, version) for loc in locales}
    use_soundfile = mp3_supported()
    result = {}
    for split in splits:
        records, lang = {}, {}
        for loc in locales:
            recs = prepare_locale(folders[loc], loc, split, read_durations(folders[loc]))
            records.update(recs)
            lang.update({u: codes[loc] for u in recs})
        if not records:
            # small locales may have an empty dev or test split: skip it (and any earlier output of it)
            logger.warning("Common Voice %s: no utterances for %s; %s not written", split, " ".join(locales),
                           os.path.join(out_dir, split))
            shutil.rmtree(os.path.join(out_dir, split), ignore_errors=True)
            continue
        missing = [u for u, r in records.items() if r[5] is None]
        durs = {u: r[5] for u, r in records.items()}
        lengths = progress(parallel_map(audio_info, [records[u][0] for u in missing], nj=nj, ordered=True),
                           total=len(missing), desc=f"commonvoice {split} durations", unit="file")
        for u, (frames, sr) in zip(missing, list(lengths)):
            durs[u] = frames / sr
        files = {
            "wav.scp": {u: wav_entry(r[0], use_soundfile) for u, r in records.items()},
            "utt2spk": {u: r[1] for u, r in records.items()},
            "text": {u: r[2] for u, r in records.items()},
            "utt2dur": {u: f"{d:.3f}" for u, d in durs.items()},
            "utt2lang": lang,
            "utt2locale": {u: r[1].split("-", 1)[0] for u, r in records.items()},
        }
        target = os.path.join(out_dir, split)
        stale = os.path.join(target, "utt2gender")
        if os.path.isfile(stale):
            os.remove(stale)
        if all(r[3] for r in records.values()):
            files["utt2gender"] = {u: r[3] for u, r in records.items()}
        else:
            logger.warning("%s: no utt2gender written: some utterances are neither male nor female", target)
        write_data_dir(target, files)
        result[split] = files
    if not result:
        raise ValueError(f"Common Voice: no utterances for {' '.join(locales)} in {', '.join(splits)}")
    return result


def main(argv=None):
    """Command line (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m masr.corpora.commonvoice", description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", required=True, help="folder holding cv-corpus-<version>/<locale>/")
    parser.add_argument("--out", required=True, help="folder receiving one data directory per split")
    parser.add_argument("--locales", required=True, help="comma/space-separated Common Voice locales")
    parser.add_argument("--splits", default=",".join(SPLITS), help="TSV names (default train,dev,test)")
    parser.add_argument("--version", default=None, help="release, e.g. 17.0-2024-03-15 (default: newest)")
    parser.add_argument("--nj", type=int, default=1, help="processes reading MP3 durations")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        splits = [w for w in re.split(r"[\s,]+", args.splits) if w]
        result = prepare(args.data_root, args.out, args.locales, splits, args.version, args.nj)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"commonvoice: {e}", file=sys.stderr)
        return 1
    for split, files in result.items():
        counts = collections.Counter(files["utt2lang"].values())
        print(f"commonvoice: {args.out}/{split}: {len(files['wav.scp'])} utterances, "
              + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
