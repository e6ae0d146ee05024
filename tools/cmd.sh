#!/usr/bin/env bash
# Job backends for recipes/masr.sh and tools/jobs.sh (sourced), like ESPnet's cmd.sh + run.pl /
# slurm.pl: where a run of a stage executes.
#
#   cmd_init "local"                                   runs here (the default)
#   cmd_init "slurm --partition gpu --gres gpu:1 --time 2-00:00:00"
#                                                      each run is one Slurm batch job
#   cmd_run NAME LOG CODE       run the shell code CODE (quoted by the caller, e.g. with printf %q)
#                               with its stdout and stderr in the file LOG; returns its exit status
#   cmd_stream NAME LOG ARG...  run the command ARG... with its output on stdout (into the caller's
#                               log); under Slurm the job also writes it to LOG
#
# Under slurm a run is `sbatch --wait --job-name NAME [the options given after "slurm", verbatim]
# --output LOG LOG%.log.sbatch`: a job script written next to LOG (cd to the current folder,
# tools/env.sh, then the command), submitted and waited for; sbatch exits with the job's exit status,
# so a failed (or cancelled, or timed-out) job fails the run. The options after "slurm" are split
# like a command line (quotes work: --comment 'two words'); --job-name may be given there to
# override ours; --output / --error / --wait / --parsable are ours.
# GPUs, CPUs and memory of a job are Slurm's (--gres gpu:N, --cpus-per-task N, --mem ...).

# shellcheck disable=SC1091
declare -F split_opts >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/split_opts.sh"
cmd_backend=local
cmd_opts=()
cmd_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# cmd_init VALUE: parse the --cmd option; status 2 and a message for a bad one.
cmd_init() {
  local -a words=()
  split_opts words "$1" --cmd || return 2
  cmd_backend="${words[0]:-local}"
  cmd_opts=("${words[@]:1}")
  case "$cmd_backend" in
    local)
      if [ ${#cmd_opts[@]} -gt 0 ]; then
        echo "${0##*/}: --cmd local takes no options, got '${cmd_opts[*]}'" >&2; return 2
      fi ;;
    slurm)
      local o
      for o in "${cmd_opts[@]}"; do
        case "$o" in
          --output|--output=*|-o|-o?*|--error|--error=*|-e|-e?*|--wait|-W|--parsable|--wrap|--wrap=*)
            echo "${0##*/}: --cmd slurm: '$o' is set by the recipe (logs go to <exp>/log/...)" >&2; return 2 ;;
        esac
      done
      if ! command -v sbatch >/dev/null 2>&1; then
        echo "${0##*/}: --cmd slurm: no sbatch on PATH" >&2; return 2
      fi ;;
    *)
      echo "${0##*/}: --cmd must be 'local' or 'slurm [sbatch options]', got '$1'" >&2; return 2 ;;
  esac
}

# cmd_cpus: the CPUs each job gets: --cpus-per-task / -c of the slurm options, else Slurm's
# default of 1; empty under local.
cmd_cpus() {
  [ "$cmd_backend" = slurm ] || return 0
  local i o cpus=1
  for ((i = 0; i < ${#cmd_opts[@]}; i++)); do
    o="${cmd_opts[$i]}"
    case "$o" in
      --cpus-per-task=*) cpus="${o#*=}" ;;
      --cpus-per-task|-c) cpus="${cmd_opts[$((i + 1))]:-1}" ;;
      -c?*) cpus="${o#-c}" ;;
    esac
  done
  [[ "$cpus" =~ ^[0-9]+$ ]] && [ "$cpus" -gt 0 ] || cpus=1
  echo "$cpus"
}

# cmd_job_script LOG CODE: write the job script LOG%.log.sbatch; prints its path.
cmd_job_script() {
  local logf="$1" code="$2" script="${1%.log}.sbatch"
  {
    echo '#!/usr/bin/env bash'
    echo "# written by tools/cmd.sh for $logf; submitted with sbatch --wait"
    printf 'cd %q || exit 1\n' "$PWD"
    printf '. %q || exit 1\n' "$cmd_root/tools/env.sh"
    echo 'echo "# slurm job ${SLURM_JOB_ID:-?} on $(hostname) (restart ${SLURM_RESTART_COUNT:-0}), $(date)"'
    printf '%s\n' "$code"
  } > "$script"
  echo "$script"
}

# cmd_run NAME LOG CODE
cmd_run() {
  local name="$1" logf="$2" code="$3"
  mkdir -p "$(dirname "$logf")"
  if [ "$cmd_backend" != slurm ]; then
    (eval "$code") > "$logf" 2>&1
    return
  fi
  [[ "$logf" == /* ]] || logf="$PWD/$logf"   # absolute: whatever --chdir says
  local script
  script="$(cmd_job_script "$logf" "$code")"
  : > "$logf"   # not an earlier attempt's output, should the submission fail
  # sbatch's own messages (job id, submission errors) go to our stderr; the job's output to LOG
  # (% escaped: Slurm reads %j etc. in --output)
  sbatch --wait --job-name "$name" "${cmd_opts[@]}" --output "${logf//%/%%}" "$script" >&2
}

# cmd_stream NAME LOG ARG...
cmd_stream() {
  local name="$1" logf="$2"; shift 2
  if [ "$cmd_backend" != slurm ]; then
    "$@"
    return
  fi
  local code sbatch_pid tail_pid rc
  code="$(printf '%q ' "$@")"
  mkdir -p "$(dirname "$logf")"
  : > "$logf"
  cmd_run "$name" "$logf" "$code" &
  sbatch_pid=$!
  echo "slurm job $name: log $logf"
  # follow the job's log (it appears when the job starts) until sbatch has returned
  tail -n +1 -F -s 0.5 --pid="$sbatch_pid" "$logf" 2>/dev/null &
  tail_pid=$!
  wait "$sbatch_pid" && rc=0 || rc=$?   # (not stopped by the stage's set -e: tail must end first)
  wait "$tail_pid" 2>/dev/null || true
  return "$rc"
}
