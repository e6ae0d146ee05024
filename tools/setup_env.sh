#!/usr/bin/env bash
# Create or update the project's environment: .venv from requirements.txt (skipped when the
# requirements have not changed since the last install), masr importable from this checkout,
# and the `sox` binary (Debian package) used by wav.scp pipes of real corpora.
#
# Usage: tools/setup_env.sh          the runtime set (requirements.txt): what ./run.sh needs
#        tools/setup_env.sh --dev    also the tests' and benchmarks' (requirements-dev.txt):
#                                    what ./run.sh --test (tools/test.sh) needs
#        PYTHON=/path/to/python3.11 to choose the interpreter of a new .venv
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"
dev=false
case "${1:-}" in
  "") ;;
  --dev) dev=true ;;
  *) echo "usage: tools/setup_env.sh [--dev]" >&2; exit 2 ;;
esac

if [ ! -x "$venv/bin/python" ]; then
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "setup_env: Python >= 3.10 is required ($python is $("$python" --version 2>&1))" >&2; exit 1; }
  echo "setup_env: creating $venv with $("$python" --version 2>&1)"
  "$python" -m venv "$venv"
fi

# One stamp per lock: the sha256 of the files it installs (requirements-dev.txt includes
# requirements.txt, so a change to either reinstalls the dev set; installing the dev set also
# satisfies the runtime stamp).
runtime_stamp="$venv/.requirements.sha256"
dev_stamp="$venv/.requirements-dev.sha256"
runtime_want="$(cat "$root/requirements.txt" | sha256sum | cut -d' ' -f1)"
dev_want="$(cat "$root/requirements.txt" "$root/requirements-dev.txt" | sha256sum | cut -d' ' -f1)"
install() {  # install <requirements file> <what>
  echo "setup_env: installing $1 into $venv ($2)"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$root/$1"
}
if $dev; then
  if [ "$(cat "$dev_stamp" 2>/dev/null)" != "$dev_want" ]; then
    install requirements-dev.txt "the runtime set + tests and benchmarks; first time: a few minutes, ~5 GB"
    echo "$dev_want" > "$dev_stamp"
    echo "$runtime_want" > "$runtime_stamp"
  fi
elif [ "$(cat "$runtime_stamp" 2>/dev/null)" != "$runtime_want" ]; then
  install requirements.txt "first time: a few minutes, ~5 GB"
  echo "$runtime_want" > "$runtime_stamp"
fi

# `import masr` imports this checkout, written on every run (not only on install): a .venv
# shared or symlinked between clones then imports the clone that last ran this script. Replaced
# atomically, and only when it names another folder.
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
pth="$site/masr-checkout.pth"
if [ "$(cat "$pth" 2>/dev/null)" != "$root" ]; then
  [ -f "$pth" ] && echo "setup_env: $venv imported masr from $(cat "$pth"); now from $root" >&2
  echo "$root" > "$pth.tmp.$$" && mv -f "$pth.tmp.$$" "$pth"
fi

if ! command -v sox >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup_env: installing the sox binary (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sox; } >/dev/null \
      || echo "setup_env: warning: apt-get could not install sox; wav.scp pipes using sox will fail" >&2
  else
    echo "setup_env: warning: the 'sox' binary is missing (Debian: apt-get install sox);" \
         "only needed for corpora whose wav.scp pipes audio through sox" >&2
  fi
fi
