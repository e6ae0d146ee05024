"""Vaani-style location metadata: ``utt2geo`` (``lat lon``) from the state and district of each recording.

Vaani (IISc/ARTPARK and Google) records speech district by district across India and publishes
the state and district of each recording, not coordinates. This module turns a metadata CSV
with ``state`` and ``district`` columns into ``utt2geo``:

- a known (state, district) pair gets the coordinates of the district headquarters
  (:data:`DISTRICTS`, a partial table: extend it with ``extra_table``);
- a known state with an unknown (or empty) district gets the state's approximate centroid
  (:data:`STATES`, all 28 states and 8 union territories), logged with a count;
- an unknown state is an error naming ``file:line`` and the value.

Names are matched case-insensitively with punctuation and ``&``/``and`` normalised, plus a few
old names (:data:`STATE_ALIASES`: Orissa, Uttaranchal, Pondicherry, NCT of Delhi, ...).

Assumptions (not verified against a Vaani release): the metadata is a CSV with a header holding
``state`` and ``district`` (any case) and a key column naming the recording (``--key``, default
``file_name``); keys are matched against utterance ids, or with ``match="stem"`` against the
audio file name without extension in ``wav.scp``. The coordinates are approximate (about 0.1
degree): state centroids and district headquarters, written from general knowledge, not from a
gazetteer.

Usage::

    python -m masr.corpora.vaani --data-dir data/vaani --metadata meta.csv [--key file_name] [--match stem]
        [--extra-table districts.csv]
"""

import argparse
import csv
import logging
import os
import re
import sys

from masr.data.datadir import DataDir, write_kaldi_map

logger = logging.getLogger(__name__)

#: State or union territory -> approximate centroid (lat, lon).
STATES = {
    "andhra pradesh": (15.9, 79.7), "arunachal pradesh": (28.2, 94.7), "assam": (26.2, 92.9),
    "bihar": (25.1, 85.3), "chhattisgarh": (21.3, 81.9), "goa": (15.3, 74.1), "gujarat": (22.7, 71.6),
    "haryana": (29.1, 76.1), "himachal pradesh": (31.9, 77.2), "jharkhand": (23.6, 85.3),
    "karnataka": (15.3, 75.7), "kerala": (10.5, 76.3), "madhya pradesh": (23.8, 78.5),
    "maharashtra": (19.7, 75.7), "manipur": (24.7, 93.9), "meghalaya": (25.5, 91.4), "mizoram": (23.2, 92.9),
    "nagaland": (26.2, 94.6), "odisha": (20.5, 84.4), "punjab": (31.1, 75.3), "rajasthan": (27.0, 74.2),
    "sikkim": (27.5, 88.5), "tamil nadu": (11.1, 78.7), "telangana": (18.1, 79.0), "tripura": (23.9, 91.9),
    "uttar pradesh": (26.8, 80.9), "uttarakhand": (30.1, 79.0), "west bengal": (23.0, 87.9),
    "andaman and nicobar islands": (11.7, 92.7), "chandigarh": (30.7, 76.8),
    "dadra and nagar haveli and daman and diu": (20.4, 72.9), "delhi": (28.65, 77.1),
    "jammu and kashmir": (33.5, 75.0), "ladakh": (34.2, 77.6), "lakshadweep": (10.6, 72.6),
    "puducherry": (11.9, 79.8),
}

#: Older or alternative state names -> the name in :data:`STATES`.
STATE_ALIASES = {
    "orissa": "odisha", "uttaranchal": "uttarakhand", "pondicherry": "puducherry", "nct of delhi": "delhi",
    "new delhi": "delhi", "andaman and nicobar": "andaman and nicobar islands",
    "dadra and nagar haveli": "dadra and nagar haveli and daman and diu",
    "daman and diu": "dadra and nagar haveli and daman and diu", "jammu kashmir": "jammu and kashmir",
}

