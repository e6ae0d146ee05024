#!/usr/bin/env bash
# The embedded corpus: 26 languages synthesized offline with eSpeak NG (see README.md here).
# Corpus options only; the stages are recipes/masr.sh (./run.sh --help lists them).
#   ./run.sh                          every stage (about 15 minutes on 2 CPU cores)
#   ./run.sh --config conf/quick.conf the same stages at toy size (a couple of minutes; CI)
#   ./run.sh --config conf/long.conf  encoders trained 10x longer, 3 seeds (about 90 minutes)
#   ./run.sh --stage 5 --stop-stage 5 LangID fine-tuning only
#   ./run.sh --seeds "1 2 3"          three seeds of stages 4-7: mean, spread and CIs in exp/RESULTS.md
set -euo pipefail
cd "$(dirname "$0")"
# --nj 3: the 3 runs of each of stages 4-7 (BEST-RQ, +LASR, +MASR) go at once, one CPU thread
# each; with 2 at a time the third ran alone and left a core idle.
exec ../../recipes/masr.sh \
  --corpus mini \
  --nj 3 \
  --splits "pretrain train dev test" \
  --local-data-opts "--corpus-config conf/corpus.yaml" \
  --fbank-config conf/fbank.yaml \
  --masr-configs "conf/continue_bestrq.yaml conf/continue_lasr.yaml conf/continue_masr.yaml" \
  --langid-models "continue_bestrq continue_lasr continue_masr" \
  --asr-models "continue_bestrq continue_masr" \
  --probe-models "continue_bestrq continue_lasr continue_masr" \
  "$@"
