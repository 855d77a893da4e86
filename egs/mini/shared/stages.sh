# Stage helpers shared by the recipes' run.sh (sourced after log.sh, icefall style).
#   stage_begin [MARKER]    start timing a stage; it counts as skipped if MARKER (its .done
#                           file) exists already
#   stage_end N WHAT        append "N<TAB>start<TAB>end<TAB>WHAT" to $stage_times (not for a
#                           skipped stage)
#   mark_done DIR           write DIR/.done with the finishing time
#   variant_has_nar         prints true when $variant's model has a NAR stage (valle.registry),
#                           false for a model without one (MELLE: complete after stage 5)
#   train NAME OUT CONFIGS [valle-train args]
#                           run or resume one training stage into OUT (skipped once OUT/.done
#                           exists; resumed from OUT/checkpoints/step-*.ckpt when there are any);
#                           CONFIGS: one YAML file or several separated by spaces (later win)
#   train_ar_stage          stage 5: the AR -> $exp_dir/ar ($ar_config)
#   train_nar_stage         stage 6: the NAR from the stage-5 weights -> $exp_dir/nar
#                           ($nar_config), or nothing for a model without a NAR
#   hard_stage              stage 9: the hard-sentence test (valle-hard) of $checkpoint in the
#                           voice of the first English cross-sentence test prompt -> $exp_dir/hard,
#                           with the decode stage's $decode_opts (--set KEY=VALUE, --quantize)
#   prosody_stage CORPUS    prepare.sh stage 4 with --prosody true: RALL-E's prosody tokens
#                           (valle.bin.prosody) on $data_dir/align/CORPUS_cuts_<split> ->
#                           $data_dir/prosody (one .done marker per split)
# They read the recipe's settings: exp_dir, stage_times, train_cmd, train_extra (an array of
# recipe-specific valle-train arguments), variant, size, train_cuts, dev_cuts, tokens,
# token_dir, accelerator, devices, train_opts, ar_config, nar_config, has_nar, decode_dir,
# score_dir, checkpoint, test_cuts, asr, asr_path, decode_device, model_name, python,
# num_threads, hard_sentences and decode_opts (optional).

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
  local name=$1 out=$2 configs=$3; shift 3
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
  local config_args=() c
  for c in $configs; do config_args+=(--config "$c"); done
  # shellcheck disable=SC2086  # train_cmd and train_opts are lists of words
  $train_cmd --variant "$variant" --size "$size" "${config_args[@]}" \
    --exp-dir "$out" --train-cuts "$train_cuts" "${dev[@]}" --tokens "$tokens" \
    --codec-dir "$token_dir" --accelerator "$accelerator" --devices "$devices" \
    "${train_extra[@]}" "${resume[@]}" "$@" $train_opts
  mark_done "$out"
}

train_ar_stage() {
  log "Stage 5: train the AR ($variant/$size, $ar_config) -> $exp_dir/ar"
  if ! $has_nar && [ ! -f "$exp_dir/ar/.done" ]; then  # a new complete model: stale decodes
    rm -f "$decode_dir/.done" "$score_dir/.done"
  fi
  stage_begin "$exp_dir/ar/.done"
  train AR "$exp_dir/ar" "$ar_config"
  stage_end 5 "train AR"
}

train_nar_stage() {
  if ! $has_nar; then
    log "Stage 6: $variant has no NAR; $exp_dir/ar/model.pt is the complete model"
    return
  fi
  log "Stage 6: train the NAR ($variant/$size, $nar_config) from $exp_dir/ar/model.pt -> $exp_dir/nar"
  need "$exp_dir/ar/.done" "the trained AR (stage 5)"
  if [ ! -f "$exp_dir/nar/.done" ]; then  # a new model: earlier decodes and scores are stale
    rm -f "$decode_dir/.done" "$score_dir/.done"
  fi
  stage_begin "$exp_dir/nar/.done"
  train NAR "$exp_dir/nar" "$nar_config" --init-from "$exp_dir/ar/model.pt"
  stage_end 6 "train NAR"
  log "  complete model (AR + NAR): $exp_dir/nar/model.pt"
}

hard_stage() {
  local hard_dir=$exp_dir/hard
  log "Stage 9: hard sentences with $checkpoint -> $hard_dir"
  if [ -f "$hard_dir/.done" ]; then
    log "  $hard_dir/.done exists ($(cat "$hard_dir/.done")), skipping"
    return
  fi
  need "$decode_dir/lists/cross_en.jsonl" "the English cross-sentence test list (stage 7)"
  need "$checkpoint" "the trained model (stage 6, or pass --checkpoint)"
  stage_begin
  # shellcheck disable=SC2086  # decode_opts is a list of words
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-${num_threads:-1}} \
    $python -m valle.bin.hard --checkpoint "$checkpoint" --tokens "$tokens" \
    --codec-dir "$token_dir" --prompt-list "$decode_dir/lists/cross_en.jsonl" \
    --cuts "$test_cuts" --out-dir "$hard_dir" --asr "$asr" ${asr_path:+--asr-path "$asr_path"} \
    --device "$decode_device" --system "$model_name" --no-progress \
    ${hard_sentences:+--sentences "$hard_sentences"} ${decode_opts:-}
  mark_done "$hard_dir"
  stage_end 9 "hard sentences"
}

prosody_stage() {
  local corpus=$1 split
  local align_dir=$data_dir/align prosody_dir=$data_dir/prosody
  log "Stage 4 (--prosody true): RALL-E prosody tokens on the aligner's cuts -> $prosody_dir"
  for split in train dev test; do
    need "$align_dir/.durations_$split.done" "the aligner's $split cuts with durations: add --align true"
  done
  for split in train dev test; do
    if [ ! -f "$prosody_dir/.prosody_$split.done" ]; then
      $python -m valle.bin.prosody --cuts "$align_dir/${corpus}_cuts_$split.jsonl.gz" \
        --out "$prosody_dir/${corpus}_cuts_$split.jsonl.gz" --chunk-size "$chunk_size"
      touch "$prosody_dir/.prosody_$split.done"
    else
      log "  $prosody_dir/.prosody_$split.done exists, skipping"
    fi
  done
}
