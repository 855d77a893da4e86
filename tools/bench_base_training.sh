#!/usr/bin/env bash
# Base-size AR + NAR training step, before and after the training-efficiency changes (issue 14).
#
# For each batch size, in a fresh process per configuration (tools/bench_train_step.py): the tree
# at BEFORE (a temporary `git worktree`), and the current tree as it is by default, without
# dropout on the attention weights (SDPA's fused kernel on the CPU), with per-layer activation
# checkpointing, and with both. 10 s utterances (750 frames at 75 Hz, 8 codebooks), 120
# phonemes, a 3 s prompt, AdamW, fp32, 2 threads. Prints each step time and the process' peak
# RSS, then a table. Needs a quiet machine: a base step takes 10-40 s and 10-24 GB.
#
# Usage: tools/bench_base_training.sh BEFORE_COMMIT [options]
#   --size base        size preset (valle/conf/size/<size>.yaml)
#   --batches "1 2 4"  batch sizes
#   --threads 2        torch threads
#   --steps 2          timed steps (after --warmup 1 untimed)
#   --only "before default noattn ckpt ckpt_noattn"   configurations to run
#   --out FILE         JSON lines of the results (default: bench_base_training.jsonl)
#   --max-rss-gib 22   stop a configuration past this RSS (exit 3) before the OOM killer acts
# A configuration stopped for memory (exit 3, or 137 from the kernel) is reported as such and
# the others still run.
set -euo pipefail

log() { echo "$(date '+%F %T') $*" >&2; }

if [ $# -lt 1 ] || [ "${1:0:1}" = "-" ]; then
  sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
  exit 1
fi
before=$1; shift
size=base
batches="1 2 4"
threads=2
steps=2
warmup=1
only="before default noattn ckpt ckpt_noattn"
out=bench_base_training.jsonl
max_rss=22
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --max-rss-gib) max_rss=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 1 ;;
  esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
driver=$repo/tools/bench_train_step.py
commit=$(git -C "$repo" rev-parse --verify "$before^{commit}")
now=$(git -C "$repo" rev-parse --short HEAD)
dirty=$(git -C "$repo" status --porcelain --untracked-files=no | wc -l)
wt=$(mktemp -d /tmp/valle-before-XXXXXX)
cleanup() { git -C "$repo" worktree remove --force "$wt" >/dev/null 2>&1 || rm -rf "$wt"; }
trap cleanup EXIT
git -C "$repo" worktree add --detach "$wt" "$commit" >/dev/null 2>&1
log "before: $commit in $wt; now: $now ($dirty modified tracked files) in $repo"
: > "$out"

noattn=(--set ar.backbone.attention_dropout=0 --set nar.backbone.attention_dropout=0)
common=(--size "$size" --threads "$threads" --steps "$steps" --warmup "$warmup"
        --seconds 10 --prompt-seconds 3 --phonemes 120 --max-rss-gib "$max_rss")

run() {  # label tree batch [driver options...]
  local label=$1 tree=$2 batch=$3; shift 3
  log "$label B=$batch ..."
  local rc=0 line
  line=$(cd "$tree" && OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads PYTHONPATH=$tree \
         python "$driver" "${common[@]}" --batch "$batch" --label "$label" "$@") || rc=$?
  if [ $rc -ne 0 ]; then
    line="{\"label\": \"$label\", \"batch\": $batch, \"failed\": $rc}"
    [ $rc -eq 137 ] && log "$label B=$batch: killed (exit 137, out of memory?)"
    [ $rc -eq 3 ] && log "$label B=$batch: stopped past $max_rss GiB RSS"
  fi
  echo "$line" | tee -a "$out"
}

for b in $batches; do
  for c in $only; do
    case $c in
      before) run before "$wt" "$b" ;;
      default) run default "$repo" "$b" ;;
      noattn) run noattn "$repo" "$b" "${noattn[@]}" ;;
      ckpt) run ckpt "$repo" "$b" --checkpointing ;;
      ckpt_noattn) run ckpt_noattn "$repo" "$b" --checkpointing "${noattn[@]}" ;;
      *) echo "unknown configuration $c" >&2; exit 1 ;;
    esac
  done
done

python - "$out" "$commit" "$now" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"\nbefore = {sys.argv[2][:10]}, now = {sys.argv[3]}; AR + NAR step, fp32, AdamW")
print(f"{'configuration':<14} {'B':>2} {'step s':>8} {'peak RSS GiB':>13}  note")
for r in rows:
    if "failed" in r:
        why = {137: "killed (out of memory?)", 3: "stopped: RSS past --max-rss-gib"}.get(
            r["failed"], f"exit {r['failed']}")
        print(f"{r['label']:<14} {r['batch']:>2} {'-':>8} {'-':>13}  {why}")
    else:
        print(f"{r['label']:<14} {r['batch']:>2} {r['mean_step_s']:>8.2f} {r['peak_rss_gib']:>13.2f}"
              f"  steps {r['step_s']}")
print("configurations: before = the given commit; default = now, as configured; noattn = now "
      "with attention_dropout=0 (residual dropout kept); ckpt = now with activation "
      "checkpointing; ckpt_noattn = both")
EOF
