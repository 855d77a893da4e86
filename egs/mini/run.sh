#!/usr/bin/env bash
# The mini research loop: data (prepare.sh), training, decoding, scoring, RESULTS.md.
#
#   ./run.sh                                      # everything: stages 0-8 (done stages are skipped)
#   ./run.sh --stage 5                            # stages 5-8: train, decode, score
#   ./run.sh --stage 6 --stop-stage 6             # only the NAR
#   ./run.sh --stage 7                            # decode and score an existing model
#   ./run.sh --train-opts "--set train.max_steps=50"   # a shorter smoke run
#   ./run.sh --variant valle --ar-config conf/train_ar.yaml --exp-dir exp/valle_tiny   # plain VALL-E
#
# Stages: 0-4 prepare.sh, one stage at a time (corpus, manifests, codec tokens, text tokens,
# splits + with --align true (the default) the aligner and every split's phoneme durations in
# $data_dir/align), 5 train the AR (conf/train_ar.yaml then conf/melle_aligned.yaml: the main
# job's model is the frame-aligned MELLE, whose AR is the complete model) -> $exp_dir/ar, 6 train
# the NAR from the stage-5 weights (conf/train_nar.yaml; a variant with a NAR, e.g. --variant
# valle) -> $exp_dir/nar, whose model.pt is then the complete model, 7 decode the
# held-out-speaker test cuts in the continuation and cross-sentence settings (local/decode.py,
# conf/decode.yaml; the aligner gives the prompts' phoneme durations to a model that reads them)
# -> $exp_dir/decode/<setting>/<id>.wav, plus the codec resynthesis of targets and prompts (kept
# by content in $data_dir/resynth_cache: another model on the same data copies them),
# 8 score WER/CER (faster-whisper) and speaker similarity (resemblyzer) of ground truth, codec
# resynthesis and model (local/score.py) -> $exp_dir/score, plus the speed and cost of the
# decoded checkpoint (valle-bench speed: RTF, AR ms/step, train tokens/s, peak memory at batch 1
# in the model's row), then RESULTS.md
# (local/write_results.py) with the tables, the command, the git commit, the
# hardware and the wall time of each stage (appended to $exp_dir/stage_times.tsv as it runs),
# and the listening page $exp_dir/results/index.html (local/listening_page.py: every test
# item's prompt, ground truth, codec resynthesis and output as audio players with their WER and
# SIM; rendered once in headless Chromium to index.png).
# Stage 9 (not in the default run; --stage 9 --stop-stage 9): the hard-sentence robustness test
# (RALL-E Sec 4; valle-hard) in the voice of the first cross-sentence English test prompt ->
# $exp_dir/hard/{hard_table.md,hard_summary.json,wav/}; several systems side by side:
# python -m valle.bin.hard --compare exp/A/hard exp/B/hard.
# A training stage that was interrupted continues from its last checkpoint when run again
# (valle-train --resume); a finished stage is skipped (.done marker). Retraining the NAR clears
# the decode and score markers; decoding again clears the score marker.
set -euo pipefail

# ---- defaults (each one can be overridden with --name value) ----
stage=0
stop_stage=8
data_dir=data                    # outputs of prepare.sh
align=true                       # stage 4 also trains the aligner and writes $data_dir/align (cuts with
                                 # phoneme durations; prepare.sh --align true, at most 8 min)
cuts_dir=                        # the train/dev/test cut manifests; default $data_dir/align with --align true,
                                 # else $data_dir/tokenized ($data_dir/prosody: + prosody tokens, for --variant ralle)
exp_dir=exp/melle_aligned        # training outputs (ar/ and nar/ below it)
variant=melle_aligned            # model variant preset (valle/conf/variant); the main job's: the
                                 # frame-aligned MELLE, the first mini model that reads its text
                                 # (EXPERIMENTS.md ma1; plain VALL-E: --variant valle --exp-dir exp/valle_tiny
                                 # --ar-config conf/train_ar.yaml)
size=tiny                        # model size preset (valle/conf/size)
ar_config="conf/train_ar.yaml conf/melle_aligned.yaml"  # train/data settings of stage 5 (YAML files,
                                 # space-separated, later ones win)
