#!/usr/bin/env bash
# Create or update the project's environment: .venv from requirements.txt (skipped when the
# requirements have not changed since the last install), masr importable from this checkout,
# and the `sox` binary (Debian package) used by wav.scp pipes of real corpora.
#
# Usage: tools/setup_env.sh        (PYTHON=/path/to/python3.11 to choose the interpreter)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"
stamp="$venv/.requirements.sha256"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "setup_env: Python >= 3.10 is required ($python is $("$python" --version 2>&1))" >&2; exit 1; }
  echo "setup_env: creating $venv with $("$python" --version 2>&1)"
  "$python" -m venv "$venv"
fi

want="$(sha256sum "$root/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup_env: installing requirements.txt into $venv (first time: a few minutes, ~5 GB)"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$root/requirements.txt"
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$root" > "$site/masr-checkout.pth"       # `import masr` from this checkout
  echo "$want" > "$stamp"
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
