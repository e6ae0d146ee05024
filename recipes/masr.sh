#!/usr/bin/env bash
# The shared staged recipe: every egs/<corpus>/run.sh sets its corpus options and calls this.
# Stage logic lives here once; a corpus only brings its data preparation (local/) and configs.
#
# Each stage is skipped when it already finished with the same options and config contents
# (a stamp in <exp>/stamps/), unless --force true. Each stage logs to <exp>/log/stage<N>.<name>.log.
set -euo pipefail

# ---- options (each can be given as --name value; see --help) -------------------------------
stage=1                 # first stage to run
stop_stage=100          # last stage to run
nj=2                    # parallel jobs (processes)
force=false             # true: rerun stages even when their stamp says they are done
config=                 # (parse_options.sh: --config FILE sources option assignments)
corpus=corpus           # name used in messages
data=data               # data dirs: <data>/<split>
dump=dump               # features: <dump>/<split>
exp=exp                 # logs, stamps, statistics, models
splits="train dev test" # data dirs stage 1 must produce
local_data=local/prepare_data.sh   # the corpus's data preparation script (stage 1)
local_data_opts=        # extra options for it, e.g. "--corpus-config conf/corpus.yaml"
fbank_config=conf/fbank.yaml       # stage 2 config
validate_opts=          # e.g. "--no-audio" for huge corpora
pretrain_configs=conf/pretrain_bestrq.yaml   # stage 3: one SSL run per config (exp/<config name>)
pretrain_set=pretrain   # dump dir the SSL models train on
valid_set=dev           # dump dir for the validation loss
pretrain_opts=          # extra overrides for every pretraining run, e.g. "--max_steps 50"
launcher=python         # or "torchrun --nproc_per_node=4" for DDP
masr_configs="conf/continue_bestrq.yaml conf/continue_lasr.yaml conf/continue_masr.yaml conf/continue_geomasr.yaml conf/continue_textmasr.yaml"
baseline=pretrain_bestrq   # stage 4 continues from <exp>/<baseline>'s newest checkpoint
masr_opts=              # extra overrides for every stage-4 run

print_help() { echo "Usage: $0 [options]

Stages:
  1  data       corpus preparation ($local_data), data-dir validation, <exp>/data_stats.tsv
  2  features   80-dim log-mel filterbanks -> <dump>/<split>/feats.scp, utt2num_frames, cmvn.ark
  3  pretrain   SSL pretraining (BEST-RQ) of each of --pretrain-configs -> <exp>/<config name>/
  4  masr       continued pretraining from <exp>/<baseline>: BEST-RQ, +LASR, +MASR, +GeoMASR,
                +TextMASR (--masr-configs) -> <exp>/<config name>/
  (stages 5-8 of the design: LangID, ASR, probes, report: not implemented yet)

Options:
  --stage N             first stage to run (default: $stage)
  --stop-stage M        last stage to run (default: $stop_stage)
  --nj N                parallel jobs (default: $nj)
  --force true|false    rerun stages already done (default: $force)
  --config FILE         a file of option assignments (e.g. nj=4), read where it appears
  --data DIR --dump DIR --exp DIR   output folders (default: $data $dump $exp)
  --splits \"A B ...\"    data dirs stage 1 produces (default: $splits)
  --local-data-opts S   extra options for $local_data (default: '$local_data_opts')
  --fbank-config FILE   filterbank config for stage 2 (default: $fbank_config)
  --validate-opts S     options for tools/validate_data_dir.sh (default: '$validate_opts')
  --pretrain-configs \"A.yaml B.yaml\"  stage 3 configs (default: $pretrain_configs)
  --pretrain-set S --valid-set S      dump dirs to train / validate on (default: $pretrain_set $valid_set)
  --pretrain-opts S     overrides for every run, e.g. \"--max_steps 50\" (default: '$pretrain_opts')
  --launcher CMD        python, or e.g. \"torchrun --nproc_per_node=2\" (default: $launcher)
  --masr-configs \"A.yaml ...\"  stage 4 configs (default: $masr_configs)
  --baseline NAME       stage 4 starts from <exp>/NAME (default: $baseline)
  --masr-opts S         overrides for every stage-4 run (default: '$masr_opts')"
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "$root/tools/parse_options.sh"
if [ $# -gt 0 ]; then echo "$0: unexpected argument '$1' (see --help)" >&2; exit 2; fi
for v in stage stop_stage nj; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "$0: --${v//_/-} must be a non-negative integer, got '${!v}'" >&2; exit 2; }
done
case "$force" in true|false) ;; *) echo "$0: --force must be true or false, got '$force'" >&2; exit 2 ;; esac
# shellcheck disable=SC1091
. "$root/tools/env.sh"

