"""FLEURS (Conneau et al., SLT 2022): read speech in 102 locales, for spoken language identification.

Source layout, as released on Hugging Face (``google/fleurs``; the layout of its dataset
script ``fleurs.py``, which builds the URLs ``data/<locale>/audio/<split>.tar.gz`` and
``data/<locale>/<split>.tsv`` and splits each TSV line into these seven fields)::

    <root>/data/<locale>/audio/{train,dev,test}.tar.gz   members <split>/<file_name>.wav, 16 kHz mono
    <root>/data/<locale>/{train,dev,test}.tsv            tab-separated, no header:
        id  file_name  raw_transcription  transcription  characters  num_samples  gender

``id`` is the FLoRes sentence id (shared by every speaker who read the sentence: one TSV has
several rows with the same ``id`` and different ``file_name``), ``transcription`` the normalised
text, ``characters`` its space-separated characters (unused), ``num_samples`` the length at
16 kHz and ``gender`` ``MALE``, ``FEMALE`` or ``OTHER``. ``<root>/<locale>/...`` (without
``data/``) is accepted too, as are archives already unpacked into ``audio/<split>/`` (the
archive may then be deleted). Assumption not verified against the real archives: their members
are ``<split>/<file_name>``; members without the ``<split>/`` folder (unpacked straight into
``audio/``) are found as well.

Output: one data directory per split holding every locale (LangID trains on all languages
together)::

    <out>/<split>/  wav.scp utt2spk spk2utt text utt2dur utt2lang utt2locale [utt2gender]

- Utterance ids are ``<locale>-<id>-<file stem>`` (e.g. ``hr_hr-1234-10004088536354799741``),
  unique although several rows share an ``id``.
- FLEURS publishes no speaker ids, so every utterance is its own pseudo-speaker (``utt2spk``
  maps an utterance to itself): grouping the rows of one ``id`` would put different speakers
  reading the same sentence under one "speaker" (wrong per-speaker statistics, and a sentence
  id leaking into speaker ids), and any grouping across ``id`` would be invented. With the
  speaker id equal to the utterance id, ``spk2utt`` and Kaldi's sort order hold trivially.
- ``text`` is the normalised ``transcription`` (``raw_transcription`` when that is empty;
  rows with neither are skipped with a warning), whitespace runs collapsed.
- ``utt2lang`` is the locale's URIEL code (:data:`LOCALES`, column ``uriel``), ``utt2locale``
  the FLEURS locale, ``utt2dur`` is ``num_samples / 16000``.
- ``utt2gender`` (``m``/``f``) is written only when every utterance of the split is ``MALE`` or
  ``FEMALE``: a data directory needs every utterance in every ``utt2*`` file, and ``OTHER``
  has no ``m``/``f`` value, so a split holding an ``OTHER`` row gets no ``utt2gender`` (logged).

Locale table: :data:`LOCALES` maps all 102 locales to ISO 639-3. ``iso639_3`` is the code
of the variety recorded; ``uriel`` is the code written to ``utt2lang``, always one that URIEL
(lang2vec) knows, because the validator and MASR's lang2vec metadata encoder need it. They
differ for the six locales whose own code URIEL lacks; the nearest URIEL code stands in
(``note`` says why): ``fil_ph`` fil->tgl, ``kea_cv`` kea->pov, ``lv_lv`` lvs->lav,
``ne_np`` npi->nep, ``or_in`` ory->ori, ``ps_af`` pus->pst. Every ``uriel`` code is distinct,
so it doubles as the LangID class label.

Overlapped / non-overlapped languages: the paper reports accuracy separately on the FLEURS
languages seen in pretraining (48) and the others (54). Which ones overlap depends entirely on
the pretraining data used; :func:`write_overlap` (``--pretrain-langs``) takes that list and
writes ``<out>/langs_overlapped.txt`` and ``<out>/langs_non_overlapped.txt`` (URIEL codes).

Download: :func:`download` fetches the files above from Hugging Face (resumable). No checksums
are published for them, so none are checked (a complete download is kept as it is).

Usage::

    python -m masr.corpora.fleurs --data-root DIR --out data [--locales "hr_hr,sr_rs"]
        [--splits "train,dev,test"] [--download] [--pretrain-langs FILE|LIST] [--nj N]

Why this module is long: one module per corpus (lhotse's convention): locale checks against URIEL,
download, unpacking, TSV parsing and the Kaldi data dirs of FLEURS belong together.
"""

