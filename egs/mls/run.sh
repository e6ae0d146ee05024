#!/usr/bin/env bash
# Multilingual LibriSpeech (MLS): CTC ASR fine-tuning in de en es fr it nl (the MASR paper's Table 3).
# Corpus options only; the stages are recipes/masr.sh (./run.sh --help lists them).
# STATUS: data preparation is not implemented yet (see README.md); stage 1 stops with a message.
set -euo pipefail
cd "$(dirname "$0")"
mls_root=${MLS_ROOT:-downloads/mls}
exec ../../recipes/masr.sh \
  --corpus mls \
  --splits "train dev test" \
  --local-data-opts "--data-root $mls_root" \
  --fbank-config conf/fbank.yaml \
  "$@"
