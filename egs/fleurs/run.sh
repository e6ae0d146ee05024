#!/usr/bin/env bash
# FLEURS: spoken language identification (the MASR paper's Table 1 and Figures 2-4).
# Corpus options only; the stages are recipes/masr.sh (./run.sh --help lists them).
# STATUS: stages 1-2 (data preparation, features); the training configs are not written yet (README.md).
set -euo pipefail
cd "$(dirname "$0")"
fleurs_root=${FLEURS_ROOT:-downloads/fleurs}   # where the FLEURS release is (or will be) unpacked
exec ../../recipes/masr.sh \
  --corpus fleurs \
  --splits "train dev test" \
  --local-data-opts "--data-root $fleurs_root" \
  --fbank-config conf/fbank.yaml \
  "$@"
