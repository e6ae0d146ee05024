#!/usr/bin/env bash
# Data preparation for noss: <data>/fsdd (masr.corpora.fsdd) and <data>/emodb (masr.corpora.emodb)
# from the corpora under --data-root, each one whose source is there (or downloaded into it with
# --download true). Fails when neither is found. Prints the counts of each data dir written.
# Usage: local/prepare_data.sh [--nj N] [--data DIR] [--data-root DIR] [--download true|false]
set -euo pipefail
nj=1
data=data
data_root=downloads
download=false
help_message="Usage: $0 [--nj N] [--data DIR] [--data-root DIR] [--download true|false]
  Writes <data>/fsdd from <data-root>/fsdd/recordings and <data>/emodb from <data-root>/emodb/{wav,flac}."
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

if [ ${#prepared[@]} -eq 0 ]; then
  {
    echo "$0: no corpus found under --data-root '$data_root':"
    printf '  %s\n' "${missing[@]}"
    echo "Point --data-root at the folder holding fsdd/ and emodb/ (e.g. ../../../shared/data)," \
      "or pass --download true."
  } >&2
  exit 1
fi
for d in "${prepared[@]}"; do
  echo "$d: $(wc -l < "$d/wav.scp") utterances, $(wc -l < "$d/spk2utt") speakers"
done
