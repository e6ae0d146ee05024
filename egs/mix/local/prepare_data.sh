#!/usr/bin/env bash
# Data preparation for mix: the MASR paper's pretraining mix (section 4.1). Each corpus whose root is
# given is prepared by its module into <data>/<corpus>, then masr.corpora.mix combines them:
#   <data>/voxpopuli               masr.corpora.voxpopuli  (--voxpopuli-root; unlabelled, no dev split)
#   <data>/cv/{train,dev}          masr.corpora.commonvoice (--cv-root, --cv-locales)
#   <data>/mls/{train,dev}         masr.corpora.mls (--mls-root; also <data>/mls/<lang>_{train,dev})
#   <data>/babel/{training,dev}    masr.corpora.babel (--babel-root)
#   <data>/pretrain        the mix of the training sets: utt2lang, utt2corpus, weights.tsv (stage 3-4 data)
#   <data>/dev             the dev splits of CV, MLS and BABEL (not in the mix), at most --dev-limit
#                          utterances per corpus and language: held out for the validation loss
#   <data>/pretrain_text   the mix of the transcribed training sets only (CV, MLS, BABEL): TextMASR
#   <data>/pretrain_langs.txt      the languages of <data>/pretrain, one URIEL code a line (egs/fleurs,
#                                  egs/dhvani: languages overlapped with pretraining)
# With --geo-data (a prepared data dir with utt2lang) and --geo-metadata (Vaani-style CSV: state and
# district of each recording), masr.corpora.vaani adds utt2geo and <data>/pretrain_geo (and, with
# --geo-dev-data, <data>/dev_geo) are written for GeoMASR.
# Mix source names (id prefixes, utt2corpus values, --mix-weights keys): vp, cv, mls, babel, geo.
# Usage: local/prepare_data.sh [--nj N] [--data DIR] [--voxpopuli-root DIR] [--cv-root DIR --cv-locales L]
#          [--mls-root DIR] [--babel-root DIR] [--download true|false] [--mix-alpha A] [--mix-weights W]
#          [--geo-data DIR --geo-metadata CSV] ... (--help lists them all)
set -euo pipefail
nj=1
data=data
voxpopuli_root=
voxpopuli_languages=
cv_root=
cv_locales=
cv_version=
mls_root=
mls_languages="de en es fr it nl pl pt"
mls_opus=false
babel_root=
babel_decoder=
download=false
mix_alpha=1.0
mix_weights=
mix_limit=
dev_limit=200
geo_data=
geo_dev_data=
geo_metadata=
geo_key=file_name
geo_match=utt
geo_extra_table=
help_message="Usage: $0 [options]
  Prepares each corpus whose root is given and mixes them into <data>/pretrain (+ <data>/dev,
  <data>/pretrain_text, <data>/pretrain_langs.txt; <data>/pretrain_geo with --geo-data).
  --nj N                      parallel jobs of the preparers (default $nj)
  --data DIR                  output folder (default $data)
  --voxpopuli-root DIR        VoxPopuli: <DIR>/unlabelled_data/<lang>/<year>/*.ogg (or raw_audios/ + --download true)
  --voxpopuli-languages L     VoxPopuli codes, e.g. 'de fr' (default: all 23)
  --cv-root DIR               Common Voice: <DIR>/cv-corpus-<version>/<locale>/ (manual download)
  --cv-locales L              Common Voice locales, e.g. 'en de hi ta' (required with --cv-root)
  --cv-version V              Common Voice release (default: the newest under --cv-root)
  --mls-root DIR              MLS: <DIR>/mls_<language>[_opus]/ (or --download true)
  --mls-languages L           MLS codes, comma/space-separated (default: '$mls_languages')
  --mls-opus true|false       the Opus release instead of FLAC (default $mls_opus)
  --babel-root DIR            IARPA BABEL: language packs <DIR>/**/conversational/ (LDC, licensed)
  --babel-decoder D           sph2pipe or python (default: sph2pipe when on PATH)
  --download true|false       download VoxPopuli and MLS into their roots first (default $download)
  --mix-alpha A               group weights p(corpus, lang) ∝ utterances^A (default $mix_alpha)
  --mix-weights W             corpus or corpus/lang shares, e.g. 'vp=0.4,cv=0.2,mls=0.2,babel=0.2'
  --mix-limit N               at most N utterances per corpus and language in the mix (debugging)
  --dev-limit N               at most N utterances per corpus and language in <data>/dev (default $dev_limit)
  --geo-data DIR              a prepared data dir (wav.scp utt2spk utt2lang) with Vaani-style metadata
  --geo-dev-data DIR          its dev set (optional)
  --geo-metadata CSV          CSV with --geo-key, state and district columns (masr.corpora.vaani)
  --geo-key K --geo-match utt|stem --geo-extra-table CSV   see python -m masr.corpora.vaani --help"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
