#!/usr/bin/env bash
# Data preparation for dhvani (masr.corpora.dhvani): <data>/{train,dev,test}, each holding every language,
# speaker-disjoint (a speaker goes to train/dev/test by a hash of its id, 80/10/10), from a local copy of
# Dhvani under --data-root (<data-root>[/dhvani]/<language>/<speaker>/**/*.wav; not downloadable). Also
# writes <data>/langs_overlapped.txt and <data>/langs_non_overlapped.txt: the Dhvani languages in the
# pretraining data (--pretrain-langs) and the others.
# Usage: local/prepare_data.sh [--nj N] [--data DIR] [--data-root DIR] [--pretrain-langs FILE|L1,L2]
set -euo pipefail
nj=1
data=data
data_root=downloads/dhvani
pretrain_langs=
help_message="Usage: $0 [--nj N] [--data DIR] [--data-root DIR] [--pretrain-langs FILE|L1,L2]
  Writes <data>/train, <data>/dev, <data>/test from the Dhvani copy under <data-root> (masr.corpora.dhvani).
  --pretrain-langs: the pretraining languages (URIEL codes), a file (whitespace-separated, '#' comments,
  e.g. ../mix/data/pretrain_langs.txt) or a comma-separated list; empty, or a file that does not exist
  (with a warning): the list masr.corpora.dhvani assumes for the paper's mix."
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
# shellcheck disable=SC1091
. "$root/tools/parse_options.sh"
if [ $# -gt 0 ]; then echo "$0: unexpected argument '$1' (see --help)" >&2; exit 2; fi
[[ "$nj" =~ ^[0-9]+$ ]] || { echo "$0: --nj must be a non-negative integer, got '$nj'" >&2; exit 2; }
# shellcheck disable=SC1091
. "$root/tools/env.sh"

opts=(--data-root "$data_root" --out "$data" --nj "$nj")
if [ -f "$pretrain_langs" ]; then
  langs="$(sed 's/#.*//' "$pretrain_langs" | tr -s ' \t\n' ',,,')"
  langs="${langs#,}"
  opts+=(--pretrain-langs "${langs%,}")
elif [[ "$pretrain_langs" == */* ]]; then
  echo "$0: warning: --pretrain-langs $pretrain_langs: no such file (run egs/mix stage 1 first); the" \
    "overlap lists use masr.corpora.dhvani's assumed list" >&2
elif [ -n "$pretrain_langs" ]; then
  opts+=(--pretrain-langs "$pretrain_langs")
fi
if ! python -m masr.corpora.dhvani "${opts[@]}"; then
  echo "$0: Dhvani preparation failed. Point --data-root (DHVANI_ROOT in run.sh) at the folder holding" \
    "the language folders (hindi/, tamil/, ...) of your Dhvani copy." >&2
  exit 1
fi
