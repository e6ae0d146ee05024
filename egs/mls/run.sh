#!/usr/bin/env bash
# Multilingual LibriSpeech (MLS): CTC ASR fine-tuning in de en es fr it nl (the MASR paper's Table 3).
# Corpus options only; the stages are recipes/masr.sh (./run.sh --help lists them).
# STATUS: stages 1-2 (data preparation, features); the training configs are not written yet (README.md).
set -euo pipefail
cd "$(dirname "$0")"
mls_root=${MLS_ROOT:-downloads/mls}
exec ../../recipes/masr.sh \
  --corpus mls \
  --splits "train dev test" \
  --local-data-opts "--data-root $mls_root" \
  --fbank-config conf/fbank.yaml \
  "$@"
