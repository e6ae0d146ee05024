#!/usr/bin/env bash
# Frozen-embedding linear probes (the MASR paper's Table 2 protocol) on real recordings: FSDD
# (spoken digits: digit, speaker, accent) and EmoDB (German acted emotion). Corpus options only;
# the stages are recipes/masr.sh. This recipe trains no encoder: it probes the pretrained runs
# of another recipe (--model-exp, default ../mini/exp: run ./run.sh at the repository root first).
#   egs/noss/run.sh --data-root ../shared/data     corpora already on disk (upstream layouts)
#   egs/noss/run.sh --data-root downloads --download true   fetch them first (needs internet)
set -euo pipefail
# Corpus options: where the corpora are (or will be downloaded): --data-root, relative to where you
# call from (made absolute before `cd` below), or NOSS_ROOT (or the default), relative to this folder.
data_root=${NOSS_ROOT:-downloads}
download=false
args=()   # the rest: recipes/masr.sh's options
while [ $# -gt 0 ]; do
  case "$1" in
    --data-root|--download)
      [ $# -ge 2 ] || { echo "$0: option '$1' needs a value (see --help)" >&2; exit 2; }
      if [ "$1" = --data-root ]; then data_root="$(realpath -m "$2")"; else download="$2"; fi; shift 2 ;;
    -h|--help) echo "Corpus options of $0 (besides the stage options below):
  --data-root DIR    where the corpora are (or will be downloaded); default \$NOSS_ROOT or downloads
  --download true    download FSDD and EmoDB into --data-root first (needs internet)
"; args+=("$1"); shift ;;
    *) args+=("$1"); shift ;;
  esac
done
cd "$(dirname "$0")"
exec ../../recipes/masr.sh \
  --corpus noss \
  --splits "fsdd emodb" \
  --local-data-opts "--data-root $(printf '%q' "$data_root") --download $(printf '%q' "$download")" \
  --fbank-config conf/fbank.yaml \
  --pretrain-configs "" --masr-configs "" --langid-models "" --asr-models "" \
  --model-exp ../mini/exp \
  --probe-models "continue_bestrq continue_lasr continue_masr" \
  "${args[@]}"
