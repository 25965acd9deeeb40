#!/usr/bin/env bash
# The prepared GPU check: one run of ~6-10 minutes on one H100 (or H200), every line it prints JSON.
#   1. benchmarks/scoring.py --gpu --models 1.5b: ours (fused Triton) vs the floor, naive full logits, the torch
#      reducer and Liger's fused linear entropy, 16k and 32k tokens, time, peak memory, float64 error, and
#      flags where ours passes 1.10x the floor's time or memory;
#   2. benchmarks/train_step.py: one train-hicra step and one GRPO step of a random-init SmolLM2-shaped policy,
#      stage by stage, with the tag and advantage shares: the real train_hicra where TRL is installed, else
#      (a lent GPU) our own pieces in the trainer's order (generate, tag, score, advantages, loss);
#   3. benchmarks/scoring.py --gpu --models 7b (last: the longest, so a time limit loses the least).
# Usage, from anywhere:  bash benchmarks/gpu_check.sh [--dry-run]
#   --dry-run: the same scripts at toy shapes on CPU, the fused kernel in Triton's interpreter
#   (tests/test_gpu_check.py runs it).
# With $OUT set, the JSON lines also go to $OUT/gpu_check.jsonl. A step that fails prints its traceback on stderr
# and one JSON line {"check": ..., "error": ...}, and the rest still runs; the exit status is then 1.
# Needs python3 with torch, triton, transformers, tokenizers, numpy and pandas (a lent GPU has them: see
# docs/performance.md) and pyahocorasick (the tagger). `make gpu-wheels` downloads pyahocorasick and liger-kernel
# wheels into benchmarks/wheels/ (git-ignored; carry it); they are installed from there, offline, when present.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DRY=""
case "${1:-}" in
  --dry-run) DRY=--dry-run ;;
  "") ;;
  *) echo "usage: bash benchmarks/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
LOG=/dev/null
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT" && LOG="$OUT/gpu_check.jsonl" && : >"$LOG"; fi
emit() { echo "$1" | tee -a "$LOG"; }

if [ -z "$DRY" ] && compgen -G "benchmarks/wheels/*.whl" >/dev/null; then
  SITE=$(mktemp -d)
  if "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
       benchmarks/wheels/*.whl >&2; then
    export PYTHONPATH="$SITE:$PYTHONPATH"
    emit "{\"check\": \"wheels\", \"installed\": \"$(cd benchmarks/wheels && ls *.whl | tr '\n' ' ')\"}"
  else
    emit '{"check": "wheels", "error": "pip could not install benchmarks/wheels/*.whl (see stderr)"}'
  fi
fi

failed=0
step() {  # step NAME COMMAND...: run it, its stdout to the log; one JSON error line if it fails
  local name=$1; shift
  "$@" | tee -a "$LOG"
  local status=$?
  if [ "$status" -ne 0 ]; then
    emit "{\"check\": \"$name\", \"error\": \"exit status $status; the traceback is on stderr\"}"
    failed=1
  fi
}

if [ -n "$DRY" ]; then
  step scoring "$PYTHON" benchmarks/scoring.py --dry-run --repeats 1
  step train_step "$PYTHON" benchmarks/train_step.py --dry-run --repeats 1 --path own  # what a lent GPU runs
else
  step scoring "$PYTHON" benchmarks/scoring.py --gpu --models 1.5b --repeats 5
  step train_step "$PYTHON" benchmarks/train_step.py --repeats 2
  step scoring "$PYTHON" benchmarks/scoring.py --gpu --models 7b --repeats 3
fi
exit $failed
