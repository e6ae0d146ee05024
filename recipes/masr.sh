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
nj=2                    # parallel jobs (processes); under --cmd slurm: runs of stages 4-7 in flight
gpus=                   # e.g. "0 1 2 3": runs of stages 4-7 go one per GPU (each sees only its own)
cmd=local               # where runs of stages 2-7 execute: local, or "slurm [sbatch options]" (tools/cmd.sh)
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
shard_utts=0            # stage 2: N > 0 writes features in shuffled shards of N utterances (multi-node DDP)
feature_source=feats    # stage 2 writes filterbanks (feats) or, for the pretraining and validation
                        # sets, the audio in shards (audio_shards; needs --shard-utts; the pretraining
                        # configs then say feature_source: audio_shards)
audio_codec=flac        # audio shards: codec of audio not already FLAC/Opus (flac: lossless; opus: smaller)
cmvn_utts=0             # audio shards: global CMVN from N random utterances (0: all; the rest only decoded)
validate_opts=          # e.g. "--no-audio" for huge corpora
pretrain_configs=conf/pretrain_bestrq.yaml   # stage 3: one SSL run per config (exp/<config name>)
pretrain_set=pretrain   # dump dir the SSL models train on
valid_set=dev           # dump dir for the validation loss
pretrain_opts=          # extra overrides for every pretraining run, e.g. "--max_steps 50"
launcher=python         # or "torchrun --nproc_per_node=4" for DDP
masr_configs="conf/continue_bestrq.yaml conf/continue_lasr.yaml conf/continue_masr.yaml"   # stage 4
masr_configs+=" conf/continue_geomasr.yaml conf/continue_textmasr.yaml"
baseline=pretrain_bestrq   # stage 4 continues from <exp>/<baseline>'s newest checkpoint
baseline_step=          # ... or from its checkpoint of this step (the paper: 1000000; keep it
                        # with keep_steps)
masr_opts=              # extra overrides for every stage-4 run
seeds=1                 # replicates: stage 4 continues each config once per seed (<exp>/<config>/seed<S>/),
                        # stages 5-7 fine-tune / probe each model once per seed (on that seed's run)
lang2vec_config=conf/continue_masr.yaml   # stage 4 also runs it once per --lang2vec-types entry
lang2vec_types=         # e.g. "geographic genetic": exp/continue_masr_<type> (paper Fig. 2)
model_exp=              # where stages 5-7 find the pretrained runs (default: --exp)
langid_config=conf/langid.yaml
langid_models="continue_bestrq continue_lasr continue_masr"   # runs in <model_exp> to fine-tune
langid_sets="train dev test"   # dump dirs: train, select (dev), report (test)
langid_pretrain_langs=  # utt2lang of the pretraining data: its languages are the overlapped (O) ones
                        # (default: <dump>/<pretrain_set>/utt2lang,
                        # else <model_exp>/../dump/<pretrain_set>/utt2lang)
langid_opts=
asr_config=conf/asr.yaml
asr_models="continue_bestrq continue_masr"
asr_sets="train dev test"
asr_opts=
probe_config=conf/probe.yaml
probe_models="continue_bestrq continue_lasr continue_masr"
probe_opts=
report_config=conf/report.yaml
pack_models=            # stage 9: models to pack for sharing (python -m masr.hub pack): langid/<model>
                        # or asr/<model> (fine-tuned, per seed), or <run> (an encoder of <model_exp>)