import argparse
import collections
import logging
import os
import re
import sys

from masr.corpora.download import download as fetch
from masr.corpora.download import safe_extract
from masr.data.datadir import write_data_dir
from masr.utils.parallel import parallel_map
from masr.utils.progress import progress

logger = logging.getLogger(__name__)

#: Hugging Face repository files: ``.format(locale=..., split=...)``.
BASE_URL = "https://huggingface.co/datasets/google/fleurs/resolve/main/data/{locale}"
AUDIO_URL = BASE_URL + "/audio/{split}.tar.gz"
TSV_URL = BASE_URL + "/{split}.tsv"
URL = "https://huggingface.co/datasets/google/fleurs"

SPLITS = ("train", "dev", "test")
SAMPLE_RATE = 16000
GENDERS = {"MALE": "m", "FEMALE": "f", "OTHER": None}
#: Fields of a TSV line.
COLUMNS = ("id", "file_name", "raw_transcription", "transcription", "characters", "num_samples", "gender")

Locale = collections.namedtuple("Locale", "locale name iso639_3 uriel note")

# locale | language | ISO 639-3 of the variety | code in utt2lang (known to URIEL) | note
_TABLE = """
af_za|Afrikaans|afr|afr|
am_et|Amharic|amh|amh|
ar_eg|Arabic|arb|arb|FLoRes Modern Standard Arabic text read by Egyptian speakers: arb (ara, the macrolanguage, is not in URIEL; arz would be Egyptian colloquial)
as_in|Assamese|asm|asm|
ast_es|Asturian|ast|ast|
az_az|Azerbaijani|azj|azj|North Azerbaijani (aze, the macrolanguage, is not in URIEL)
be_by|Belarusian|bel|bel|
bg_bg|Bulgarian|bul|bul|
bn_in|Bengali|ben|ben|
bs_ba|Bosnian|bos|bos|
ca_es|Catalan|cat|cat|
ceb_ph|Cebuano|ceb|ceb|
ckb_iq|Sorani Kurdish|ckb|ckb|Central Kurdish (not kur, the macrolanguage)
cmn_hans_cn|Mandarin Chinese|cmn|cmn|Mandarin, simplified script (not zho, the macrolanguage)
cs_cz|Czech|ces|ces|
cy_gb|Welsh|cym|cym|
da_dk|Danish|dan|dan|
de_de|German|deu|deu|
el_gr|Greek|ell|ell|
en_us|English|eng|eng|
es_419|Spanish|spa|spa|Latin American Spanish
et_ee|Estonian|ekk|ekk|Standard Estonian (est, the macrolanguage, is in URIEL too; the individual code is used)
fa_ir|Persian|pes|pes|Iranian Persian (fas, the macrolanguage, is not in URIEL)
ff_sn|Fula|fuc|fuc|Pulaar, the Fula of Senegal (ful, the macrolanguage, is not in URIEL)
fi_fi|Finnish|fin|fin|
fil_ph|Filipino|fil|tgl|fil is not in URIEL: Tagalog, of which Filipino is the standardised form
fr_fr|French|fra|fra|
ga_ie|Irish|gle|gle|
gl_es|Galician|glg|glg|
gu_in|Gujarati|guj|guj|
ha_ng|Hausa|hau|hau|
he_il|Hebrew|heb|heb|
hi_in|Hindi|hin|hin|
hr_hr|Croatian|hrv|hrv|
hu_hu|Hungarian|hun|hun|
hy_am|Armenian|hye|hye|
id_id|Indonesian|ind|ind|
ig_ng|Igbo|ibo|ibo|
is_is|Icelandic|isl|isl|
it_it|Italian|ita|ita|
ja_jp|Japanese|jpn|jpn|
jv_id|Javanese|jav|jav|
ka_ge|Georgian|kat|kat|
kam_ke|Kamba|kam|kam|
kea_cv|Kabuverdianu|kea|pov|kea is not in URIEL: Upper Guinea Crioulo, the Portuguese creole of Guinea-Bissau of the same Upper Guinea creole group
kk_kz|Kazakh|kaz|kaz|
km_kh|Khmer|khm|khm|
kn_in|Kannada|kan|kan|
ko_kr|Korean|kor|kor|
ky_kg|Kyrgyz|kir|kir|
lb_lu|Luxembourgish|ltz|ltz|
lg_ug|Ganda|lug|lug|
ln_cd|Lingala|lin|lin|
lo_la|Lao|lao|lao|
lt_lt|Lithuanian|lit|lit|
luo_ke|Luo|luo|luo|
lv_lv|Latvian|lvs|lav|lvs (Standard Latvian) is not in URIEL: lav, the macrolanguage
mi_nz|Maori|mri|mri|
mk_mk|Macedonian|mkd|mkd|
ml_in|Malayalam|mal|mal|
mn_mn|Mongolian|khk|khk|Halh Mongolian (mon, the macrolanguage, is not in URIEL)
mr_in|Marathi|mar|mar|
ms_my|Malay|zsm|zsm|Standard Malay (msa, the macrolanguage, is not used)
mt_mt|Maltese|mlt|mlt|
my_mm|Burmese|mya|mya|
nb_no|Norwegian Bokmal|nob|nob|
ne_np|Nepali|npi|nep|npi (Nepali individual language) is not in URIEL: nep, the macrolanguage
nl_nl|Dutch|nld|nld|
nso_za|Northern Sotho|nso|nso|
ny_mw|Nyanja|nya|nya|
oc_fr|Occitan|oci|oci|
om_et|Oromo|gaz|gaz|West Central Oromo, the Oromo of Ethiopia's capital region (orm, the macrolanguage, is not in URIEL)
or_in|Odia|ory|ori|ory (Odia individual language) is not in URIEL: ori, the macrolanguage
pa_in|Punjabi|pan|pan|Eastern Panjabi, Gurmukhi script
pl_pl|Polish|pol|pol|
ps_af|Pashto|pus|pst|pus (macrolanguage) and pbt (Southern Pashto) are not in URIEL: pst, Central Pashto, the only Pashto URIEL has; the variety of the speakers is not published
pt_br|Portuguese|por|por|Brazilian Portuguese
ro_ro|Romanian|ron|ron|
ru_ru|Russian|rus|rus|
sd_in|Sindhi|snd|snd|
sk_sk|Slovak|slk|slk|
sl_si|Slovenian|slv|slv|
sn_zw|Shona|sna|sna|
so_so|Somali|som|som|
sr_rs|Serbian|srp|srp|
sv_se|Swedish|swe|swe|
sw_ke|Swahili|swh|swh|Swahili individual language (swa, the macrolanguage, is not in URIEL)
ta_in|Tamil|tam|tam|
te_in|Telugu|tel|tel|
tg_tj|Tajik|tgk|tgk|
th_th|Thai|tha|tha|
tr_tr|Turkish|tur|tur|
uk_ua|Ukrainian|ukr|ukr|
umb_ao|Umbundu|umb|umb|
ur_pk|Urdu|urd|urd|
uz_uz|Uzbek|uzn|uzn|Northern Uzbek (uzb, the macrolanguage, is not in URIEL)
vi_vn|Vietnamese|vie|vie|
wo_sn|Wolof|wol|wol|
xh_za|Xhosa|xho|xho|
yo_ng|Yoruba|yor|yor|
yue_hant_hk|Cantonese|yue|yue|Cantonese, traditional script
zu_za|Zulu|zul|zul|
"""