log() { echo "[$corpus $(date '+%H:%M:%S')] $*"; }

# The signature of a stage: its options and the contents of the files they name.
signature() {
  local arg
  for arg in "$@"; do
    echo "$arg"
    # shellcheck disable=SC2086
    for f in $arg; do [ -f "$f" ] && cat "$f"; done
  done | sha256sum | cut -d' ' -f1
}

# run_stage N NAME "SIGNATURE ARGS..." -- COMMAND: run a stage function with stamp and log.
run_stage() {
  local n="$1" name="$2" sig="$3"; shift 3
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then return 0; fi
  local stamp="$exp/stamps/stage$n.$name.done" logf="$exp/log/stage$n.$name.log"
  if [ "$force" = false ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sig" ]; then
    log "stage $n ($name): already done, skipping (--force true reruns it)"
    return 0
  fi
  mkdir -p "$exp/stamps" "$exp/log"
  rm -f "$stamp"
  log "stage $n ($name): start; log: $logf"
  local t0=$SECONDS
  # The subshell keeps `set -e` inside the stage: any failing command fails the stage.
  local rc
  set +e
  ( set -e; "$@" ) 2>&1 | tee "$logf"
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -ne 0 ]; then
    log "stage $n ($name): FAILED (exit $rc) after $((SECONDS - t0)) s; see $logf" >&2
    exit 1
  fi
  echo "$sig" > "$stamp"
  log "stage $n ($name): done in $((SECONDS - t0)) s"
}

stage_data() {
  # shellcheck disable=SC2086
  "$local_data" --nj "$nj" --data "$data" $local_data_opts
  local split dirs=()
  for split in $splits; do
    # shellcheck disable=SC2086
    "$root/tools/validate_data_dir.sh" $validate_opts "$data/$split"
    dirs+=("$data/$split")
  done
  python -m masr.data.stats "${dirs[@]}" --out "$exp/data_stats.tsv"
}

stage_features() {
  local split
  for split in $splits; do
    python -m masr.features.extract "$fbank_config" --data "$data/$split" --out "$dump/$split" --nj "$nj"
    # shellcheck disable=SC2086
    "$root/tools/validate_data_dir.sh" --no-audio --no-lang "$dump/$split"
  done
}

stage_pretrain() {
  local conf tag
  for conf in $pretrain_configs; do
    tag="$(basename "$conf" .yaml)"
    # shellcheck disable=SC2086
    $launcher -m masr.train.pretrain "$conf" --train_dir "$dump/$pretrain_set" \
      --valid_dir "$dump/$valid_set" --exp_dir "$exp/$tag" --progress false $pretrain_opts
  done
}

# The newest finished checkpoint of the baseline run (empty if none).
baseline_checkpoint() {
  find "$exp/$baseline/checkpoints" -maxdepth 1 -name 'step-*' ! -name '*.tmp' 2>/dev/null | sort | tail -n 1
}

stage_masr() {
  local conf tag ckpt
  ckpt="$(baseline_checkpoint)"
  if [ -z "$ckpt" ]; then
    echo "stage 4: no checkpoint in $exp/$baseline/checkpoints: stage 3 must train '$baseline'" \
         "(is conf/$baseline.yaml among --pretrain-configs? otherwise set --baseline)" >&2
    return 1
  fi
  echo "stage 4: continuing from $ckpt"
  for conf in $masr_configs; do
    tag="$(basename "$conf" .yaml)"
    # shellcheck disable=SC2086
    $launcher -m masr.train.pretrain "$conf" --train_dir "$dump/$pretrain_set" \
      --valid_dir "$dump/$valid_set" --exp_dir "$exp/$tag" --baseline_dir "$exp/$baseline" \
      --init_from "$ckpt" --progress false $masr_opts
  done
}

run_stage 1 data "$(signature "$local_data" "$local_data_opts" "$splits" "$data")" stage_data
run_stage 2 features "$(signature "$fbank_config" "$splits" "$data" "$dump" "$exp/stamps/stage1.data.done")" stage_features
run_stage 3 pretrain "$(signature $pretrain_configs "$pretrain_opts" "$pretrain_set" "$valid_set" "$launcher" "$exp/stamps/stage2.features.done")" stage_pretrain
run_stage 4 masr "$(signature $masr_configs "$masr_opts" "$baseline" "$(baseline_checkpoint)" "$pretrain_set" "$valid_set" "$launcher" "$exp/stamps/stage3.pretrain.done")" stage_masr
log "finished stages $stage..$stop_stage"
