#!/usr/bin/env bash
# Start a recipe for a new corpus: copies egs/TEMPLATE to egs/NAME (README.md there says what next).
# Usage: tools/new_recipe.sh NAME
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="${1:-}"
[[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || { echo "usage: $0 NAME (letters, digits, _ . -)" >&2; exit 2; }
dest="$root/egs/$name"
[ -e "$dest" ] && { echo "$0: $dest exists" >&2; exit 1; }
cp -rL "$root/egs/TEMPLATE" "$dest"
rm -rf "$dest"/{data,dump,exp}
sed -i "s/^title: .*/title: \"$name: spoken language identification\"/" "$dest/conf/report.yaml"
echo "egs/$name: set CORPUS_WAVS or CORPUS_KALDI and run egs/$name/run.sh (see egs/$name/README.md)"
