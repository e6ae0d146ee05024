#!/usr/bin/env bash
# masr's entry point.
#   ./run.sh            create the environment if missing (.venv from requirements.txt), then
#                       build the embedded corpus and run every stage on it (egs/mini)
#   ./run.sh --test     create the environment if missing, then run the test suite
#   ./run.sh --quick    every stage at toy size (egs/mini/conf/quick.conf), a few minutes: CI
#   ./run.sh --profile long   encoders trained 10x longer, 3 seeds (egs/mini/conf/long.conf)
#   ./run.sh [options]  options go to egs/mini/run.sh (./run.sh --help lists stages and options)
set -euo pipefail
root="$(cd "$(dirname "$0")" && pwd)"
if [ "${1:-}" = --test ]; then
  shift
  exec "$root/tools/test.sh" "$@"
fi
case " $* " in *" --help "*|*" -h "*) exec "$root/egs/mini/run.sh" --help ;; esac
"$root/tools/setup_env.sh"
if [ "${1:-}" = --quick ]; then
  shift
  exec "$root/egs/mini/run.sh" --config conf/quick.conf "$@"
fi
if [ "${1:-}" = --profile ]; then
  case "${2:-}" in
    default) shift 2 ;;
    quick|long) profile="$2"; shift 2; exec "$root/egs/mini/run.sh" --config "conf/$profile.conf" "$@" ;;
    *) echo "$0: --profile must be default, quick or long, got '${2:-}'" >&2; exit 2 ;;
  esac
fi
exec "$root/egs/mini/run.sh" "$@"
