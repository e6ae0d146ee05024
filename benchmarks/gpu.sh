#!/usr/bin/env bash
# Every GPU benchmark in one command (about 9 minutes on an H100/H200); the command to run when a
# GPU is available. Writes its tables to benchmarks/results/gpu/ (or --out DIR), each with the
# GPU's name:
#
#   pretrain_eager.md     BEST-RQ step at SpeechBrain's recipe size (d576 x 12, 64 x 15 s, bf16):
#                         masr relpos_xl / rope_sdpa, front-end of d_model or 64 channels, vs
#                         SpeechBrain's recipe model, eager
#   pretrain_compiled.md  the same, torch.compile'd (masr rope_sdpa, 64 channels, vs SpeechBrain)
#   masr_overhead.md      paper size (643 M): the encoder alone vs with MASR's language stream
#                         (projection + mining + loss), i.e. MASR's extra cost per step
#   triplet_mining.md     batch-hard mining + loss vs pytorch-metric-learning, B = 1024/4096/16384
#   audio_shards.md       on-the-fly input: audio-shard reading + filterbanks per CPU core, and
#                         batched filterbanks on the GPU (synthetic audio: rates only)
#   device_tests.txt      pytest --device cuda of the device-sensitive tests (not a benchmark)
#
# Usage:
#   bash benchmarks/gpu.sh              # on a GPU machine, from the repository root
#   bash benchmarks/gpu.sh --dry-run    # every command at toy size on the CPU (seconds): checks
#                                       # the script, writes to a temporary folder
# Options: --out DIR (where the tables go). Each command has its own time limit (120 + 210 + 90 +
# 60 + 60 + 60 s = 10 minutes at most), so one that hangs or is slow does not take the others' time.
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=false
out=benchmarks/results/gpu
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=true ;;
    --out) out="$2"; shift ;;
    *) echo "usage: bash benchmarks/gpu.sh [--dry-run] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done

[ -f tools/env.sh ] && . tools/env.sh
if $dry_run; then
  [ "$out" = benchmarks/results/gpu ] && out=$(mktemp -d)
  device=cpu
  recipe=(--sizes tiny --batch 2x200 --rounds 1 --warmup 1)
  paper=(--sizes tiny --batch 2x200 --rounds 1 --warmup 1)
  mining=(--sizes 64 128 --runs 1 --warmup 0)
  shards=(--limit 4 --rounds 1)
else
  python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "no CUDA device visible; use --dry-run to check the script on a CPU" >&2; exit 1; }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  device=cuda
  recipe=(--sizes recipe --batch 64x1500 --rounds 4 --steps-per-round 2 --warmup 2)
  paper=(--sizes paper --batch 32x1500 --rounds 5 --steps-per-round 2 --warmup 2)
  mining=(--sizes 1024 4096 16384)
  shards=(--limit 200 --rounds 3)
fi
mkdir -p "$out"

status=0
step() {  # step NAME SECONDS COMMAND...
  local name=$1 budget=$2; shift 2
  local t0=$SECONDS rc=0
  echo "== $name: $*"
  timeout "$budget" "$@" || rc=$?
  if [ $rc -eq 0 ]; then
    echo "== $name: done in $((SECONDS - t0)) s"
  else
    echo "== $name: FAILED (exit $rc; 124 = over its ${budget} s)"; status=1
  fi
}

step pretrain_eager 120 python benchmarks/pretrain_step.py --device "$device" "${recipe[@]}" \
  --compare speechbrain --compile off --out "$out/pretrain_eager.md"
step pretrain_compiled 210 python benchmarks/pretrain_step.py --device "$device" "${recipe[@]}" \
  --attention rope_sdpa --subsampling-channels 64 --compare speechbrain --compile on \
  --out "$out/pretrain_compiled.md"
step masr_overhead 90 python benchmarks/pretrain_step.py --device "$device" "${paper[@]}" \
  --attention rope_sdpa --subsampling-channels 64 --masr-stream --compare none --compile off \
  --out "$out/masr_overhead.md"
step triplet_mining 60 python benchmarks/triplet_mining.py --device "$device" "${mining[@]}" \
  --out "$out/triplet_mining.md"
step audio_shards 60 python benchmarks/audio_shards.py --synthetic --device "$device" "${shards[@]}" \
  --out "$out/audio_shards.md"
# not a benchmark: the device-sensitive tests (batched filterbanks, padding invariance, fused
# attention) on this device, their summary beside the tables
step device_tests 60 bash -c "python -m pytest -q -p no:cacheprovider --device $device tests/test_batched_fbank.py \
  tests/test_conformer.py > '$out/device_tests.txt' 2>&1; rc=\$?; tail -1 '$out/device_tests.txt'; exit \$rc"

echo "tables in $out"
exit $status
