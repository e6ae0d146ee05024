#!/usr/bin/env bash
# Data preparation for fleurs (masr.corpora.fleurs): one data directory per split, <data>/{train,dev,test},
# holding every locale asked for, from the Hugging Face layout under --data-root
# (<data-root>/data/<locale>/{train,dev,test}.tsv and audio/<split>.tar.gz, or audio/<split>/ unpacked);
# downloaded into it first with --download true. With --pretrain-langs, also writes
# <data>/langs_overlapped.txt and <data>/langs_non_overlapped.txt (the split depends on the pretraining data).
# Usage: local/prepare_data.sh [--nj N] [--data DIR] [--data-root DIR] [--locales L1,L2] [--download true|false]
#                              [--pretrain-langs FILE|L1,L2]
set -euo pipefail
nj=1
data=data
data_root=downloads/fleurs
locales=
download=false
pretrain_langs=
help_message="Usage: $0 [--nj N] [--data DIR] [--data-root DIR] [--locales L1,L2] [--download true|false]
                          [--pretrain-langs FILE|L1,L2]
  Writes <data>/train, <data>/dev, <data>/test from <data-root>/data/<locale>/ (FLEURS as on Hugging Face).
  --locales: FLEURS locales, comma-separated (e.g. hr_hr,sr_rs,bs_ba); default all 102.
  --pretrain-langs: file or comma-separated list of the pretraining languages (ISO 639-3 or locales),
  e.g. ../mix/data/pretrain_langs.txt (a file path that does not exist: a warning, no overlap lists)."
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
# shellcheck disable=SC1091
. "$root/tools/parse_options.sh"
if [ $# -gt 0 ]; then echo "$0: unexpected argument '$1' (see --help)" >&2; exit 2; fi
case "$download" in true|false) ;; *) echo "$0: --download must be true or false, got '$download'" >&2; exit 2 ;; esac
[[ "$nj" =~ ^[0-9]+$ ]] || { echo "$0: --nj must be a non-negative integer, got '$nj'" >&2; exit 2; }
# shellcheck disable=SC1091
. "$root/tools/env.sh"

opts=(--data-root "$data_root" --out "$data" --nj "$nj")
[ -n "$locales" ] && opts+=(--locales "$locales")
if [[ "$pretrain_langs" == */* ]] && [ ! -f "$pretrain_langs" ]; then
  echo "$0: warning: --pretrain-langs $pretrain_langs: no such file (run egs/mix stage 1 first);" \
    "langs_overlapped.txt and langs_non_overlapped.txt not written" >&2
elif [ -n "$pretrain_langs" ]; then
  opts+=(--pretrain-langs "$pretrain_langs")
fi
[ "$download" = true ] && opts+=(--download)
if ! python -m masr.corpora.fleurs "${opts[@]}"; then
  echo "$0: FLEURS preparation failed. Point --data-root (FLEURS_ROOT in run.sh) at the folder holding" \
    "data/<locale>/, or pass --download true." >&2
  exit 1
fi