#: locale -> :class:`Locale`, the 102 FLEURS locales in alphabetical order.
LOCALES = {}
for _line in _TABLE.strip().splitlines():
    _row = Locale(*_line.split("|"))
    LOCALES[_row.locale] = _row
del _line, _row


def uriel_fallbacks():
    """The locales whose ISO 639-3 code URIEL lacks, with the URIEL code used instead.

    Example
    -------
    >>> uriel_fallbacks()  # doctest: +NORMALIZE_WHITESPACE
    {'fil_ph': ('fil', 'tgl'), 'kea_cv': ('kea', 'pov'), 'lv_lv': ('lvs', 'lav'),
     'ne_np': ('npi', 'nep'), 'or_in': ('ory', 'ori'), 'ps_af': ('pus', 'pst')}
    """
    return {r.locale: (r.iso639_3, r.uriel) for r in LOCALES.values() if r.iso639_3 != r.uriel}


def parse_list(value):
    """Words of a comma- and/or whitespace-separated list (``None`` or ``""``: empty).

    Example
    -------
    >>> parse_list("hr_hr, sr_rs bs_ba")
    ['hr_hr', 'sr_rs', 'bs_ba']
    """
    return [w for w in re.split(r"[\s,]+", value or "") if w]


def check_locales(locales):
    """The locales asked for (all 102 when ``None`` or empty), checked against :data:`LOCALES`.

    Raises
    ------
    ValueError
        Naming the unknown locales.

    Example
    -------
    >>> check_locales("sr_rs,hr_hr")
    ['sr_rs', 'hr_hr']
    >>> len(check_locales(None))
    102
    """
    if isinstance(locales, str):
        locales = parse_list(locales)
    if not locales:
        return list(LOCALES)
    unknown = [loc for loc in locales if loc not in LOCALES]
    if unknown:
        raise ValueError(f"unknown FLEURS locale(s): {' '.join(unknown)} (known: {' '.join(LOCALES)})")
    return list(dict.fromkeys(locales))


