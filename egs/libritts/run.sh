#!/usr/bin/env bash
# Training (and later decoding/scoring) of the LibriTTS recipe; stages 0-4 are prepare.sh's.
#
#   ./run.sh                                      # stages 5-8: train AR and NAR, decode, score
#   ./run.sh --stage 0                            # data preparation (prepare.sh) first
#   ./run.sh --stage 6 --stop-stage 6             # only the NAR
#   ./run.sh --devices 8 --num-nodes 2           # multi-node DDP (under SLURM: see docs/training.md)
#   ./run.sh --train-opts "--set train.max_steps=1000"  # a shorter run
#
# Stages: 0-4 prepare.sh (corpus, manifests, codec tokens, text tokens, splits),
# 5 train the AR (conf/train_ar.yaml) -> $exp_dir/ar, 6 train the NAR from the stage-5 weights
# (conf/train_nar.yaml) -> $exp_dir/nar, whose model.pt is the complete model,
# 7 decode LibriSpeech test-clean (4-10 s utterances, 3 s prompts: conf/decode.yaml) in the
# continuation and cross-sentence settings (local/decode.py) -> $exp_dir/decode/<setting>/<id>.wav,
# 8 score WER (HuBERT-Large CTC, the papers' ASR) and speaker similarity (WavLM-TDNN SV) of ground
# truth, EnCodec resynthesis and model (local/score.py) -> $exp_dir/score, then RESULTS.md.
# 9 (not in the default run: --stage 9 --stop-stage 9) the hard-sentence test (valle-hard, RALL-E
# Sec 4) in the voice of the first cross-sentence test prompt -> $exp_dir/hard.
#   ./run.sh --stage 7 --asr faster-whisper --asr-path /models/faster-whisper-base  # other ASR
# A training stage that was interrupted continues from its last checkpoint when run again
# (valle-train --resume); a finished one is skipped (.done marker).
set -euo pipefail

# ---- defaults (each one can be overridden with --name value) ----
stage=5
stop_stage=8
data_dir=data                    # outputs of prepare.sh
exp_dir=exp/valle_base           # training outputs (ar/ and nar/ below it)
variant=valle                    # model variant preset (valle/conf/variant)
size=base                        # model size preset (valle/conf/size): the paper's 12 x 1024
ar_config=conf/train_ar.yaml     # train/data settings of stage 5
nar_config=conf/train_nar.yaml   # train/data settings of stage 6
devices=auto                     # GPUs per node (auto: all visible)
num_nodes=1                      # nodes; >1 under SLURM or torchrun (docs/training.md)
strategy=auto                    # Lightning strategy (auto picks ddp for several devices)
accelerator=gpu                  # cpu | gpu | auto
train_opts=                      # extra valle-train arguments, e.g. "--set train.max_steps=1000"
checkpoint=                      # model to decode; default $exp_dir/nar/model.pt ($exp_dir/ar/model.pt without a NAR)
test_cuts=                       # default $data_dir/tokenized/librispeech_cuts_test.jsonl.gz
decode_config=conf/decode.yaml   # test-list bounds, item caps, seed, batch size
decode_device=cuda               # where stage 7 synthesizes and stage 8 scores (cpu | cuda)
asr=hubert-ctc                   # ASR of stage 8: hubert-ctc | whisper | faster-whisper
asr_path=facebook/hubert-large-ls960-ft  # hub name or local copy of the ASR model
sim_encoder=wavlm-sv             # speaker encoder of stage 8: wavlm-sv | resemblyzer
sim_encoder_path=                # default: the encoder's hub model (valle.eval.similarity)
model_name=                      # the model's row in the tables; default "$variant ($size)"
hard_sentences=                  # stage 9's list ('<id>\t<group>\t<text>' lines); default: the shipped one
results=RESULTS.md               # written at the end of stage 8
python=python3
train_cmd="$python -m valle.bin.train"  # or "srun $python -m valle.bin.train" inside an sbatch job,
                                 # or "torchrun --nproc-per-node 8 -m valle.bin.train" (docs/training.md)
help_vars="stage stop_stage data_dir exp_dir variant size ar_config nar_config devices num_nodes strategy accelerator train_opts checkpoint test_cuts decode_config decode_device asr asr_path sim_encoder sim_encoder_path model_name results python train_cmd hard_sentences"

run_command="./run.sh$(printf ' %q' "$@")"  # recorded in RESULTS.md

cd "$(dirname "$0")"
. shared/parse_options.sh

repo_root=$(cd ../.. && pwd)
export PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}"

. shared/log.sh  # log, need
. shared/stages.sh  # stage_begin, stage_end, mark_done, train

token_dir=$data_dir/tokenized
train_cuts=$token_dir/libritts_cuts_train.jsonl.gz
dev_cuts=$token_dir/libritts_cuts_dev.jsonl.gz
tokens=$data_dir/tokens.txt
has_nar=$(variant_has_nar)  # a model without a NAR (MELLE) is complete after stage 5
if $has_nar; then model_dir=$exp_dir/nar; else model_dir=$exp_dir/ar; fi
checkpoint=${checkpoint:-$model_dir/model.pt}
test_cuts=${test_cuts:-$token_dir/librispeech_cuts_test.jsonl.gz}
decode_dir=$exp_dir/decode
score_dir=$exp_dir/score
stage_times=$exp_dir/stage_times.tsv
model_name=${model_name:-$variant ($size)}

train_extra=(--num-nodes "$num_nodes" --strategy "$strategy")  # valle-train arguments of this recipe (shared/stages.sh)

log "libritts recipe run.sh: stages $stage..$stop_stage, data in $data_dir, experiments in $exp_dir"

if [ $stage -le 4 ]; then
  prep_stop=$(( stop_stage < 4 ? stop_stage : 4 ))
  log "Stages $stage-$prep_stop: data preparation (prepare.sh)"
  ./prepare.sh --stage "$stage" --stop-stage "$prep_stop" --data-dir "$data_dir"
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
    need "$test_cuts" "tokenized LibriSpeech test-clean (stages 1-4 with LibriSpeech present)"
    need "$checkpoint" "the trained model (stage 6, or pass --checkpoint)"
    rm -f "$score_dir/.done"
    stage_begin
    $python local/decode.py --config "$decode_config" --cuts "$test_cuts" \
      --checkpoint "$checkpoint" --decode-dir "$decode_dir" --tokens "$tokens" \
      --codec-dir "$token_dir" --device "$decode_device"
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
      --model-name "$model_name" --device "$decode_device"
    mark_done "$score_dir"
    stage_end 8 "score"
  fi
  $python local/write_results.py --score-dir "$score_dir" --decode-dir "$decode_dir" \
    --stage-times "$stage_times" --command "$run_command" --out "$results" \
    --title "LibriTTS recipe results ($model_name)" --checkpoint "$checkpoint"
  log "  tables: $score_dir/<setting>_<language>.{csv,md,png}; summary: $results"
fi

if [ $stage -le 9 ] && [ $stop_stage -ge 9 ]; then
  hard_stage
fi

log "Done (stages $stage..$stop_stage)."
