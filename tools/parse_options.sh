#!/usr/bin/env bash
# Kaldi-style option parsing, sourced by scripts after they set their defaults:
#
#   stage=1; nj=2                 # every option is a shell variable with a default
#   help_message="Usage: ..."     # printed by --help (or define a function print_help,
#                                 # called after all options are read, to show their values)
#   . tools/parse_options.sh      # parses "$@" in place
#
# `--some-option value` and `--some-option=value` set $some_option (dashes become underscores);
# an option with no matching variable is an error. `--config FILE` sources FILE (shell
# assignments of the same variables) at that point of the command line, so later options win.
# Parsing stops at the first argument that is not an option; those stay in "$@".

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      __help=1; shift; continue ;;
    --*=*)
      __name="${1%%=*}"; __value="${1#*=}"; shift ;;
    --*)
      if [ $# -lt 2 ]; then
        echo "$0: option '$1' needs a value (see --help)" >&2; exit 2
      fi
      __name="$1"; __value="$2"; shift 2 ;;
    *) break ;;
  esac
  __var="${__name#--}"; __var="${__var//-/_}"
  if [ "$__var" = config ]; then
    if [ ! -f "$__value" ]; then echo "$0: --config: no such file '$__value'" >&2; exit 2; fi
    # shellcheck disable=SC1090
    . "$__value"
    continue
  fi
  if ! [[ "$__var" =~ ^[a-z][a-z0-9_]*$ ]] || [ -z "${!__var+set}" ]; then
    echo "$0: unknown option '$__name' (see --help)" >&2; exit 2
  fi
  printf -v "$__var" '%s' "$__value"
done
if [ -n "${__help:-}" ]; then
  if declare -F print_help >/dev/null; then print_help; else printf '%s\n' "${help_message:-No help available.}"; fi
  exit 0
fi
unset __name __value __var __help

# split_opts NAME VALUE [OPTION]: an option value of several words (--pretrain-opts S) as an array
# (tools/split_opts.sh)
# shellcheck disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/split_opts.sh"