def candidates(data_root, locale):
    """Folders that :func:`locate` tries for ``locale``: ``<root>/data/<locale>``, ``<root>/<locale>``."""
    return [os.path.join(data_root, "data", locale), os.path.join(data_root, locale)]


def locate(data_root, locale):
    """The folder of ``locale`` (the one holding its ``<split>.tsv`` files) under ``data_root``.

    Raises
    ------
    FileNotFoundError
        Naming every folder looked at.
    """
    tried = candidates(data_root, locale)
    for folder in tried:
        if any(os.path.isfile(os.path.join(folder, f"{split}.tsv")) for split in SPLITS):
            return folder
    raise FileNotFoundError(f"FLEURS locale {locale} not found under {data_root}: looked for <split>.tsv in "
                            f"{', '.join(tried)}")


def download(dest, locales=None, splits=SPLITS, progress=True):
    """Download the TSVs and audio archives of ``locales`` into ``<dest>/data/<locale>/``.

    Resumable (see :func:`masr.corpora.download.download`); files already there are kept, and an
    archive is not fetched when its split is already unpacked (``audio/<split>/`` present).
    Hugging Face publishes no checksums for these files, so none is checked.

    Returns
    -------
    list of str
        The locale folders.
    """
    folders = []
    for locale in check_locales(locales):
        folder = os.path.join(dest, "data", locale)
        for split in splits:
            fetch(TSV_URL.format(locale=locale, split=split), os.path.join(folder, f"{split}.tsv"), progress=progress)
            if not os.path.isdir(os.path.join(folder, "audio", split)):
                fetch(AUDIO_URL.format(locale=locale, split=split),
                      os.path.join(folder, "audio", f"{split}.tar.gz"), progress=progress)
        folders.append(folder)
    return folders


def _unpack(job):
    """Unpack one ``(archive, target)`` (module-level, for :func:`parallel_map`)."""
    archive, target = job
    safe_extract(archive, target)
    return archive


def audio_folder(folder, split, extract=True):
    """The folder holding the wavs of ``split`` in the locale ``folder``.

    Uses ``audio/<split>/`` when it exists (and no newer archive needs unpacking); otherwise
    the archive ``audio/<split>.tar.gz`` must exist and, with ``extract``, is unpacked first
    (by the caller, see :func:`prepare`). Returns ``(folder, archive or None)``.

    Raises
    ------
    FileNotFoundError
        Neither the unpacked folder nor the archive; or only the archive with ``extract=False``.
    """
    audio = os.path.join(folder, "audio")
    unpacked = os.path.join(audio, split)
    archive = os.path.join(audio, f"{split}.tar.gz")
    if os.path.isfile(archive) and extract:
        return unpacked, archive
    if os.path.isdir(unpacked):
        return unpacked, None
    if os.path.isfile(archive):
        raise FileNotFoundError(f"{unpacked}: not unpacked (and extraction is off); archive: {archive}")
    raise FileNotFoundError(f"{archive}: audio archive not found (nor the unpacked folder {unpacked})")