nar_config=conf/train_nar.yaml   # train/data settings of stage 6
devices=1                        # devices for Lightning
accelerator=cpu                  # cpu | gpu | auto
num_threads=2                    # torch threads of data preparation, the trainer and decoding; 2 on an idle
                                 # 2-core machine (the 6M-parameter melle_aligned: 1.06 s a step, ma1);
                                 # use 1 on a busy one (measured: 0.45 s per tiny-VALL-E step with 1,
                                 # 2-3 s with 2 while other jobs ran)
train_opts=                      # extra valle-train arguments, e.g. "--set train.max_steps=50"
prepare_opts=                    # extra prepare.sh arguments (stages 0-4), e.g. "--scale 0.1"
checkpoint=                      # model to decode; default $exp_dir/nar/model.pt ($exp_dir/ar/model.pt without a NAR)
test_cuts=                       # cuts to decode; default $data_dir/tokenized/mini_cuts_test.jsonl.gz
decode_config=conf/decode.yaml   # test-list bounds per language, item caps, seed, batch size
decode_opts=                     # extra local/decode.py arguments, e.g. "--set ar.stop.threshold=0.9"
decode_aligner=                  # aligner that gives the prompts' durations at decoding (vallr, ralle,
                                 # melle_aligned read them); default $cuts_dir/aligner.pt when it exists
decode_device=cpu                # where stage 7 synthesizes (cpu | cuda)
asr=faster-whisper               # ASR of stage 8: faster-whisper | hubert-ctc | whisper
asr_path=                        # default for faster-whisper: <repo>/../shared/models/faster-whisper-base
sim_encoder=resemblyzer          # speaker encoder of stage 8: resemblyzer | wavlm-sv
sim_encoder_path=                # encoder directory or hub name (wavlm-sv)
model_name=                      # the model's row in the tables; default "$variant ($size)"
hard_sentences=                  # stage 9's list ('<id>\t<group>\t<text>' lines); default: the shipped one
results=RESULTS.md               # written at the end of stage 8
python=python3
help_vars="stage stop_stage data_dir align cuts_dir exp_dir variant size ar_config nar_config devices accelerator num_threads train_opts prepare_opts checkpoint test_cuts decode_config decode_opts decode_aligner decode_device asr asr_path sim_encoder sim_encoder_path model_name results python hard_sentences"

run_command="./run.sh"  # recorded in RESULTS.md
if [ $# -gt 0 ]; then run_command+=$(printf ' %q' "$@"); fi

cd "$(dirname "$0")"
. shared/parse_options.sh

repo_root=$(cd ../.. && pwd)
export PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}"

. shared/log.sh  # log, need
. shared/stages.sh  # stage_begin, stage_end, mark_done, train

token_dir=$data_dir/tokenized
if [ -z "$cuts_dir" ]; then
  if [ "$align" = true ]; then cuts_dir=$data_dir/align; else cuts_dir=$token_dir; fi
fi
decode_aligner=${decode_aligner:-$cuts_dir/aligner.pt}
train_cuts=$cuts_dir/mini_cuts_train.jsonl.gz
dev_cuts=$cuts_dir/mini_cuts_dev.jsonl.gz
tokens=$data_dir/tokens.txt
has_nar=$(variant_has_nar)  # a model without a NAR (MELLE) is complete after stage 5
if $has_nar; then model_dir=$exp_dir/nar; else model_dir=$exp_dir/ar; fi
checkpoint=${checkpoint:-$model_dir/model.pt}
test_cuts=${test_cuts:-$cuts_dir/mini_cuts_test.jsonl.gz}
decode_dir=$exp_dir/decode
score_dir=$exp_dir/score
stage_times=$exp_dir/stage_times.tsv
model_name=${model_name:-$variant ($size)}
if [ -z "$asr_path" ] && [ "$asr" = faster-whisper ]; then
  asr_path=$repo_root/../shared/models/faster-whisper-base
fi

train_cmd="$python -m valle.bin.train"
train_extra=(--num-threads "$num_threads")  # valle-train arguments of this recipe (shared/stages.sh)

log "mini recipe run.sh: stages $stage..$stop_stage, data in $data_dir, experiments in $exp_dir"

prep_names=(corpus manifests "codec tokens" "text tokens" splits)
# the .done markers of prepare.sh's stages (a marker present: the stage will be skipped)
prep_markers=("$data_dir/corpus/mini/.done" "$data_dir/manifests/.mini.done"
  "$token_dir/.mini_codes.done" "$token_dir/.mini_text.done" "$token_dir/.mini_split.done")
