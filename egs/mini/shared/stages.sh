# Stage helpers shared by the recipes' run.sh (sourced after log.sh, icefall style).
#   stage_begin [MARKER]    start timing a stage; it counts as skipped if MARKER (its .done
#                           file) exists already
#   stage_end N WHAT        append "N<TAB>start<TAB>end<TAB>WHAT" to $stage_times (not for a
#                           skipped stage)
#   mark_done DIR           write DIR/.done with the finishing time
#   variant_has_nar         prints true when $variant's model has a NAR stage (valle.registry),
#                           false for a model without one (MELLE: complete after stage 5)
#   train NAME OUT CONFIG [valle-train args]
#                           run or resume one training stage into OUT (skipped once OUT/.done
#                           exists; resumed from OUT/checkpoints/step-*.ckpt when there are any)
# They read the recipe's settings: exp_dir, stage_times, train_cmd, train_extra (an array of
# recipe-specific valle-train arguments), variant, size, train_cuts, dev_cuts, tokens,
# token_dir, accelerator, devices, train_opts.

variant_has_nar() {
  # an unknown name or a YAML preset prints true: valle-train then reports the real problem
  $python -c 'import sys
from valle.config import preset_variant
from valle.registry import variant_stages
try:
    print("true" if "nar" in variant_stages(preset_variant(sys.argv[1])) else "false")
except Exception:
    print("true")' "$variant"
}

stage_begin() {
  stage_t0=$(date +%s)
  stage_skipped=false
  if [ $# -gt 0 ] && [ -e "$1" ]; then stage_skipped=true; fi
}

stage_end() {
  if $stage_skipped; then return; fi
  mkdir -p "$exp_dir"
  printf '%s\t%s\t%s\t%s\n' "$1" "$stage_t0" "$(date +%s)" "$2" >> "$stage_times"
}

mark_done() {
  date '+finished %Y-%m-%d %H:%M:%S' > "$1/.done"
}

train() {
  local name=$1 out=$2 config=$3; shift 3
  if [ -f "$out/.done" ]; then
    log "  $out/.done exists ($(cat "$out/.done")), skipping"
    return
  fi
  need "$train_cuts" "tokenized training cuts (stage 4)"
  need "$tokens" "the symbol table (stage 3)"
  need "$token_dir/codec.json" "codec facts (stage 2)"
  local resume=()
  if compgen -G "$out/checkpoints/step-*.ckpt" > /dev/null; then
    log "  $out has checkpoints: resuming the interrupted $name run"
    resume=(--resume)
  fi
  local dev=()
  if [ -s "$dev_cuts" ]; then dev=(--dev-cuts "$dev_cuts"); fi
  # shellcheck disable=SC2086  # train_cmd and train_opts are lists of words
  $train_cmd --variant "$variant" --size "$size" --config "$config" \
    --exp-dir "$out" --train-cuts "$train_cuts" "${dev[@]}" --tokens "$tokens" \
    --codec-dir "$token_dir" --accelerator "$accelerator" --devices "$devices" \
    "${train_extra[@]}" "${resume[@]}" "$@" $train_opts
  mark_done "$out"
}