#: (state, district) -> approximate coordinates of the district headquarters (partial table).
DISTRICTS = {
    ("karnataka", "bengaluru urban"): (12.97, 77.59), ("karnataka", "mysuru"): (12.30, 76.64),
    ("karnataka", "dharwad"): (15.46, 75.01), ("karnataka", "belagavi"): (15.85, 74.50),
    ("karnataka", "kalaburagi"): (17.33, 76.83), ("karnataka", "dakshina kannada"): (12.91, 74.86),
    ("tamil nadu", "chennai"): (13.08, 80.27), ("tamil nadu", "madurai"): (9.93, 78.12),
    ("tamil nadu", "coimbatore"): (11.02, 76.96), ("maharashtra", "mumbai"): (19.08, 72.88),
    ("maharashtra", "pune"): (18.52, 73.86), ("maharashtra", "nagpur"): (21.15, 79.09),
    ("uttar pradesh", "lucknow"): (26.85, 80.95), ("uttar pradesh", "varanasi"): (25.32, 82.97),
    ("bihar", "patna"): (25.59, 85.14), ("bihar", "muzaffarpur"): (26.12, 85.39), ("bihar", "purnia"): (25.78, 87.47),
    ("west bengal", "kolkata"): (22.57, 88.36), ("west bengal", "darjeeling"): (27.04, 88.27),
    ("telangana", "hyderabad"): (17.39, 78.49), ("andhra pradesh", "guntur"): (16.31, 80.44),
    ("andhra pradesh", "visakhapatnam"): (17.69, 83.22), ("rajasthan", "jaipur"): (26.91, 75.79),
    ("gujarat", "ahmedabad"): (23.02, 72.57), ("madhya pradesh", "bhopal"): (23.26, 77.41),
    ("kerala", "thiruvananthapuram"): (8.52, 76.94), ("kerala", "ernakulam"): (9.98, 76.28),
    ("odisha", "khordha"): (20.30, 85.82), ("assam", "kamrup metropolitan"): (26.14, 91.74),
    ("punjab", "amritsar"): (31.63, 74.87), ("jharkhand", "ranchi"): (23.34, 85.31),
    ("chhattisgarh", "raipur"): (21.25, 81.63), ("delhi", "new delhi"): (28.61, 77.21),
}

#: Alternative district names -> the name in :data:`DISTRICTS` (same state).
DISTRICT_ALIASES = {
    "bangalore": "bengaluru urban", "bangalore urban": "bengaluru urban", "bengaluru": "bengaluru urban",
    "mysore": "mysuru", "belgaum": "belagavi", "gulbarga": "kalaburagi", "mangalore": "dakshina kannada",
    "madras": "chennai", "mumbai city": "mumbai", "mumbai suburban": "mumbai", "calcutta": "kolkata",
    "trivandrum": "thiruvananthapuram", "vizag": "visakhapatnam", "khurda": "khordha", "purnea": "purnia",
}


class GeoError(ValueError):
    """A metadata row that cannot be placed; the message names ``file:line``."""


def normalise(name):
    """Lower case, ``&`` -> ``and``, punctuation and space runs -> one space.

    Example
    -------
    >>> normalise("  Jammu & Kashmir "), normalise("Dakshina-Kannada")
    ('jammu and kashmir', 'dakshina kannada')
    """
    text = name.lower().replace("&", " and ")
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


def state_key(state):
    """The :data:`STATES` key of a state name, or ``None``."""
    key = normalise(state)
    key = STATE_ALIASES.get(key, key)
    return key if key in STATES else None


def coordinates(state, district, districts=None):
    """``(lat, lon, level)`` of a (state, district), ``level`` ``"district"`` or ``"state"``; ``None``
    for an unknown state.

    Example
    -------
    >>> coordinates("Karnataka", "Bangalore"), coordinates("Orissa", "Unknown")
    ((12.97, 77.59, 'district'), (20.5, 84.4, 'state'))
    >>> coordinates("Atlantis", "x") is None
    True
    """
    table = DISTRICTS if districts is None else districts
    skey = state_key(state)
    if skey is None:
        return None
    dkey = normalise(district or "")
    dkey = DISTRICT_ALIASES.get(dkey, dkey)
    if (skey, dkey) in table:
        return (*table[(skey, dkey)], "district")
    return (*STATES[skey], "state")


def _columns(path, header, wanted):
    lower = {h.strip().lower(): h for h in header or []}
    missing = [w for w in wanted if w.lower() not in lower]
    if missing:
        raise GeoError(f"{path}:1: header lacks column(s) {' '.join(missing)} (got {' '.join(header or [])})")
    return [lower[w.lower()] for w in wanted]


