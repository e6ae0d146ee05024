#!/usr/bin/env bash
# Sourced by every recipe script (like Kaldi's path.sh): activates the project's venv.
MASR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MASR_ROOT
if [ ! -x "$MASR_ROOT/.venv/bin/python" ]; then
  echo "masr: no environment at $MASR_ROOT/.venv; create it with: $MASR_ROOT/tools/setup_env.sh" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
. "$MASR_ROOT/.venv/bin/activate"
export PYTHONUNBUFFERED=1
