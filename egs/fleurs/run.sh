#!/usr/bin/env bash
# FLEURS: spoken language identification (the MASR paper's Table 1, FLEURS half, and Figures 2-4).
# Corpus options only; the stages are recipes/masr.sh (./run.sh --help lists them). This recipe
# trains no encoder: it fine-tunes the pretrained runs of egs/mix (--model-exp ../mix/exp: run egs/mix
# stages 1-4 first): BEST-RQ, +LASR, +MASR, and +MASR with each other lang2vec type (Figure 2).
# Stages used: 1 data, 2 features, 5 LangID, 8 report. STATUS: never run on real data (README.md).
#   FLEURS_ROOT=/data/fleurs ./run.sh --stop-stage 2 --nj 16       data and features (CPUs)
#   ./run.sh --stage 5 --nj 1                                      LangID fine-tuning (one GPU) and report
#   ./run.sh --stage 5 --seeds "1 2 3"   three seeds (egs/mix stage 4 run with the same --seeds): mean, spread, CIs
set -euo pipefail
# where the FLEURS release is (or will be) unpacked; a relative FLEURS_ROOT is relative to where you call from
fleurs_root="$(realpath -m "${FLEURS_ROOT:-$(dirname "$0")/downloads/fleurs}")"
cd "$(dirname "$0")"
# The Figure 2 runs are named explicitly (continue_masr_<type>, as egs/mix's --lang2vec-types names
# them): --lang2vec-types here would also start stage 4, which belongs to egs/mix.
# egs/mix's pretraining languages split the test languages into overlapped (O) and non-overlapped (NO).
exec ../../recipes/masr.sh \
  --nj 1 \
  --corpus fleurs \
  --splits "train dev test" \
  --local-data-opts "--data-root $fleurs_root --pretrain-langs ../mix/data/pretrain_langs.txt" \
  --fbank-config conf/fbank.yaml \
  --pretrain-configs "" --masr-configs "" \
  --model-exp ../mix/exp \
  --langid-pretrain-langs ../mix/data/pretrain/utt2lang \
  --langid-models "pretrain_bestrq continue_lasr continue_masr continue_masr_geographic continue_masr_phonological
    continue_masr_featural continue_masr_genetic continue_masr_inventory" \
  --asr-models "" --probe-models "" \
  "$@"
