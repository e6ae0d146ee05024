#!/usr/bin/env bash
# A recipe for your own corpus: spoken language identification on pretrained encoders.
# Copy it with `tools/new_recipe.sh NAME` (egs/NAME), point it at your data, run it:
#   CORPUS_WAVS=/data/mycorpus ./run.sh        recordings in <root>/<lang>/[<speaker>/]<name>.wav
#   CORPUS_KALDI=/data/kaldi/mycorpus ./run.sh Kaldi data dirs (train/, dev/, test/, or one to split)
# Stages used: 1 data, 2 features, 5 LangID fine-tuning, 8 report (README.md here).
# Encoders: egs/mini's (run ../mini/run.sh --stop-stage 4 first), or egs/mix's at the paper's scale:
#   ./run.sh --model-exp ../mix/exp --langid-models "pretrain_bestrq continue_lasr continue_masr" \
#            --langid-pretrain-langs ../mix/data/pretrain/utt2lang --fbank-config ../mix/conf/fbank.yaml
set -euo pipefail
cd "$(dirname "$0")"
if [ -n "${CORPUS_WAVS:-}" ]; then
  source=(--wav-root "$(realpath -m "$CORPUS_WAVS")" --split "train:0.8 dev:0.1 test:0.1")
elif [ -n "${CORPUS_KALDI:-}" ]; then
  source=(--kaldi-dir "$(realpath -m "$CORPUS_KALDI")")
  # one Kaldi dir to split: CORPUS_SPLIT="train:0.8 dev:0.1 test:0.1"
  [ -n "${CORPUS_SPLIT:-}" ] && source+=(--split "$CORPUS_SPLIT")
else
  source=()
fi
printf -v local_data_opts '%q ' "${source[@]}"
exec ../../recipes/masr.sh \
  --corpus "$(basename "$PWD")" \
  --nj 2 \
  --splits "train dev test" \
  --local-data local/prepare_data.sh \
  --local-data-opts "$local_data_opts" \
  --fbank-config conf/fbank.yaml \
  --pretrain-configs "" --masr-configs "" \
  --model-exp ../mini/exp \
  --langid-config conf/langid.yaml \
  --langid-models "continue_bestrq continue_lasr continue_masr" \
  --langid-pretrain-langs ../mini/dump/pretrain/utt2lang \
  --asr-models "" --probe-models "" \
  --report-config conf/report.yaml \
  "$@"
