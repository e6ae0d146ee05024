#!/usr/bin/env bash
# Dhvani: spoken language identification in the 22 scheduled languages of India (the MASR paper's
# Table 1, Dhvani half). Corpus options only; the stages are recipes/masr.sh (./run.sh --help lists
# them). This recipe trains no encoder: it fine-tunes the pretrained runs of egs/mix (--model-exp
# ../mix/exp: run egs/mix stages 1-4 first). Stages used: 1 data, 2 features, 5 LangID, 8 report.
# STATUS: never run on real data (README.md).
#   DHVANI_ROOT=/data/dhvani ./run.sh --stop-stage 2 --nj 16        data and features (CPUs)
#   ./run.sh --stage 5 --nj 1                                       LangID fine-tuning (one GPU) and report
#   ./run.sh --stage 5 --seeds "1 2 3"   three seeds (egs/mix stage 4 run with the same --seeds): mean, spread, CIs
set -euo pipefail
# where the local Dhvani copy is (not downloadable); a relative DHVANI_ROOT is relative to where you call from
dhvani_root="$(realpath -m "${DHVANI_ROOT:-$(dirname "$0")/downloads/dhvani}")"
cd "$(dirname "$0")"
# egs/mix's pretraining languages split the test languages into overlapped (O) and non-overlapped (NO).
exec ../../recipes/masr.sh \
  --nj 1 \
  --corpus dhvani \
  --splits "train dev test" \
  --local-data-opts "--data-root $dhvani_root --pretrain-langs ../mix/data/pretrain_langs.txt" \
  --fbank-config conf/fbank.yaml \
  --pretrain-configs "" --masr-configs "" \
  --model-exp ../mix/exp \
  --langid-pretrain-langs ../mix/data/pretrain/utt2lang \
  --langid-models "pretrain_bestrq continue_lasr continue_masr" \
  --asr-models "" --probe-models "" \
  "$@"
