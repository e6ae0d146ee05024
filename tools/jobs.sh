#!/usr/bin/env bash
# Parallel runs for recipes/masr.sh (sourced): add_job NAME COMMAND queues a run (COMMAND: shell
# code), add_cmd NAME ARG... queues the command ARG... (each argument kept as it is: spaces, quotes);
# run_jobs DIR runs the queue, each run logging to DIR/NAME.log, and fails (after all have
# finished) if any failed. Where a run executes is tools/cmd.sh's backend (cmd_init: local, or one
# Slurm job per run, named ${jobs_prefix}NAME).
#   jobs_nj=N      at most N runs at a time (default 1); under slurm: N jobs in flight
#   jobs_gpus="0 1 2 3"   one run per GPU at a time instead: each run sees only its GPU
#                  (CUDA_VISIBLE_DEVICES), so N fine-tunings on N GPUs do not all land on cuda:0
#                  (local only: Slurm gives each job its GPUs, --gres)
#   jobs_prefix=P  Slurm job names: P<NAME> (default masr.)
# Needs bash >= 5.1 (wait -n -p).
# shellcheck disable=SC1091
declare -F cmd_run >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/cmd.sh"
job_names=(); job_cmds=()
add_job() { job_names+=("$1"); job_cmds+=("$2"); }
add_cmd() { local name="$1"; shift; add_job "$name" "$(printf '%q ' "$@")"; }
run_jobs() {
  local dir="$1" i s free done_pid failed=0
  local -a gpu_list=() slot_pid=()
  read -ra gpu_list <<< "${jobs_gpus:-}"
  local slots=${jobs_nj:-1}
  [ ${#gpu_list[@]} -gt 0 ] && slots=${#gpu_list[@]}
  [ "$slots" -ge 1 ] || slots=1
  mkdir -p "$dir"
  for i in "${!job_names[@]}"; do
    free=
    while [ -z "$free" ]; do
      for ((s = 0; s < slots; s++)); do
        if [ -z "${slot_pid[$s]:-}" ]; then free=$s; break; fi
      done
      if [ -z "$free" ]; then   # every slot busy: wait for one run to end and free its slot
        wait -n -p done_pid "${slot_pid[@]}" || failed=1
        for ((s = 0; s < slots; s++)); do [ "${slot_pid[$s]}" = "$done_pid" ] && slot_pid[$s]=; done
      fi
    done
    echo "run ${job_names[$i]}${gpu_list[*]:+ (GPU ${gpu_list[$free]})}: ${job_cmds[$i]}"
    (
      if [ ${#gpu_list[@]} -gt 0 ]; then export CUDA_VISIBLE_DEVICES="${gpu_list[$free]}"; fi
      if cmd_run "${jobs_prefix:-masr.}${job_names[$i]}" "$dir/${job_names[$i]}.log" "${job_cmds[$i]}"; then
        echo "run ${job_names[$i]} done: $(tail -n 1 "$dir/${job_names[$i]}.log")"
      else
        echo "run ${job_names[$i]} FAILED; last lines of $dir/${job_names[$i]}.log:"; tail -n 15 "$dir/${job_names[$i]}.log"
        exit 1
      fi
    ) &
    slot_pid[$free]=$!
  done
  for ((s = 0; s < slots; s++)); do
    if [ -n "${slot_pid[$s]:-}" ]; then wait "${slot_pid[$s]}" || failed=1; fi
  done
  job_names=(); job_cmds=()
  return "$failed"
}
