#!/usr/bin/env bash
# Split a data dir by speaker (or utterance), optionally per language: masr/data/subset.py.
# Usage: tools/split_data_dir.sh SRC DIR:FRACTION ... [--by speaker|utterance] [--stratify lang] [--hash] [--seed S]
#   e.g. tools/split_data_dir.sh data/all data/train:0.8 data/dev:0.1 data/test:0.1 --stratify lang
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "$root/tools/env.sh"
exec python -m masr.data.subset split "$@"
