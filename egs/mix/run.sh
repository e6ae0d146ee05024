#!/usr/bin/env bash
# The MASR paper's pretraining mix (section 4.1): VoxPopuli unlabelled speech, Common Voice, MLS and
# IARPA BABEL in one pretraining set; BEST-RQ pretraining of the 0.6B conformer for 1.25M steps
# (stage 3) and 250k-step continuations of its 1M-step checkpoint: +LASR, +MASR with every lang2vec
# type (stage 4). Corpus options only; the stages are recipes/masr.sh (./run.sh --help lists them).
# Stages 1-4 only (--stop-stage 4 by default): egs/fleurs, egs/dhvani and egs/mls fine-tune the
# encoders of exp/ (--model-exp ../mix/exp).
# STATUS: never run on real data (README.md).
#   VOXPOPULI_ROOT=/data/voxpopuli CV_ROOT=/data/cv CV_LOCALES=en,de,hi MLS_ROOT=/data/mls \
#     BABEL_ROOT=/data/babel ./run.sh --stop-stage 2 --nj 32      corpora, mix, features (CPUs)
#   ./run.sh --stage 3 --stop-stage 4 --nj 1 --launcher "torchrun --nproc_per_node=8"   pretraining (GPUs)
#   ./run.sh --stage 4 --nj 1 --launcher "torchrun --nproc_per_node=8" --masr-configs conf/continue_bestrq.yaml \
#     --lang2vec-types ""                                            the restart control
#   ./run.sh --cv-root DIR --cv-locales en,de --mls-root DIR ...   roots as options instead of variables
#   ./run.sh --prep-opts "--mix-alpha 0.5 --dev-limit 100"         more options of local/prepare_data.sh
set -euo pipefail
# Corpus options, as variables or options (the option wins): a corpus is prepared and mixed when its
# root is set; a relative root is relative to where you call from.
voxpopuli_root=${VOXPOPULI_ROOT:-} cv_root=${CV_ROOT:-} mls_root=${MLS_ROOT:-} babel_root=${BABEL_ROOT:-}
cv_locales=${CV_LOCALES:-}   # Common Voice locales, comma-separated (required with a Common Voice root)
prep_opts=                   # further options of local/prepare_data.sh (split like a command line)
args=()                      # the rest: recipes/masr.sh's options
while [ $# -gt 0 ]; do
  case "$1" in
    --voxpopuli-root|--cv-root|--cv-locales|--mls-root|--babel-root|--prep-opts)
      [ $# -ge 2 ] || { echo "$0: option '$1' needs a value (see --help)" >&2; exit 2; }
      v="${1#--}"; printf -v "${v//-/_}" '%s' "$2"; shift 2 ;;
    -h|--help) echo "Corpus options of $0 (besides the stage options below):
  --voxpopuli-root DIR --cv-root DIR --cv-locales L1,L2 --mls-root DIR --babel-root DIR
                     (or VOXPOPULI_ROOT, CV_ROOT, CV_LOCALES, MLS_ROOT, BABEL_ROOT): corpora of the mix
  --prep-opts S      further options of local/prepare_data.sh (local/prepare_data.sh --help)
"; args+=("$1"); shift ;;
    *) args+=("$1"); shift ;;
  esac
done
prep="${cv_locales:+ --cv-locales ${cv_locales// /,}}"
for v in voxpopuli_root cv_root mls_root babel_root; do   # absolute (before `cd`), quoted for split_opts
  [ -z "${!v}" ] || prep+=" --${v//_/-} $(printf '%q' "$(realpath -m "${!v}")")"
done
cd "$(dirname "$0")"
exec ../../recipes/masr.sh \
  --corpus mix \
  --stop-stage 4 \
  --splits "pretrain dev" \
  --local-data-opts "$prep $prep_opts" \
  --validate-opts "--no-audio" \
  --fbank-config conf/fbank.yaml \
  --shard-utts 2000 --feature-source audio_shards --cmvn-utts 20000 \
  --pretrain-configs conf/pretrain_bestrq.yaml \
  --baseline pretrain_bestrq --baseline-step 1000000 \
  --masr-configs "conf/continue_lasr.yaml conf/continue_masr.yaml" \
  --lang2vec-types "geographic phonological featural genetic inventory" \
  --langid-models "" --asr-models "" --probe-models "" \
  "${args[@]}"
