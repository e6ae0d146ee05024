#!/usr/bin/env bash
# Build the embedded corpus: synthesize the audio into <db> and write <data>/<split>/.
# Usage: local/prepare_data.sh [--nj N] [--data DIR] [--db DIR] [--corpus-config FILE] [--key value ...]
# Options after the known ones override keys of the corpus config (e.g. --seed 7).
set -euo pipefail
nj=1
data=data
db=db
corpus_config=conf/corpus.yaml
help_message="Usage: $0 [--nj N] [--data DIR] [--db DIR] [--corpus-config FILE] [--<config-key> value ...]"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --nj|--data|--db|--corpus-config) v="${1#--}"; printf -v "${v//-/_}" '%s' "$2"; shift 2 ;;
    --help|-h) echo "$help_message"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
python -m masr.corpora.mini "$corpus_config" --db "$db" --data "$data" --nj "$nj" "${args[@]}"