# shellcheck disable=SC1091
. "$root/tools/parse_options.sh"
if [ $# -gt 0 ]; then echo "$0: unexpected argument '$1' (see --help)" >&2; exit 2; fi
for v in download mls_opus; do
  case "${!v}" in true|false) ;; *) echo "$0: --${v//_/-} must be true or false, got '${!v}'" >&2; exit 2 ;; esac
done
[[ "$nj" =~ ^[0-9]+$ ]] || { echo "$0: --nj must be a non-negative integer, got '$nj'" >&2; exit 2; }
for v in mix_limit dev_limit; do
  [ -z "${!v}" ] || [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || {
    echo "$0: --${v//_/-} must be a positive integer, got '${!v}'" >&2; exit 2; }
done
if [ -n "$cv_root" ] && [ -z "${cv_locales// /}" ]; then
  echo "$0: --cv-root needs --cv-locales (the Common Voice locales of the mix, e.g. 'en de hi ta')" >&2; exit 2
fi
if [ -n "$geo_data" ] && [ -z "$geo_metadata" ]; then
  echo "$0: --geo-data needs --geo-metadata (the CSV giving each recording's state and district)" >&2; exit 2
fi
if [ -z "$voxpopuli_root$cv_root$mls_root$babel_root" ]; then
  echo "$0: no corpus root given: set at least one of --voxpopuli-root, --cv-root, --mls-root, --babel-root" \
    "(VOXPOPULI_ROOT, CV_ROOT, MLS_ROOT, BABEL_ROOT in run.sh)" >&2
  exit 2
fi
# shellcheck disable=SC1091
. "$root/tools/env.sh"

# name=dir pairs of the mixes; text_sources: the transcribed training sets
train_sources=() dev_sources=() text_sources=()
add_source() {  # add_source NAME TRAIN_DIR [DEV_DIR]
  train_sources+=("$1=$2")
  [ -f "$2/text" ] && text_sources+=("$1=$2")
  if [ -n "${3:-}" ] && [ -f "$3/wav.scp" ]; then dev_sources+=("$1=$3"); fi
  return 0
}

if [ -n "$voxpopuli_root" ]; then
  opts=(--data-root "$voxpopuli_root" --out "$data/voxpopuli" --nj "$nj")
  [ -n "$voxpopuli_languages" ] && opts+=(--languages "$voxpopuli_languages")
  [ "$download" = true ] && opts+=(--download)
  python -m masr.corpora.voxpopuli "${opts[@]}"
  add_source vp "$data/voxpopuli"
fi
if [ -n "$cv_root" ]; then
  opts=(--data-root "$cv_root" --out "$data/cv" --locales "$cv_locales" --splits "train,dev" --nj "$nj")
  [ -n "$cv_version" ] && opts+=(--version "$cv_version")
  python -m masr.corpora.commonvoice "${opts[@]}"
  add_source cv "$data/cv/train" "$data/cv/dev"
fi
if [ -n "$mls_root" ]; then
  opts=(--data-root "$mls_root" --out "$data/mls" --languages "${mls_languages//,/ }" --splits "train dev" --nj "$nj")
  [ "$download" = true ] && opts+=(--download)
  [ "$mls_opus" = true ] && opts+=(--opus)
  python -m masr.corpora.mls "${opts[@]}"
  add_source mls "$data/mls/train" "$data/mls/dev"
fi
if [ -n "$babel_root" ]; then
  opts=(--data-root "$babel_root" --out "$data/babel" --splits "training,dev")
  [ -n "$babel_decoder" ] && opts+=(--decoder "$babel_decoder")
  python -m masr.corpora.babel "${opts[@]}"
  add_source babel "$data/babel/training" "$data/babel/dev"
fi

# The --mix-weights entries naming one of the sources given (for the mixes of some sources only).
weights_of() {
  local item name out=()
  for item in ${mix_weights//,/ }; do
    for name in "$@"; do
      if [ "${item%%[=/]*}" = "${name%%=*}" ]; then out+=("$item"); fi
    done
  done
  (IFS=,; echo "${out[*]}")
}
# mix OUT WEIGHTS LIMIT NAME=DIR...: masr.corpora.mix (WEIGHTS, LIMIT: empty for none)
mix() {
  local opts=(--out "$1" --alpha "$mix_alpha" --seed 0) s
  [ -n "$2" ] && opts+=(--weights "$2")
  [ -n "$3" ] && opts+=(--limit "$3")
  shift 3
  for s in "$@"; do opts+=(--source "$s"); done
  python -m masr.corpora.mix "${opts[@]}"
}

mix "$data/pretrain" "$mix_weights" "$mix_limit" "${train_sources[@]}"
if [ ${#dev_sources[@]} -eq 0 ]; then
  echo "$0: no dev set: VoxPopuli's unlabelled speech has no dev split; add a transcribed corpus" \
    "(--cv-root, --mls-root or --babel-root) whose dev split is held out as <data>/dev" >&2
  exit 1
fi
mix "$data/dev" "" "$dev_limit" "${dev_sources[@]}"
rm -rf "$data/pretrain_text"
if [ ${#text_sources[@]} -gt 0 ]; then
  mix "$data/pretrain_text" "$(weights_of "${text_sources[@]}")" "$mix_limit" "${text_sources[@]}"
fi
cut -d' ' -f2 "$data/pretrain/utt2lang" | LC_ALL=C sort -u > "$data/pretrain_langs.txt"

# GeoMASR: location metadata on a data dir of its own (utt2geo must cover every utterance trained on)
rm -rf "$data/geo" "$data/pretrain_geo" "$data/dev_geo"
if [ -n "$geo_data" ]; then
  geo_opts=(--metadata "$geo_metadata" --key "$geo_key" --match "$geo_match")
  [ -n "$geo_extra_table" ] && geo_opts+=(--extra-table "$geo_extra_table")
  for entry in "geo-data:$geo_data:train:pretrain_geo" "geo-dev-data:$geo_dev_data:dev:dev_geo"; do
    IFS=: read -r option src split out <<< "$entry"
    [ -n "$src" ] || continue
    [ -f "$src/wav.scp" ] || { echo "$0: --$option: no $src/wav.scp" >&2; exit 1; }
    mkdir -p "$data/geo/$split"
    find "$src" -maxdepth 1 -type f -exec cp -t "$data/geo/$split" {} +
    python -m masr.corpora.vaani --data-dir "$data/geo/$split" "${geo_opts[@]}"
    mix "$data/$out" "" "" "geo=$data/geo/$split"
  done
fi

for d in "$data/pretrain" "$data/dev" "$data/pretrain_text" "$data/pretrain_geo" "$data/dev_geo"; do
  if [ -f "$d/wav.scp" ]; then
    echo "$d: $(wc -l < "$d/wav.scp") utterances, $(wc -l < "$d/spk2utt") speakers"
  fi
done
echo "$data/pretrain_langs.txt: $(wc -l < "$data/pretrain_langs.txt") languages"
