#!/usr/bin/env bash
# Sourced (by tools/parse_options.sh, tools/cmd.sh).
# split_opts NAME VALUE: split an option value that holds several words (--pretrain-opts,
# --launcher, --cmd, ...) into the array NAME, the way the shell splits a command line: words are
# separated by blanks; '...' and "..." quote (so "--db '/my data'" is 2 words) and a backslash
# escapes the next character. Nothing is expanded or run ($HOME, $(...), * stay as written), so
# no eval; python3's shlex does the splitting. A value with an unmatched quote is an error
# (status 2, message on stderr); OPTION, when given, names the option in it.
# Needs bash >= 4.4 (readarray -d, wait on a process substitution).
split_opts() {
  local __opts_name="$1" __opts_value="$2" __opts_option="${3:-$1}" __opts_err __opts_pid
  __opts_err="$(mktemp)"
  readarray -d '' -t "$__opts_name" < <(python3 -c '
import shlex, sys
try:
    words = shlex.split(sys.argv[1], comments=False, posix=True)
except ValueError as e:
    sys.exit(f"{e}")
sys.stdout.write("".join(w + "\0" for w in words))' "$__opts_value" 2> "$__opts_err")
  __opts_pid=$!
  if ! wait "$__opts_pid"; then
    echo "${0##*/}: $__opts_option: cannot split '$__opts_value' into words ($(cat "$__opts_err"))" >&2
    rm -f "$__opts_err"
    return 2
  fi
  rm -f "$__opts_err"
}