if [ "$align" = true ]; then  # stage 4 also trains the aligner and aligns every split
  prep_names[4]="splits + aligner"
  prep_markers[4]=$data_dir/align/.durations_test.done
fi
if [ $stage -le 4 ]; then
  prep_stop=$(( stop_stage < 4 ? stop_stage : 4 ))
  log "Stages $stage-$prep_stop: data preparation (prepare.sh, one stage at a time)"
  for (( s = stage; s <= prep_stop; s++ )); do
    stage_begin "${prep_markers[$s]}"
    # One intra-op thread per process (num_threads): with torch's default of one per core, the
    # codec's threads spin against the other jobs of a busy 2-core machine (measured: stage 2
    # encoded 12 s of audio per second with the default, 105 s/s with 1 thread, same load).
    # shellcheck disable=SC2086  # prepare_opts is a list of words
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-$num_threads} \
      ./prepare.sh --stage "$s" --stop-stage "$s" --data-dir "$data_dir" --align "$align" \
      $prepare_opts
    stage_end "$s" "prepare: ${prep_names[$s]}"
  done
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  train_ar_stage
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  train_nar_stage
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  log "Stage 7: decode $test_cuts ($decode_config) with $checkpoint -> $decode_dir"
  if [ -f "$decode_dir/.done" ]; then
    log "  $decode_dir/.done exists ($(cat "$decode_dir/.done")), skipping"
  else
    need "$test_cuts" "tokenized test cuts (stage 4)"
    if $has_nar; then model_stage=6; else model_stage=5; fi
    need "$checkpoint" "the trained model (stage $model_stage, or pass --checkpoint)"
    rm -f "$score_dir/.done"
    decode_aligner_args=()
    if [ -f "$decode_aligner" ]; then decode_aligner_args=(--aligner "$decode_aligner"); fi
    stage_begin
    $python local/decode.py --config "$decode_config" --cuts "$test_cuts" \
      --checkpoint "$checkpoint" --decode-dir "$decode_dir" --tokens "$tokens" \
      --codec-dir "$token_dir" --device "$decode_device" --num-threads "$num_threads" \
      --resynth-cache "$data_dir/resynth_cache" \
      ${decode_aligner_args[@]+"${decode_aligner_args[@]}"} $decode_opts
    mark_done "$decode_dir"
    stage_end 7 "decode"
  fi
fi

if [ $stage -le 8 ] && [ $stop_stage -ge 8 ]; then
  log "Stage 8: score $decode_dir ($asr, $sim_encoder) -> $score_dir, $results"
  need "$decode_dir/.done" "the decoded test lists (stage 7)"
  if [ -f "$score_dir/.done" ]; then
    log "  $score_dir/.done exists ($(cat "$score_dir/.done")), skipping the scoring"
  else
    stage_begin
    $python local/score.py --decode-dir "$decode_dir" --cuts "$test_cuts" \
      --score-dir "$score_dir" --asr "$asr" ${asr_path:+--asr-path "$asr_path"} \
      --encoder "$sim_encoder" ${sim_encoder_path:+--encoder-path "$sim_encoder_path"} \
      --model-name "$model_name" --device "$decode_device" \
      --checkpoint "$checkpoint" --codec-dir "$token_dir" --speed-threads "$num_threads" \
      --cache-dir "$data_dir/score_cache"
    mark_done "$score_dir"
    stage_end 8 "score"
  fi
  $python local/write_results.py --score-dir "$score_dir" --decode-dir "$decode_dir" \
    --stage-times "$stage_times" --command "$run_command" --out "$results" \
    --title "Mini recipe results ($model_name)" --checkpoint "$checkpoint"
  $python local/listening_page.py --decode-dir "$decode_dir" --score-dir "$score_dir" \
    --cuts "$test_cuts" --out-dir "$exp_dir/results" --title "Mini recipe: $model_name"
  log "  tables: $score_dir/<setting>_<language>.{csv,md,png}; summary: $results"
  log "  listening page: $exp_dir/results/index.html (rendered: $exp_dir/results/index.png)"
fi

if [ $stage -le 9 ] && [ $stop_stage -ge 9 ]; then
  hard_stage
fi

log "Done (stages $stage..$stop_stage)."
