#!/usr/bin/env bash
# The test command: set up the environment if needed (the runtime set and what the tests and
# benchmarks need: tools/setup_env.sh --dev), then run the whole test suite
# (tests/ and the doctests of masr/). Extra arguments go to pytest, e.g. tools/test.sh -k fbank
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/tools/setup_env.sh" --dev
# shellcheck disable=SC1091
. "$root/tools/env.sh"
cd "$root"
exec python -m pytest -q "$@"