print_help() { echo "Usage: $0 [options]

Stages:
  1  data       corpus preparation ($local_data), data-dir validation, <exp>/data_stats.tsv
                (and <exp>/corpus_stats.tsv for a mix of corpora)
  2  features   80-dim log-mel filterbanks -> <dump>/<split>/feats.scp, utt2num_frames, cmvn.ark
                (--shard-utts N: in shards of N random utterances + shards.tsv; configs with
                'sharded: true' then give each DDP rank its own shards)
  3  pretrain   SSL pretraining (BEST-RQ) of each of --pretrain-configs -> <exp>/<config name>/
  4  masr       continued pretraining from <exp>/<baseline>: BEST-RQ, +LASR, +MASR, +GeoMASR,
                +TextMASR (--masr-configs), once per seed of --seeds -> <exp>/<config name>/seed<S>/
                plus --lang2vec-config once per --lang2vec-types entry -> <exp>/<name>_<type>/seed<S>/
  5  langid     LangID fine-tuning of each --langid-models run, per seed -> <exp>/langid/<model>/seed<S>/
  6  asr        CTC ASR fine-tuning of each --asr-models run, per seed -> <exp>/asr/<model>/seed<S>/
  7  probe      linear probes on frozen embeddings of each --probe-models run, per seed
                -> <exp>/probe/<model>/seed<S>/
  Seeds: a model with one folder per seed (stage 4's <model>/seed<S>/) is fine-tuned / probed
  with seed S on its seed-S run; a single run (stage 3's, or another recipe's) is shared by all
  seeds, and only the fine-tuning seed varies.
  8  report     <exp>/RESULTS.md and <exp>/figures/*.png from the results of stages 5-7
  9  pack       each --pack-models entry, per seed, as a Hugging Face Hub-style folder (config.json,
                model.safetensors, model card) -> <exp>/packed/<task>-<model>-seed<S>/ (masr/hub.py)
  A stage whose list of configs or models is empty does nothing. Runs of stages 4-7 go
  --nj at a time (each with nproc/nj CPU threads), or one per GPU of --gpus; their logs:
  <exp>/log/<stage>/<run>.log.
  Slurm (--cmd \"slurm OPTIONS\"): each run of stages 2-7 (the features of a split, a pretraining
  config, a run of stages 4-7) is one batch job, \`sbatch --wait --job-name masr.<corpus>.<stage>.<run>
  OPTIONS\`, its script and log in <exp>/log/<stage>/<run>.{sbatch,log} (stages 2-3: also in the
  stage's log); a failed job fails its stage. --nj: runs of stages 4-7 in flight, and the processes
  of each feature extraction (ask for them: --cpus-per-task); --gpus is not used (GPUs: --gres);
  stages 4-7 use as many CPU threads as --cpus-per-task (default 1). Stages 1 and 8 run here.

Options:
  --stage N             first stage to run (default: $stage)
  --stop-stage M        last stage to run (default: $stop_stage)
  --nj N                parallel jobs (default: $nj)
  --gpus \"0 1 ...\"      runs of stages 4-7 one per GPU at a time, each seeing only its GPU
                        (default: none: --nj at a time, all on the default device)
  --cmd S               local (default), or \"slurm --partition P --gres gpu:1 --time T ...\":
                        each run of stages 2-7 is one Slurm job, with these sbatch options
  --force true|false    rerun stages already done (default: $force)
  --config FILE         a file of option assignments (e.g. nj=4), read where it appears
  --data DIR --dump DIR --exp DIR   output folders (default: $data $dump $exp)
  --splits \"A B ...\"    data dirs stage 1 produces (default: $splits)
  Options that hold several words (--local-data-opts, --validate-opts, --launcher, --cmd,
  --*-opts) are split like a command line: quote a value with spaces, e.g.
  --masr-opts \"--valid_dir '/data/my dump/dev'\" or --local-data-opts \"--db '/data/my corpus'\".
  --local-data-opts S   extra options for $local_data (default: '$local_data_opts')
  --fbank-config FILE   filterbank config for stage 2 (default: $fbank_config)
  --shard-utts N        stage 2 writes shards of N random utterances, 0: one ark per job \
(default: $shard_utts)
  --feature-source feats|audio_shards   stage 2 stores filterbanks, or (--pretrain-set, --valid-set) \
the audio in shards for filterbanks on the fly (default: $feature_source)
  --audio-codec flac|opus   audio shards: codec of audio that is not FLAC/Opus already \
(default: $audio_codec)
  --cmvn-utts N         audio shards: CMVN statistics from N random utterances, 0: all (default: $cmvn_utts)
  --validate-opts S     options for tools/validate_data_dir.sh (default: '$validate_opts')
  --pretrain-configs \"A.yaml B.yaml\"  stage 3 configs (default: $pretrain_configs)
  --pretrain-set S --valid-set S      dump dirs to train / validate on (default: $pretrain_set $valid_set)
  --pretrain-opts S     overrides for every run, e.g. \"--max_steps 50\" (default: '$pretrain_opts')
  --launcher CMD        python, or e.g. \"torchrun --nproc_per_node=2\" (default: $launcher)
  --masr-configs \"A.yaml ...\"  stage 4 configs (default: $masr_configs)
  --baseline NAME       stage 4 starts from <exp>/NAME (default: $baseline)
  --baseline-step N     ... from its step-N checkpoint instead of the newest (default: newest)
  --masr-opts S         overrides for every stage-4 run (default: '$masr_opts')
  --seeds \"1 2 3\"      replicates of stages 4-7 (default: $seeds): mean ± std and paired
                        confidence intervals in the report
  --lang2vec-config F --lang2vec-types \"T ...\"  one more stage-4 run per URIEL type \
(default: '$lang2vec_types')
  --model-exp DIR       where stages 5-7 find pretrained runs (default: the --exp folder)
  --langid-config F --langid-models \"A ...\" --langid-opts S --langid-sets \"TR DEV TEST\"
  --langid-pretrain-langs FILE   utt2lang of the pretraining data: O vs NO languages
                        (default: <dump>/<pretrain-set>/utt2lang, else the one beside --model-exp)
  --pack-models \"langid/M asr/M RUN ...\"   stage 9: what to pack (default: none)
                        (default: <dump>/<pretrain-set>/utt2lang)
  --asr-config F --asr-models \"A ...\" --asr-opts S --asr-sets \"TR DEV TEST\"
  --probe-config F --probe-models \"A ...\" --probe-opts S
  --report-config F     tables and figures of stage 8 (default: $report_config)
  (defaults: langid $langid_models; asr $asr_models; probe $probe_models)"
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "$root/tools/parse_options.sh"
if [ $# -gt 0 ]; then echo "$0: unexpected argument '$1' (see --help)" >&2; exit 2; fi
for v in stage stop_stage nj shard_utts cmvn_utts; do
  [[ "${!v}" =~ ^[0-9]+$ ]] ||
    { echo "$0: --${v//_/-} must be a non-negative integer, got '${!v}'" >&2; exit 2; }
done
[[ "$seeds" =~ ^[[:space:]]*[0-9]+([[:space:]]+[0-9]+)*[[:space:]]*$ ]] ||
  { echo "$0: --seeds must be a list of non-negative integers, e.g. \"1 2 3\", got '$seeds'" >&2; exit 2; }
case "$force" in true|false) ;; *) echo "$0: --force must be true or false, got '$force'" >&2; exit 2 ;; esac
case "$feature_source" in
  feats) ;;
  audio_shards) [ "$shard_utts" -gt 0 ] ||
    { echo "$0: --feature-source audio_shards needs --shard-utts N > 0" >&2; exit 2; } ;;
  *) echo "$0: --feature-source must be feats or audio_shards, got '$feature_source'" >&2; exit 2 ;;
esac
case "$audio_codec" in flac|opus) ;; *) echo "$0: --audio-codec must be flac or opus, got '$audio_codec'" >&2
  exit 2 ;; esac
[[ -z "$baseline_step" || "$baseline_step" =~ ^[0-9]+$ ]] ||
  { echo "$0: --baseline-step must be a step number, got '$baseline_step'" >&2; exit 2; }
# Options of several words, as arrays (split like a command line: quotes keep spaces; no eval).
for v in local_data_opts validate_opts pretrain_opts launcher masr_opts langid_opts asr_opts probe_opts; do
  split_opts "${v}_a" "${!v}" "--${v//_/-}" || exit 2
done
[ ${#launcher_a[@]} -gt 0 ] || { echo "$0: --launcher must not be empty" >&2; exit 2; }
# shellcheck disable=SC1091
. "$root/tools/cmd.sh"
cmd_init "$cmd" || exit 2
if [ "$cmd_backend" = slurm ] && [ -n "${gpus// /}" ]; then
  echo "$0: --gpus is for --cmd local; under Slurm a job gets its GPUs with --gres" \
    "(e.g. --cmd \"slurm --gres gpu:1\")" >&2
  exit 2
fi
# shellcheck disable=SC1091
. "$root/tools/env.sh"

log() { echo "[$corpus $(date '+%H:%M:%S')] $*"; }
model_exp=${model_exp:-$exp}
cores=$(nproc 2>/dev/null || echo 1)
read -ra gpu_ids <<< "$gpus"
slots=$(( ${#gpu_ids[@]} > 0 ? ${#gpu_ids[@]} : (nj > 0 ? nj : 1) ))   # runs of stages 4-7 at a time
threads=$(( cores / slots > 0 ? cores / slots : 1 ))   # CPU threads of each parallel run
[ "$cmd_backend" = slurm ] && threads=$(cmd_cpus)     # ... of each Slurm job: its --cpus-per-task

# Parallel runs of stages 4-7 (tools/jobs.sh): add_cmd NAME ARG...; run_stage_jobs STAGE runs them
# --nj at a time (or one per GPU of --gpus), logging to <exp>/log/STAGE/NAME.log; under --cmd slurm
# each is a Slurm job named masr.<corpus>.STAGE.NAME.
# shellcheck disable=SC1091
. "$root/tools/jobs.sh"
run_stage_jobs() { jobs_nj=$nj jobs_gpus=$gpus jobs_prefix="masr.$corpus.$1." run_jobs "$exp/log/$1"; }
# One run of stage 2 or 3: run_stage_cmd STAGE NAME ARG... runs ARG... here (output into the stage's
# log), or as a Slurm job masr.<corpus>.STAGE.NAME logging to <exp>/log/STAGE/NAME.log (and the stage's log).
run_stage_cmd() {
  local st="$1" name="$2"; shift 2
  cmd_stream "masr.$corpus.$st.$name" "$exp/log/$st/$name.log" "$@"
}

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

# The files later stages read from data dir SPLIT (validate_data_dir --require): found missing at
# stage 1, not at stage 5 or 6.
required_files() {
  local split="$1" s
  if [ -n "$langid_models$lang2vec_types" ]; then
    for s in $langid_sets; do [ "$s" = "$split" ] && echo utt2lang; done
  fi
  if [ -n "$asr_models" ]; then
    for s in $asr_sets; do [ "$s" = "$split" ] && echo text; done
  fi
  return 0
}

stage_data() {
  "$local_data" --nj "$nj" --data "$data" "${local_data_opts_a[@]}"
  local split file dirs=() require
  for split in $splits; do
    require=()
    for file in $(required_files "$split" | sort -u); do require+=(--require "$file"); done
    "$root/tools/validate_data_dir.sh" "${validate_opts_a[@]}" "${require[@]}" "$data/$split"
    dirs+=("$data/$split")
  done
  python -m masr.data.stats "${dirs[@]}" --out "$exp/data_stats.tsv" --corpus-out "$exp/corpus_stats.tsv"
}

stage_features() {
  local split audio_opts
  for split in $splits; do
    audio_opts=()   # audio shards for the pretraining sets only: stages 5-7 read stored features
    if [ "$feature_source" = audio_shards ] &&
       { [ "$split" = "$pretrain_set" ] || [ "$split" = "$valid_set" ]; }; then
      audio_opts=(--audio-shards --audio-codec "$audio_codec" --cmvn-utts "$cmvn_utts")
    fi
    run_stage_cmd stage2.features "$split" \
      python -m masr.features.extract "$fbank_config" --data "$data/$split" --out "$dump/$split" --nj "$nj" \
      --shard-utts "$shard_utts" "${audio_opts[@]}"
    # shellcheck disable=SC2086
    "$root/tools/validate_data_dir.sh" --no-audio --no-lang "$dump/$split"
  done
}

stage_pretrain() {
  local conf tag
  for conf in $pretrain_configs; do
    tag="$(basename "$conf" .yaml)"
    run_stage_cmd stage3.pretrain "$tag" "${launcher_a[@]}" -m masr.train.pretrain "$conf" \
      --train_dir "$dump/$pretrain_set" --valid_dir "$dump/$valid_set" --exp_dir "$exp/$tag" \
      --progress false "${pretrain_opts_a[@]}"
  done
}

# The baseline run's checkpoint stage 4 starts from: step --baseline-step, or the newest (empty if none).
baseline_checkpoint() {
  if [ -n "$baseline_step" ]; then
    local ckpt
    ckpt="$exp/$baseline/checkpoints/$(printf 'step-%08d' "$((10#$baseline_step))")"
    [ -f "$ckpt/state.pt" ] && echo "$ckpt"
    return 0
  fi
  find "$exp/$baseline/checkpoints" -maxdepth 1 -name 'step-*' ! -name '*.tmp' 2>/dev/null | sort | tail -n 1
}

stage_masr() {
  local conf tag ckpt
  ckpt="$(baseline_checkpoint)"
  if [ -z "$ckpt" ] && [ -n "$baseline_step" ]; then
    echo "stage 4: no checkpoint of step $baseline_step in $exp/$baseline/checkpoints (--baseline-step):" \
         "list that step in the baseline config's keep_steps so that it is saved and never deleted" >&2
    return 1
  elif [ -z "$ckpt" ]; then
    echo "stage 4: no checkpoint in $exp/$baseline/checkpoints: stage 3 must train '$baseline'" \
         "(is conf/$baseline.yaml among --pretrain-configs? otherwise set --baseline)" >&2
    return 1
  fi
  echo "stage 4: continuing from $ckpt"
  local common=(--train_dir "$dump/$pretrain_set" --valid_dir "$dump/$valid_set"
                --baseline_dir "$exp/$baseline" --init_from "$ckpt" --progress false
                --cpu_threads "$threads" "${masr_opts_a[@]}")
  local seed
  for seed in $seeds; do
    for conf in $masr_configs; do
      tag="$(basename "$conf" .yaml)"
      add_cmd "$tag.seed$seed" "${launcher_a[@]}" -m masr.train.pretrain "$conf" \
        --exp_dir "$exp/$tag/seed$seed" --seed "$seed" "${common[@]}"
    done
    for type in $lang2vec_types; do
      tag="$(basename "$lang2vec_config" .yaml)_$type"
      add_cmd "$tag.seed$seed" "${launcher_a[@]}" -m masr.train.pretrain "$lang2vec_config" \
        --lang_feature "$type" --exp_dir "$exp/$tag/seed$seed" --seed "$seed" "${common[@]}"
    done
  done
  run_stage_jobs stage4.masr
}

# The stage-4 runs named after --lang2vec-types (LangID evaluates them too, for Fig. 2).
lang2vec_runs() {
  local type
  for type in $lang2vec_types; do echo "$(basename "$lang2vec_config" .yaml)_$type"; done
}

# The pretraining run of MODEL for seed S: <model_exp>/MODEL/seedS (stage 4's runs, one per seed),
# or <model_exp>/MODEL (a single run, shared by every seed); empty when neither exists.
pretrained_run() {
  local model="$1" seed="$2"
  if [ -d "$model_exp/$model/checkpoints" ]; then echo "$model_exp/$model"
  elif [ -d "$model_exp/$model/seed$seed/checkpoints" ]; then echo "$model_exp/$model/seed$seed"
  fi
}

# stage_finetune TASK MODELS CONFIG "TRAIN DEV TEST" OPTS_ARRAY [EXTRA ARG...]: one run per model and seed.
stage_finetune() {
  local task="$1" models="$2" conf="$3" model seed train dev test run
  local -n opts_ref="$5"
  local extra=("${@:6}")
  read -r train dev test <<< "$4"
  for model in $models; do
    for seed in $seeds; do
      run="$(pretrained_run "$model" "$seed")"
      [ -n "$run" ] || { echo "stage $task: no pretrained run $model_exp/$model" \
        "or $model_exp/$model/seed$seed (did stage 4 run with these --seeds?)" >&2; return 1; }
      add_cmd "$model.seed$seed" "${launcher_a[@]}" -m "masr.downstream.$task" "$conf" --pretrained "$run" \
        --train_dir "$dump/$train" --dev_dir "$dump/$dev" --test_dir "$dump/$test" \
        --fbank_config "$fbank_config" --exp_dir "$exp/$task/$model/seed$seed" --seed "$seed" \
        --progress false --cpu_threads "$threads" \
        "${extra[@]}" "${opts_ref[@]}"
    done
  done
  run_stage_jobs "stage.$task"
}

# utt2lang of the encoders' pretraining data (O vs NO languages): --langid-pretrain-langs, else this
# recipe's <dump>/<pretrain_set>/utt2lang, else that of the recipe whose runs --model-exp names
# (e.g. ../mini/exp -> ../mini/dump/pretrain/utt2lang).
pretrain_langs() {
  local candidate
  for candidate in "$langid_pretrain_langs" "$dump/$pretrain_set/utt2lang" \
                   "$(dirname "$model_exp")/dump/$pretrain_set/utt2lang"; do
    [ -n "$candidate" ] && [ -f "$candidate" ] && { echo "$candidate"; return 0; }
  done
  echo "stage langid: warning: no utt2lang of the encoders' pretraining data (O/NO languages) at" \
    "'${langid_pretrain_langs:-(no --langid-pretrain-langs)}', $dump/$pretrain_set/utt2lang or" \
    "$(dirname "$model_exp")/dump/$pretrain_set/utt2lang; give --langid-pretrain-langs FILE" >&2
  echo "${langid_pretrain_langs:-$dump/$pretrain_set/utt2lang}"   # LangID names it if it is still missing
}

stage_langid() {
  local langs
  langs="$(pretrain_langs)"
  # shellcheck disable=SC2046
  stage_finetune langid "$langid_models $(lang2vec_runs)" "$langid_config" "$langid_sets" \
    langid_opts_a --pretrain_langs "$langs"
}

stage_asr() {
  stage_finetune asr "$asr_models" "$asr_config" "$asr_sets" asr_opts_a
}

stage_probe() {
  local model seed run
  for model in $probe_models; do
    for seed in $seeds; do
      run="$(pretrained_run "$model" "$seed")"
      [ -n "$run" ] || { echo "stage probe: no pretrained run $model_exp/$model" \
        "or $model_exp/$model/seed$seed" >&2; return 1; }
      add_cmd "$model.seed$seed" python -m masr.downstream.probe "$probe_config" --pretrained "$run" \
        --dump_dir "$dump" --exp_dir "$exp/probe/$model/seed$seed" --cpu_threads "$threads" \
        "${probe_opts_a[@]}"
    done
  done
  run_stage_jobs stage7.probe
}

stage_report() {
  python -m masr.report.results --exp "$exp" --config "$report_config"
}

stage_pack() {
  local item seed src out extra
  for item in $pack_models; do
    for seed in $seeds; do
      extra=()
      case "$item" in
        langid/*|asr/*) src="$exp/$item/seed$seed"; out="$exp/packed/${item%%/*}-${item#*/}-seed$seed" ;;
        */*) echo "stage pack: '$item' is neither langid/<model>, asr/<model> nor a run name" >&2; return 1 ;;
        *) src="$(pretrained_run "$item" "$seed")"; out="$exp/packed/encoder-$item-seed$seed"
           extra=(--fbank-config "$fbank_config") ;;
      esac
      [ -n "$src" ] && [ -e "$src" ] ||
        { echo "stage pack: nothing to pack for '$item', seed $seed" >&2; return 1; }
      python -m masr.hub pack "$src" "$out" --overwrite "${extra[@]}"
    done
  done
}

run_stage 1 data "$(signature "$local_data" "$local_data_opts" "$splits" "$data" \
  "$(for split in $splits; do echo "$split: $(required_files "$split" | sort -u)"; done)")" stage_data
audio_sig=()   # only audio shards add to stage 2's signature (feature dumps keep their stamps)
[ "$feature_source" = feats ] ||
  audio_sig=("$feature_source $audio_codec $cmvn_utts $pretrain_set $valid_set")
run_stage 2 features "$(signature "$fbank_config" "$shard_utts" "$splits" "$data" "$dump" "${audio_sig[@]}" \
  "$exp/stamps/stage1.data.done")" stage_features
[ -n "$pretrain_configs" ] &&
run_stage 3 pretrain "$(signature $pretrain_configs "$pretrain_opts" "$pretrain_set" "$valid_set" \
  "$launcher" "$exp/stamps/stage2.features.done")" stage_pretrain
[ -n "$masr_configs$lang2vec_types" ] &&
run_stage 4 masr "$(signature $masr_configs "$masr_opts" "$lang2vec_config" "$lang2vec_types" "$seeds" \
  "$baseline" "$(baseline_checkpoint)" "$pretrain_set" "$valid_set" "$launcher" \
  "$exp/stamps/stage3.pretrain.done")" stage_masr
# Stages 5-7 depend on the pretrained runs: through stage 4's (and 3's) stamp, and, for runs of
# another recipe (--model-exp), through the size and time of each run's exported encoder.
model_versions() {
  local m seed run
  for m in "$@"; do
    for seed in $seeds; do
      run="$(pretrained_run "$m" "$seed")"
      echo "$m.$seed=$(stat -c '%s.%Y' "${run:-none}/encoder.pt" 2>/dev/null || echo none)"
    done
  done
}
upstream="$exp/stamps/stage2.features.done $exp/stamps/stage3.pretrain.done"
upstream+=" $exp/stamps/stage4.masr.done $model_exp"
[ -n "$langid_models$lang2vec_types" ] &&
run_stage 5 langid "$(signature "$langid_config" "$langid_models" "$(lang2vec_runs)" "$seeds" "$langid_sets" \
  "$langid_opts" "$langid_pretrain_langs" "$launcher" "$upstream" \
  "$(model_versions $langid_models $(lang2vec_runs))")" stage_langid
[ -n "$asr_models" ] &&
run_stage 6 asr "$(signature "$asr_config" "$asr_models" "$seeds" "$asr_sets" "$asr_opts" "$launcher" \
  "$upstream" "$(model_versions $asr_models)")" stage_asr
[ -n "$probe_models" ] &&
run_stage 7 probe "$(signature "$probe_config" "$probe_models" "$seeds" "$probe_opts" "$upstream" \
  "$(model_versions $probe_models)")" stage_probe
run_stage 8 report "$(signature "$report_config" "$exp/stamps/stage5.langid.done" \
  "$exp/stamps/stage6.asr.done" "$exp/stamps/stage7.probe.done")" stage_report
[ -n "$pack_models" ] &&
run_stage 9 pack "$(signature "$pack_models" "$seeds" "$fbank_config" "$exp/stamps/stage5.langid.done" \
  "$exp/stamps/stage6.asr.done" "$upstream" \
  "$(model_versions $(for m in $pack_models; do [[ $m == */* ]] || echo "$m"; done))")" stage_pack
log "finished stages $stage..$stop_stage"