def _clean(text):
    """Collapse whitespace runs to one space and strip."""
    return " ".join(text.split())


def read_tsv(path, locale):
    """Rows of one FLEURS TSV, read line by line and checked.

    Yields
    ------
    (lineno, dict)
        The fields of :data:`COLUMNS` (``num_samples`` as int, ``gender`` as ``m``/``f``/``None``,
        texts with whitespace collapsed), plus ``utt`` = ``<locale>-<id>-<file stem>``.

    Raises
    ------
    ValueError
        Naming ``file:line``: not valid UTF-8, not 7 tab-separated fields, a non-integer ``id``,
        a non-positive or non-integer ``num_samples``, an unknown gender, or a ``file_name``
        that is empty, holds whitespace or ``/``.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "test.tsv")
    >>> _ = open(p, "w").write("7\\t123.wav\\tHi!\\thi\\th i\\t16000\\tFEMALE\\n"
    ...                        "7\\t124.wav\\tHi!\\thi\\th i\\tx\\tMALE\\n")
    >>> rows = read_tsv(p, "en_us")
    >>> lineno, row = next(rows)
    >>> row["utt"], row["transcription"], row["num_samples"], row["gender"]
    ('en_us-7-123', 'hi', 16000, 'f')
    >>> next(rows)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: .../test.tsv:2: num_samples 'x' is not a positive integer
    """
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{where}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
            line = line.rstrip("\r\n")
            if not line.strip():
                continue  # a blank line (e.g. at the end) carries nothing
            fields = line.split("\t")
            if len(fields) != len(COLUMNS):
                raise ValueError(f"{where}: {len(fields)} tab-separated field(s), expected {len(COLUMNS)} "
                                 f"({', '.join(COLUMNS)})")
            row = dict(zip(COLUMNS, fields))
            sid, name = row["id"].strip(), row["file_name"].strip()
            if not sid.isdigit():
                raise ValueError(f"{where}: id '{row['id']}' is not a non-negative integer")
            if not name or "/" in name or len(name.split()) != 1:
                raise ValueError(f"{where}: file_name '{row['file_name']}' is empty or holds whitespace or '/'")
            try:
                num_samples = int(row["num_samples"])
            except ValueError:
                num_samples = 0
            if num_samples <= 0:
                raise ValueError(f"{where}: num_samples '{row['num_samples']}' is not a positive integer")
            gender = row["gender"].strip().upper()
            if gender not in GENDERS:
                raise ValueError(f"{where}: gender '{row['gender']}' is not one of {', '.join(GENDERS)}")
            row.update(id=sid, file_name=name, num_samples=num_samples, gender=GENDERS[gender],
                       raw_transcription=_clean(row["raw_transcription"]),
                       transcription=_clean(row["transcription"]),
                       utt=f"{locale}-{sid}-{os.path.splitext(name)[0]}")
            yield lineno, row


#: Files :func:`prepare` writes into a split's data directory (removed first on a rerun).
OUTPUT_FILES = ("wav.scp", "utt2spk", "spk2utt", "text", "utt2dur", "utt2lang", "utt2locale", "utt2gender")


