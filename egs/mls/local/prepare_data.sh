#!/usr/bin/env bash
# Data preparation for mls (masr.corpora.mls): <data>/<lang>_<split> per language and split
# (e.g. data/de_dev) and <data>/{train,dev,test}, their union over --languages, from the OpenSLR 94
# releases mls_<language>[_opus]/ under --data-root (downloaded into it with --download true).
# Usage: local/prepare_data.sh [--nj N] [--data DIR] [--data-root DIR] [--languages "de en ..."]
#          [--download true|false] [--limited ""|1hr|9hr|10hr] [--opus true|false] [--max-utts N]
set -euo pipefail
nj=1
data=data
data_root=downloads/mls
languages="de en es fr it nl"
download=false
limited=
opus=false
max_utts=
help_message="Usage: $0 [--nj N] [--data DIR] [--data-root DIR] [--languages \"de en es fr it nl\"|de,en,...]
         [--download true|false] [--limited ''|1hr|9hr|10hr] [--opus true|false] [--max-utts N]
  Writes <data>/<lang>_{train,dev,test} and <data>/{train,dev,test} from
  <data-root>/mls_<language>[_opus]/ (OpenSLR 94, https://www.openslr.org/94/).
  --limited restricts train to MLS's limited-supervision list; --opus uses the Opus release;
  --max-utts keeps the first N utterances of each language and split (quick runs)."
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
# shellcheck disable=SC1091
. "$root/tools/parse_options.sh"
if [ $# -gt 0 ]; then echo "$0: unexpected argument '$1' (see --help)" >&2; exit 2; fi
case "$download" in true|false) ;; *) echo "$0: --download must be true or false, got '$download'" >&2; exit 2 ;; esac
case "$opus" in true|false) ;; *) echo "$0: --opus must be true or false, got '$opus'" >&2; exit 2 ;; esac
case "$limited" in ""|1hr|9hr|10hr) ;; *) echo "$0: --limited must be empty, 1hr, 9hr or 10hr, got '$limited'" >&2; exit 2 ;; esac
[[ "$nj" =~ ^[0-9]+$ ]] || { echo "$0: --nj must be a non-negative integer, got '$nj'" >&2; exit 2; }
[ -z "$max_utts" ] || [[ "$max_utts" =~ ^[1-9][0-9]*$ ]] || {
  echo "$0: --max-utts must be a positive integer, got '$max_utts'" >&2; exit 2; }
[ -n "${languages// /}" ] || { echo "$0: --languages is empty" >&2; exit 2; }
# shellcheck disable=SC1091
. "$root/tools/env.sh"

opts=(--data-root "$data_root" --out "$data" --languages "${languages//,/ }" --nj "$nj")
[ "$download" = true ] && opts+=(--download)
[ "$opus" = true ] && opts+=(--opus)
[ -n "$limited" ] && opts+=(--limited "$limited")
[ -n "$max_utts" ] && opts+=(--max-utts "$max_utts")
python -m masr.corpora.mls "${opts[@]}"
