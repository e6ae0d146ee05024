#!/usr/bin/env bash
# Stage 1's preparation: your corpus as Kaldi data dirs <data>/{train,dev,test} (masr/corpora/own.py).
# Usage: local/prepare_data.sh [--nj N] [--data DIR] (--wav-root DIR | --kaldi-dir DIR) [--split SPEC]
set -euo pipefail
nj=1
data=data
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --nj|--data) v="${1#--}"; printf -v "$v" '%s' "$2"; shift 2 ;;
    --help|-h) echo "Usage: $0 [--nj N] [--data DIR] (--wav-root DIR | --kaldi-dir DIR) [--split SPEC]"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ ${#args[@]} -eq 0 ]; then
  echo "$0: where is your corpus? set CORPUS_WAVS or CORPUS_KALDI (see run.sh)" >&2
  exit 1
fi
python -m masr.corpora.own --data "$data" --nj "$nj" "${args[@]}"
