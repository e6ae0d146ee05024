#!/usr/bin/env bash
# Data preparation for noss: <data>/fsdd (masr.corpora.fsdd) and <data>/emodb (masr.corpora.emodb)
# from the corpora under --data-root, each one whose source is there (or downloaded into it with
# --download true). Fails when neither is found. Prints the counts of each data dir written.
# Also prepares, only when their source is already under --data-root (never downloaded here):
#   <data>/esc50 and <data>/esc50_human      masr.corpora.esc50   (<data-root>/esc50/ESC-50-master)
#   <data>/voxforge                          masr.corpora.voxforge (<data-root>/voxforge/<lang>/<session>)
#   <data>/asvspoof_{train,dev,eval}         masr.corpora.asvspoof2019 (<data-root>/LA, licensed)
#   <data>/iemocap                           masr.corpora.iemocap (<data-root>/IEMOCAP_full_release, licensed)
#   <data>/mask                              masr.corpora.mask (<data-root>/ComParE2020_Mask, licensed)
# Usage: local/prepare_data.sh [--nj N] [--data DIR] [--data-root DIR] [--download true|false]
set -euo pipefail
nj=1
data=data
data_root=downloads
download=false
help_message="Usage: $0 [--nj N] [--data DIR] [--data-root DIR] [--download true|false]
  Writes <data>/fsdd from <data-root>/fsdd/recordings and <data>/emodb from <data-root>/emodb/{wav,flac}
  (downloaded with --download true); also <data>/esc50{,_human}, <data>/voxforge,
  <data>/asvspoof_{train,dev,eval}, <data>/iemocap and <data>/mask from those corpora found under <data-root>."
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
# shellcheck disable=SC1091
. "$root/tools/parse_options.sh"
if [ $# -gt 0 ]; then echo "$0: unexpected argument '$1' (see --help)" >&2; exit 2; fi
case "$download" in true|false) ;; *) echo "$0: --download must be true or false, got '$download'" >&2; exit 2 ;; esac
[[ "$nj" =~ ^[0-9]+$ ]] || { echo "$0: --nj must be a non-negative integer, got '$nj'" >&2; exit 2; }
# shellcheck disable=SC1091
. "$root/tools/env.sh"

dl_opt=()
[ "$download" = true ] && dl_opt=(--download)
prepared=() missing=()
for corpus in fsdd emodb; do
  if [ "$download" = false ] && ! msg=$(python -m "masr.corpora.$corpus" --data-root "$data_root" --locate 2>&1); then
    echo "$0: $corpus: skipped (${msg%%$'\n'*})" >&2
    missing+=("$msg")
    continue
  fi
  python -m "masr.corpora.$corpus" --data-root "$data_root" --out "$data/$corpus" --nj "$nj" "${dl_opt[@]}"
  prepared+=("$data/$corpus")
done

# The other NOSS corpora: prepared only when present. <module>:<--out>:<data dirs written>
for entry in "esc50:esc50:esc50 esc50_human" "voxforge:voxforge:voxforge" \
    "asvspoof2019:asvspoof:asvspoof_train asvspoof_dev asvspoof_eval" "iemocap:iemocap:iemocap" \
    "mask:mask:mask"; do
  IFS=: read -r corpus out dirs <<< "$entry"
  if ! msg=$(python -m "masr.corpora.$corpus" --data-root "$data_root" --locate 2>&1); then
    echo "$0: $corpus: skipped (${msg%%$'\n'*})" >&2
    missing+=("${msg%%$'\n'*}")
    continue
  fi
  python -m "masr.corpora.$corpus" --data-root "$data_root" --out "$data/$out" --nj "$nj"
  for d in $dirs; do
    if [ -f "$data/$d/wav.scp" ]; then prepared+=("$data/$d"); fi  # asvspoof_dev: only with its protocol
  done
done

if [ ${#prepared[@]} -eq 0 ]; then
  {
    echo "$0: no corpus found under --data-root '$data_root':"
    printf '  %s\n' "${missing[@]}"
    echo "Point --data-root at the folder holding fsdd/ and emodb/ (e.g. ../../../shared/data)," \
      "or pass --download true (esc50/, voxforge/, LA/, IEMOCAP_full_release/ and ComParE2020_Mask/ are used when there)."
  } >&2
  exit 1
fi
for d in "${prepared[@]}"; do
  echo "$d: $(wc -l < "$d/wav.scp") utterances, $(wc -l < "$d/spk2utt") speakers"
done
