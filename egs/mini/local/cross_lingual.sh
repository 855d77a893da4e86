#!/usr/bin/env bash
# Cross-lingual zero-shot rows of a VALL-E X model (VALL-E X Sec 4): a prompt in one language,
# a target text in another, on the held-out test voices. Needs stage 7's per-language lists.
#
#   local/cross_lingual.sh --exp-dir exp/vallex_tiny [--checkpoint exp/vallex_tiny/nar/model.pt]
#       [--data-dir data] [--pairs "zh:en ja:en en:zh"] [--max-items 24]
#
# For each pair P:T it writes $exp_dir/xl/P_T/: the list and jobs (python -m
# valle.eval.cross_lingual), the outputs wav/<id>.wav (valle-infer --jobs, with the prompt's
# language id), wer/ (valle-bench wer against the target text in T; CER for zh/ja) and sim/
# (valle-bench sim to the prompt only: nobody said the target in the prompt's voice), then
# $exp_dir/xl/summary.md with one row per pair.
set -euo pipefail

exp_dir=
checkpoint=
data_dir=data
pairs="zh:en ja:en en:zh"
max_items=24
asr=faster-whisper
asr_path=
num_threads=1
python=python3
help_vars="exp_dir checkpoint data_dir pairs max_items asr asr_path num_threads python"

cd "$(dirname "$0")/.."
. shared/parse_options.sh
. shared/log.sh  # log, need
repo_root=$(cd ../.. && pwd)
export PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$num_threads}

[ -n "$exp_dir" ] || { echo "local/cross_lingual.sh: --exp-dir is required" >&2; exit 2; }
checkpoint=${checkpoint:-$exp_dir/nar/model.pt}
if [ -z "$asr_path" ] && [ "$asr" = faster-whisper ]; then
  asr_path=$repo_root/../shared/models/faster-whisper-base
fi
lists=$exp_dir/decode/lists
test_cuts=$data_dir/tokenized/mini_cuts_test.jsonl.gz
need "$checkpoint" "the trained VALL-E X model (run.sh --variant vallex, stage 6)"
need "$test_cuts" "the test cuts (prepare.sh stage 4)"

rows=()
for pair in $pairs; do
  src=${pair%%:*} tgt=${pair##*:}
  out=$exp_dir/xl/${src}_$tgt
  need "$lists/cross_$src.jsonl" "stage 7's $src test list"
  need "$lists/cross_$tgt.jsonl" "stage 7's $tgt test list"
  log "cross-lingual $src prompt -> $tgt target: $out"
  $python -m valle.eval.cross_lingual --prompts "$lists/cross_$src.jsonl" \
    --targets "$lists/cross_$tgt.jsonl" --cuts "$test_cuts" --out-dir "$out" --max-items "$max_items"
  valle-infer --checkpoint "$checkpoint" --jobs "$out/jobs.jsonl" --out-dir "$out/wav" \
    --tokens "$data_dir/tokens.txt" --codec-dir "$data_dir/tokenized" --seed 0
  valle-bench wer --hyp-dir "$out/wav" --ref "$out/list.jsonl" --ref-field target_text \
    --language "$tgt" --asr "$asr" ${asr_path:+--asr-path "$asr_path"} --allow-missing \
    --system "${src}->${tgt}" --out-dir "$out/wer" --no-progress
  valle-bench sim --hyp-dir "$out/wav" --list "$out/list.jsonl" --cuts "$test_cuts" \
    --no-original --allow-missing --system "${src}->${tgt}" --out-dir "$out/sim" --no-progress
  rows+=("$out")
done
$python - "$exp_dir/xl/summary.md" "${rows[@]}" <<'PY'
import json, sys
from pathlib import Path
out, dirs = Path(sys.argv[1]), [Path(d) for d in sys.argv[2:]]
lines = ["| prompt -> target | items | metric | error rate % | SIM-o (to the prompt) |",
         "|---|---:|---|---:|---:|"]
for d in dirs:
    wer = json.loads((d / "wer" / "wer_summary.json").read_text())
    sim = json.loads((d / "sim" / "sim_summary.json").read_text())
    src, tgt = d.name.split("_")
    lines.append(f"| {src} -> {tgt} | {wer['utterances']} | {wer['metric']} | "
                 f"{100 * wer['error_rate']:.1f} | {sim['sim_o']:.3f} |")
tmp = out.with_suffix(".tmp")
tmp.write_text("\n".join(lines) + "\n")
tmp.replace(out)
print("\n".join(lines))
PY
