#!/usr/bin/env bash
# Multilingual LibriSpeech (MLS): CTC ASR fine-tuning in de en es fr it nl (the MASR paper's Table 3).
# Corpus options only; the stages are recipes/masr.sh (./run.sh --help lists them). This recipe
# trains no encoder: it fine-tunes the pretrained runs of egs/mix (--model-exp ../mix/exp: run
# egs/mix stages 1-4 first): BEST-RQ and +MASR. Stages used: 1 data, 2 features, 6 ASR, 8 report.
# STATUS: never run on real data (README.md).
#   MLS_ROOT=/data/mls ./run.sh --stop-stage 2 --nj 32       data and features (CPUs)
#   ./run.sh --stage 6 --nj 1                                CTC fine-tuning (one GPU) and report
#   ./run.sh --stage 6 --seeds "1 2 3"   three seeds (egs/mix stage 4 run with the same --seeds): mean, spread, CIs
set -euo pipefail
# where the MLS releases are (or will be) unpacked; a relative MLS_ROOT is relative to where you call from
mls_root="$(realpath -m "${MLS_ROOT:-$(dirname "$0")/downloads/mls}")"
cd "$(dirname "$0")"
exec ../../recipes/masr.sh \
  --nj 1 \
  --corpus mls \
  --splits "train dev test" \
  --local-data-opts "--data-root $mls_root" \
  --validate-opts "--no-audio" \
  --fbank-config conf/fbank.yaml \
  --pretrain-configs "" --masr-configs "" \
  --model-exp ../mix/exp \
  --langid-models "" --probe-models "" \
  --asr-models "pretrain_bestrq continue_masr" \
  "$@"
