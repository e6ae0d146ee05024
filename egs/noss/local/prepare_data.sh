#!/usr/bin/env bash
# Data preparation for noss: not implemented yet. It stops with a clear message instead of
# producing partial data; see ../README.md for what this recipe will prepare and reproduce.
echo "egs/noss: data preparation is not implemented yet (see egs/noss/README.md)." >&2
echo "Use egs/mini (the embedded corpus) in the meantime: ./run.sh at the repository root." >&2
exit 1
