#!/usr/bin/env bash
# Validate a Kaldi-style data directory (like Kaldi's utils/validate_data_dir.sh).
#
# Usage: tools/validate_data_dir.sh [--no-audio] [--no-lang] <data-dir>
#
# Prints a one-line summary and exits 0, or lists every problem on stderr and exits 1.
# Runs whatever `python` is on PATH (recipes activate the venv first).
set -euo pipefail

# Make masr importable from this checkout wherever the script is called from.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}"

exec python -m masr.data.validate "$@"
