#!/usr/bin/env bash
# Training (and later decoding/scoring) of the mini recipe; stages 0-4 are prepare.sh's.
#
#   ./run.sh                                      # stages 5-6: train the AR, then the NAR
#   ./run.sh --stage 0                            # data preparation (prepare.sh) first
#   ./run.sh --stage 6 --stop-stage 6             # only the NAR
#   ./run.sh --train-opts "--set train.max_steps=50"   # a shorter smoke run
#
# Stages: 0-4 prepare.sh (corpus, manifests, codec tokens, text tokens, splits),
# 5 train the AR (conf/train_ar.yaml) -> $exp_dir/ar, 6 train the NAR from the stage-5 weights
# (conf/train_nar.yaml) -> $exp_dir/nar, whose model.pt is the complete model,
# 7 decode and 8 score (not written yet: they stop with an error).
# A training stage that was interrupted continues from its last checkpoint when run again
# (valle-train --resume); a finished one is skipped (.done marker).
set -euo pipefail

# ---- defaults (each one can be overridden with --name value) ----
stage=5
stop_stage=6
data_dir=data                    # outputs of prepare.sh
exp_dir=exp/valle_tiny           # training outputs (ar/ and nar/ below it)
variant=valle                    # model variant preset (valle/conf/variant)
size=tiny                        # model size preset (valle/conf/size)
ar_config=conf/train_ar.yaml     # train/data settings of stage 5
nar_config=conf/train_nar.yaml   # train/data settings of stage 6
devices=1                        # devices for Lightning
accelerator=cpu                  # cpu | gpu | auto
num_threads=1                    # torch threads of the trainer (1 + one loader worker = 2 cores);
                                 # measured: 0.45 s per tiny-model step with 1, 2-3 s with 2 on a busy 2-core machine
train_opts=                      # extra valle-train arguments, e.g. "--set train.max_steps=50"
python=python3
help_vars="stage stop_stage data_dir exp_dir variant size ar_config nar_config devices accelerator num_threads train_opts python"

cd "$(dirname "$0")"
. shared/parse_options.sh

repo_root=$(cd ../.. && pwd)
export PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}"

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') ($fname:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}

need() {  # need FILE WHAT: fail with a clear message when an earlier stage's output is missing
  if [ ! -e "$1" ]; then
    log "ERROR: $1 not found ($2); run the earlier stages first (see --stage)"
    exit 1
  fi
}

token_dir=$data_dir/tokenized
train_cuts=$token_dir/mini_cuts_train.jsonl.gz
dev_cuts=$token_dir/mini_cuts_dev.jsonl.gz
tokens=$data_dir/tokens.txt

# train STAGE_NAME OUT_DIR CONFIG [extra valle-train args]: run or resume one training stage
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
  # shellcheck disable=SC2086  # train_opts is a list of words
  $python -m valle.bin.train --variant "$variant" --size "$size" --config "$config" \
    --exp-dir "$out" --train-cuts "$train_cuts" "${dev[@]}" --tokens "$tokens" \
    --codec-dir "$token_dir" --accelerator "$accelerator" --devices "$devices" \
    --num-threads "$num_threads" \
    "${resume[@]}" "$@" $train_opts
  date '+finished %Y-%m-%d %H:%M:%S' > "$out/.done"
}

log "mini recipe run.sh: stages $stage..$stop_stage, data in $data_dir, experiments in $exp_dir"

if [ $stage -le 4 ]; then
  prep_stop=$(( stop_stage < 4 ? stop_stage : 4 ))
  log "Stages $stage-$prep_stop: data preparation (prepare.sh)"
  ./prepare.sh --stage "$stage" --stop-stage "$prep_stop" --data-dir "$data_dir"
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "Stage 5: train the AR ($variant/$size, $ar_config) -> $exp_dir/ar"
  train AR "$exp_dir/ar" "$ar_config"
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  log "Stage 6: train the NAR ($variant/$size, $nar_config) from $exp_dir/ar/model.pt -> $exp_dir/nar"
  need "$exp_dir/ar/.done" "the trained AR (stage 5)"
  train NAR "$exp_dir/nar" "$nar_config" --init-from "$exp_dir/ar/model.pt"
  log "  complete model (AR + NAR): $exp_dir/nar/model.pt"
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  log "ERROR: stage 7 (decode) is not written yet; stop at --stop-stage 6"
  exit 1
fi

if [ $stage -le 8 ] && [ $stop_stage -ge 8 ]; then
  log "ERROR: stage 8 (score) is not written yet; stop at --stop-stage 6"
  exit 1
fi

log "Done (stages $stage..$stop_stage)."
