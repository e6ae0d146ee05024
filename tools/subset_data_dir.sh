#!/usr/bin/env bash
# Keep some utterances of a data dir (Kaldi's utils/subset_data_dir.sh): masr/data/subset.py.
# Usage: tools/subset_data_dir.sh SRC DST (--utt-list F | --spk-list F | --first N | --random N [--seed S])
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "$root/tools/env.sh"
exec python -m masr.data.subset subset "$@"