def read_table(path):
    """Extra district coordinates from a CSV with columns ``state, district, lat, lon``.

    Raises
    ------
    GeoError
        ``file:line``: an unknown state, or a latitude/longitude that is not a number in range.
    """
    out = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        cols = _columns(path, reader.fieldnames, ("state", "district", "lat", "lon"))
        for lineno, row in enumerate(reader, start=2):
            state, district, lat, lon = (row[c] or "" for c in cols)
            skey = state_key(state)
            if skey is None:
                raise GeoError(f"{path}:{lineno}: unknown state '{state}' (known: {', '.join(sorted(STATES))})")
            try:
                lat, lon = float(lat), float(lon)
                if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                    raise ValueError
            except ValueError:
                raise GeoError(f"{path}:{lineno}: lat '{lat}' lon '{lon}' is not a valid position") from None
            out[(skey, normalise(district))] = (lat, lon)
    return out


def read_metadata(path, key="file_name", extra_table=None):
    """key -> ``"lat lon"`` for each row of a metadata CSV with ``state`` and ``district`` columns.

    Raises
    ------
    GeoError
        ``file:line``: an unknown state (naming it and the row's key), a missing column, an empty
        or repeated key.
    """
    districts = dict(DISTRICTS)
    if extra_table:
        districts.update(read_table(extra_table))
    out, by_state = {}, 0
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        kcol, scol, dcol = _columns(path, reader.fieldnames, (key, "state", "district"))
        for lineno, row in enumerate(reader, start=2):
            k = (row[kcol] or "").strip()
            if not k:
                raise GeoError(f"{path}:{lineno}: empty '{key}'")
            if k in out:
                raise GeoError(f"{path}:{lineno}: '{k}' repeated")
            found = coordinates(row[scol] or "", row[dcol] or "", districts)
            if found is None:
                raise GeoError(f"{path}:{lineno}: '{k}': unknown state '{row[scol]}' (district '{row[dcol]}'); "
                               f"known: {', '.join(sorted(STATES))}")
            lat, lon, level = found
            by_state += level == "state"
            out[k] = f"{lat:g} {lon:g}"
    if by_state:
        logger.info("%s: %d row(s) placed at their state's centroid (district not in the table)", path, by_state)
    return out


def add_utt2geo(data_dir, metadata, key="file_name", match="utt", extra_table=None):
    """Write ``<data_dir>/utt2geo`` from a metadata CSV; returns {utt: "lat lon"}.

    ``match="utt"`` looks each utterance id up as a key; ``match="stem"`` looks up the
    ``wav.scp`` file name without folder and extension.

    Raises
    ------
    GeoError
        An utterance without a metadata row (naming it and the metadata file).
    """
    dd = DataDir(data_dir)
    table = read_metadata(metadata, key, extra_table)
    wav = dd.read("wav.scp")
    geo = {}
    for utt in dd.utt_ids:
        k = utt if match == "utt" else os.path.splitext(os.path.basename(wav[utt].split()[0]))[0]
        if k not in table:
            raise GeoError(f"{metadata}: no row with {key} '{k}' (utterance '{utt}' of {dd.file('wav.scp')})")
        geo[utt] = table[k]
    write_kaldi_map(dd.file("utt2geo"), geo)
    return geo


def main(argv=None):
    """Command line (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m masr.corpora.vaani", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, help="data directory receiving utt2geo")
    parser.add_argument("--metadata", required=True, help="CSV with the key, state and district columns")
    parser.add_argument("--key", default="file_name", help="key column (default file_name)")
    parser.add_argument("--match", choices=("utt", "stem"), default="utt",
                        help="match keys to utterance ids or to wav.scp file stems")
    parser.add_argument("--extra-table", help="CSV state,district,lat,lon extending the district table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        geo = add_utt2geo(args.data_dir, args.metadata, args.key, args.match, args.extra_table)
    except (OSError, ValueError) as e:
        print(f"vaani: {e}", file=sys.stderr)
        return 1
    print(f"vaani: utt2geo for {len(geo)} utterances -> {args.data_dir}/utt2geo")
    return 0


if __name__ == "__main__":
    sys.exit(main())