def prepare(data_root, out_dir, locales=None, splits=SPLITS, nj=1, extract=True):
    """Write one data directory per split, ``<out_dir>/<split>``, holding every locale.

    Arguments
    ---------
    data_root : str
        Folder holding ``data/<locale>/`` (or ``<locale>/``) as on Hugging Face.
    out_dir : str
        Where to write ``<split>/`` data directories (e.g. ``data``); they are rewritten.
    locales : list of str, str or None
        FLEURS locales (a list, or a comma/space-separated string); ``None``: all 102.
    splits : sequence of str
        Among ``train``, ``dev``, ``test``.
    nj : int
        Processes unpacking archives.
    extract : bool
        Unpack ``audio/<split>.tar.gz`` (once; see :func:`masr.corpora.download.safe_extract`).
        Without it, ``audio/<split>/`` must already be unpacked.

    Returns
    -------
    dict
        split -> {file name -> {utt: value}}, as written.

    Raises
    ------
    FileNotFoundError
        A missing locale folder, TSV or archive (named), or a wav listed in a TSV but absent
        (naming the TSV line and the wav).
    ValueError
        A malformed TSV line (naming ``file:line``; see :func:`read_tsv`), a file listed twice
        with different content, or a split with no utterance.
    """
    locales = check_locales(locales)
    splits = list(splits)
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise ValueError(f"unknown FLEURS split(s): {' '.join(bad)} (known: {' '.join(SPLITS)})")
    # Find everything before unpacking anything, so a missing file stops the run at once.
    jobs, sources = [], []  # (archive, target); (locale, split, tsv, wav folder)
    for locale in locales:
        folder = locate(data_root, locale)
        for split in splits:
            tsv = os.path.join(folder, f"{split}.tsv")
            if not os.path.isfile(tsv):
                raise FileNotFoundError(f"{tsv}: FLEURS transcript file not found")
            wavs, archive = audio_folder(folder, split, extract)
            if archive is not None:
                jobs.append((archive, os.path.dirname(wavs)))
            sources.append((locale, split, tsv, wavs))
    for archive in progress(parallel_map(_unpack, jobs, nj=min(nj, len(jobs)), chunksize=1), total=len(jobs),
                            desc="fleurs unpacking", unit="archive"):
        logger.info("%s: unpacked", archive)

    result = {}
    for split in splits:
        files = {name: {} for name in ("wav.scp", "utt2spk", "text", "utt2dur", "utt2lang", "utt2locale")}
        genders, seen, skipped = {}, {}, 0
        for locale, tsv_split, tsv, wavs in sources:
            if tsv_split != split:
                continue
            code = LOCALES[locale].uriel
            with progress(read_tsv(tsv, locale), desc=f"fleurs {locale} {split}", unit="utt", leave=False) as rows:
                for lineno, row in rows:
                    where = f"{tsv}:{lineno}"
                    utt = row["utt"]
                    if utt in seen:
                        first, first_row = seen[utt]
                        if first_row != row:
                            raise ValueError(f"{where}: file_name '{row['file_name']}' already listed on line "
                                             f"{first} with other content")
                        logger.warning("%s: repeats line %d; kept once", where, first)
                        continue
                    seen[utt] = (lineno, row)
                    path = os.path.join(wavs, row["file_name"])
                    if not os.path.isfile(path):
                        flat = os.path.join(os.path.dirname(wavs), row["file_name"])  # archive without <split>/
                        if not os.path.isfile(flat):
                            raise FileNotFoundError(f"{where}: audio file {path} listed here not found")
                        path = flat
                    text = row["transcription"] or row["raw_transcription"]
                    if not text:
                        logger.warning("%s: no transcription; utterance %s skipped", where, utt)
                        skipped += 1
                        continue
                    files["wav.scp"][utt] = os.path.abspath(path)
                    files["utt2spk"][utt] = utt
                    files["text"][utt] = text
                    files["utt2dur"][utt] = f"{row['num_samples'] / SAMPLE_RATE:.3f}"
                    files["utt2lang"][utt] = code
                    files["utt2locale"][utt] = locale
                    genders[utt] = row["gender"]
        if not files["wav.scp"]:
            raise ValueError(f"FLEURS {split}: no utterances for locale(s) {' '.join(locales)}")
        other = sum(g is None for g in genders.values())
        if other:
            logger.warning("%s/%s: no utt2gender written: %d utterance(s) have gender OTHER (neither m nor f)",
                           out_dir, split, other)
        else:
            files["utt2gender"] = genders
        if skipped:
            logger.warning("%s/%s: %d utterance(s) without transcription skipped", out_dir, split, skipped)
        target = os.path.join(out_dir, split)
        for name in OUTPUT_FILES:  # stale files of an earlier run (e.g. utt2gender) must not survive
            if os.path.isfile(os.path.join(target, name)):
                os.remove(os.path.join(target, name))
        write_data_dir(target, files)
        result[split] = files
    return result


def read_langs(spec):
    """Language list from ``spec``: a file (words separated by whitespace/commas, ``#`` comments)
    when such a file exists, else the comma/space-separated list itself."""
    if spec and os.path.isfile(spec):
        with open(spec, encoding="utf-8") as f:
            return parse_list(" ".join(line.split("#", 1)[0] for line in f))
    return parse_list(spec)


