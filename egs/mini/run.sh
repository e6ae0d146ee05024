#!/usr/bin/env bash
# The embedded corpus: 26 languages synthesized offline with eSpeak NG (see README.md here).
# Corpus options only; the stages are recipes/masr.sh (./run.sh --help lists them).
#   ./run.sh                          every stage
#   ./run.sh --stage 2 --stop-stage 2 features only
#   ./run.sh --local-data-opts "--corpus-config conf/corpus.yaml --seed 7"   another draw
set -euo pipefail
cd "$(dirname "$0")"
exec ../../recipes/masr.sh \
  --corpus mini \
  --splits "pretrain train dev test" \
  --local-data-opts "--corpus-config conf/corpus.yaml" \
  --fbank-config conf/fbank.yaml \
  "$@"
