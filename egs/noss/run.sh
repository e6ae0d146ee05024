#!/usr/bin/env bash
# NOSS-style frozen-embedding linear probes (the MASR paper's Table 2), plus FSDD and EmoDB.
# Corpus options only; the stages are recipes/masr.sh (./run.sh --help lists them).
# STATUS: data preparation is not implemented yet (see README.md); stage 1 stops with a message.
set -euo pipefail
cd "$(dirname "$0")"
data_root=${NOSS_ROOT:-downloads}
exec ../../recipes/masr.sh \
  --corpus noss \
  --splits "fsdd emodb" \
  --local-data-opts "--data-root $data_root" \
  --fbank-config conf/fbank.yaml \
  "$@"