def write_overlap(out_dir, pretrain_langs, locales=None):
    """Split the FLEURS languages into those in the pretraining data and the others.

    Which languages overlap depends only on the pretraining data given (the paper's mix gives
    48 overlapped / 54 non-overlapped of the 102); nothing here is specific to it. An entry of
    ``pretrain_langs`` matches a locale by its URIEL code, its ISO 639-3 code or the locale
    itself; entries that match no FLEURS locale (pretraining-only languages) are ignored.

    Arguments
    ---------
    out_dir : str
        Folder receiving ``langs_overlapped.txt`` and ``langs_non_overlapped.txt``.
    pretrain_langs : iterable of str or str
        Codes (or locales) of the pretraining languages; a string is a file or a list
        (see :func:`read_langs`).
    locales : list of str or None
        The FLEURS locales considered (default all 102).

    Returns
    -------
    (list of str, list of str)
        Sorted URIEL codes (as in ``utt2lang``): overlapped, non-overlapped.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> write_overlap(d, "hrv eng fil_ph xyz", locales=["hr_hr", "sr_rs", "fil_ph"])
    (['hrv', 'tgl'], ['srp'])
    >>> open(os.path.join(d, "langs_non_overlapped.txt")).read()
    'srp\\n'
    """
    if isinstance(pretrain_langs, str):
        pretrain_langs = read_langs(pretrain_langs)
    wanted = set(pretrain_langs)
    overlapped, non_overlapped = [], []
    for locale in check_locales(locales):
        row = LOCALES[locale]
        hit = wanted & {row.uriel, row.iso639_3, row.locale}
        (overlapped if hit else non_overlapped).append(row.uriel)
    overlapped, non_overlapped = sorted(set(overlapped)), sorted(set(non_overlapped))
    os.makedirs(out_dir, exist_ok=True)
    for name, codes in (("langs_overlapped.txt", overlapped), ("langs_non_overlapped.txt", non_overlapped)):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            f.writelines(f"{c}\n" for c in codes)
    return overlapped, non_overlapped


def main(argv=None):
    """Command line (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m masr.corpora.fleurs", description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", required=True, help="folder holding data/<locale>/ (downloaded into with "
                                                           "--download)")
    parser.add_argument("--out", required=True, help="folder receiving one data directory per split, e.g. data")
    parser.add_argument("--locales", default="", help="comma/space-separated FLEURS locales (default: all 102)")
    parser.add_argument("--splits", default=",".join(SPLITS), help="comma/space-separated splits (default: "
                                                                   "train,dev,test)")
    parser.add_argument("--download", action="store_true", help=f"download missing files from {URL}")
    parser.add_argument("--no-extract", action="store_true", help="use only already unpacked audio/<split>/ folders")
    parser.add_argument("--pretrain-langs", default="",
                        help="file or comma/space-separated list of the pretraining languages: writes "
                             "<out>/langs_overlapped.txt and langs_non_overlapped.txt")
    parser.add_argument("--nj", type=int, default=1, help="processes unpacking archives")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        locales = check_locales(args.locales)
        splits = parse_list(args.splits)
        if args.download:
            download(args.data_root, locales, splits)
        result = prepare(args.data_root, args.out, locales, splits, nj=args.nj, extract=not args.no_extract)
        if args.pretrain_langs:
            overlapped, non_overlapped = write_overlap(args.out, args.pretrain_langs, locales)
            print(f"fleurs: {len(overlapped)} overlapped, {len(non_overlapped)} non-overlapped languages -> "
                  f"{args.out}/langs_overlapped.txt, {args.out}/langs_non_overlapped.txt")
    except (OSError, ValueError, RuntimeError) as e:
        print(f"fleurs: {e}", file=sys.stderr)
        return 1
    for split, files in result.items():
        langs = collections.Counter(files["utt2lang"].values())
        print(f"fleurs: {args.out}/{split}: {len(files['wav.scp'])} utterances, {len(langs)} languages"
              f"{'' if 'utt2gender' in files else ' (no utt2gender: gender OTHER present)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
