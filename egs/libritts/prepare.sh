#!/usr/bin/env bash
# Data preparation for LibriTTS (stages 0-4; DESIGN.md section 3), through lhotse's recipes.
#
#   ./prepare.sh --stage 0                                # download (needs network) and prepare
#   ./prepare.sh --stage 1 --corpus-dir /corpora/LibriTTS # a local copy: skip the download
#   ./prepare.sh --codec-path /models/encodec_24khz       # a local EnCodec (save_pretrained dir)
#
# Stages: 0 download LibriTTS parts and LibriSpeech test-clean (lhotse), 1 manifests (lhotse's
# prepare_libritts / prepare_librispeech), 2 EnCodec codes (24 kHz, 6 kbps = 8 codebooks, VALL-E
# sec. 5.1), 3 phoneme tokens + tokens.txt over the train split, 4 train/dev/test cut manifests
# (train-* -> train, dev-clean -> dev, test-clean -> test) and a summary table. LibriSpeech
# test-clean, when present, is tokenized too, for the zero-shot evaluation.
# Each stage is skipped when its .done marker exists. After fixing corpus files (a transcript,
# a wav), delete the markers of stages 1-3 and rerun from stage 1: stage 1 notices the changed
# files and remakes lhotse's cached manifests, stage 2 re-encodes only chunks whose audio
# changed, later stages take the new transcripts. A failing stage prints the exact command.
#
# Optional, after stage 4 (--align true): phoneme durations for VALL-E R / RALL-E. Trains the
# built-in aligner (valle.align: CTC acoustic model + monotonic Viterbi, no external tool) on the
# train cuts and writes $data_dir/align/libritts_cuts_{train,dev,test}.jsonl.gz with
# custom["durations"] (code frames per phoneme token).
#   ./prepare.sh --stage 4 --align true   # on a prepared corpus
#
# Optional, after the aligner (--prosody true): RALL-E's phoneme-level prosody tokens
# (valle.bin.prosody: Praat pitch averaged per phoneme into 256 log-F0 buckets, durations
# clipped at 32 frames) on the aligner's cuts, written to
# $data_dir/prosody/libritts_cuts_{train,dev,test}.jsonl.gz (custom["pitch_tokens"],
# custom["duration_tokens"]), the cuts RALL-E trains on. Resumable: chunks whose cuts,
# durations and audio are unchanged are reused.
#   ./prepare.sh --stage 4 --align true --prosody true
set -euo pipefail

# ---- defaults (each one can be overridden with --name value) ----
stage=0
stop_stage=4
data_dir=data                        # every output goes under here
parts="dev-clean test-clean train-clean-100 train-clean-360 train-other-500"
corpus_dir=                          # LibriTTS dir with <part>/...; default $data_dir/download/LibriTTS
librispeech_dir=                     # LibriSpeech dir with test-clean/; default $data_dir/download/LibriSpeech
codec_path=facebook/encodec_24khz    # hub id or local EnCodec directory (save_pretrained layout)
bandwidth=6.0                        # EnCodec bandwidth, kbps (6.0 -> 8 codebooks)
num_jobs=2                           # lhotse manifest workers
skip_bad_audio=false                 # true: leave truncated wav files out (warned) instead of failing
chunk_size=500                       # cuts per resumable tokenization chunk
batch_size=16                        # cuts per codec call
device=cpu                           # where the codec runs (cuda on a GPU machine)
align=false                          # true: also train the aligner and add phoneme durations (stage 4)
align_steps=20000                    # aligner training steps (optimiser steps)
align_minutes=600                    # ... or at most this many minutes of training (wall time)
prosody=false                        # true: also RALL-E prosody tokens on the aligner's cuts (stage 4, after --align)
python=python3
help_vars="stage stop_stage data_dir parts corpus_dir librispeech_dir codec_path bandwidth num_jobs skip_bad_audio chunk_size batch_size device align align_steps align_minutes prosody python"

cd "$(dirname "$0")"
. shared/parse_options.sh

repo_root=$(cd ../.. && pwd)
export PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}"

. shared/log.sh  # log, need
. shared/stages.sh  # prosody_stage

download_dir=$data_dir/download
corpus_dir=${corpus_dir:-$download_dir/LibriTTS}
librispeech_dir=${librispeech_dir:-$download_dir/LibriSpeech}
manifest_dir=$data_dir/manifests
token_dir=$data_dir/tokenized
mkdir -p "$data_dir"

case $skip_bad_audio in
  true) skip_bad_audio_opt=--skip-bad-audio ;;
  false) skip_bad_audio_opt= ;;
  *) echo "$0: --skip-bad-audio must be true or false, got '$skip_bad_audio'" >&2; exit 1 ;;
esac

# After a data error: what to delete so that stages 1-3 run again on the fixed corpus.
redo_hint() {
  local m t
  m=$(cd "$manifest_dir" && pwd)
  t=$(cd "$token_dir" && pwd)
  log "After fixing the corpus, redo stages 1-3 (changed files are noticed, stale manifests"
  log "remade, codec chunks of unchanged audio reused):"
  log "  rm -f $m/.libritts.done $m/.librispeech.done $t/.libritts_codes.done $t/.librispeech_codes.done $t/.libritts_text.done $t/.librispeech_text.done"
  log "  $(pwd)/prepare.sh --stage 1 (and the other options of this run)"
}

log "libritts recipe: stages $stage..$stop_stage, data in $data_dir, parts: $parts"

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  log "Stage 0: download LibriTTS ($parts) and LibriSpeech test-clean into $download_dir"
  if [ ! -f "$download_dir/.libritts.done" ]; then
    # shellcheck disable=SC2086
    $python -m valle.bin.prepare libritts-download --target-dir "$download_dir" --parts $parts
    $python -m valle.bin.prepare librispeech-download --target-dir "$download_dir"
    touch "$download_dir/.libritts.done"
  else
    log "  $download_dir/.libritts.done exists, skipping"
  fi
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "Stage 1: manifests of $corpus_dir -> $manifest_dir"
  need "$corpus_dir" "the LibriTTS directory (stage 0, or pass --corpus-dir)"
  if [ ! -f "$manifest_dir/.libritts.done" ]; then
    # shellcheck disable=SC2086
    $python -m valle.bin.prepare libritts-manifests --corpus-dir "$corpus_dir" \
      --output-dir "$manifest_dir" --parts $parts --num-jobs "$num_jobs" $skip_bad_audio_opt
    touch "$manifest_dir/.libritts.done"
  else
    log "  $manifest_dir/.libritts.done exists, skipping"
  fi
  if [ -d "$librispeech_dir/test-clean" ]; then
    if [ ! -f "$manifest_dir/.librispeech.done" ]; then
      $python -m valle.bin.prepare librispeech-manifests --corpus-dir "$librispeech_dir" \
        --output-dir "$manifest_dir" --num-jobs "$num_jobs"
      touch "$manifest_dir/.librispeech.done"
    fi
  else
    log "  no $librispeech_dir/test-clean: LibriSpeech test-clean (evaluation) left out"
  fi
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "Stage 2: EnCodec codes ($codec_path, $bandwidth kbps) -> $token_dir"
  need "$manifest_dir/libritts_cuts_all.jsonl.gz" "cuts of stage 1"
  if [ ! -f "$token_dir/.libritts_codes.done" ]; then
    $python -m valle.bin.tokenize codes --cuts "$manifest_dir/libritts_cuts_all.jsonl.gz" \
      --codec encodec --codec-path "$codec_path" --bandwidth "$bandwidth" \
      --output-dir "$token_dir" --prefix libritts \
      --chunk-size "$chunk_size" --batch-size "$batch_size" --device "$device"
    touch "$token_dir/.libritts_codes.done"
  else
    log "  $token_dir/.libritts_codes.done exists, skipping"
  fi
  if [ -f "$manifest_dir/.librispeech.done" ] && [ ! -f "$token_dir/.librispeech_codes.done" ]; then
    $python -m valle.bin.tokenize codes \
      --cuts "$manifest_dir/librispeech_cuts_test-clean.jsonl.gz" \
      --codec encodec --codec-path "$codec_path" --bandwidth "$bandwidth" \
      --output-dir "$token_dir" --prefix librispeech \
      --chunk-size "$chunk_size" --batch-size "$batch_size" --device "$device"
    touch "$token_dir/.librispeech_codes.done"
  fi
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "Stage 3: phoneme tokens -> $token_dir/libritts_cuts_tokenized.jsonl.gz, $data_dir/tokens.txt"
  need "$token_dir/.libritts_codes.done" "codec tokens of stage 2"
  if [ ! -f "$token_dir/.libritts_text.done" ]; then
    if ! $python -m valle.bin.tokenize text --cuts "$token_dir/libritts_cuts_codes.jsonl.gz" \
      --corpus libritts --output "$token_dir/libritts_cuts_tokenized.jsonl.gz" \
      --tokens "$data_dir/tokens.txt"; then
      redo_hint
      exit 1
    fi
    touch "$token_dir/.libritts_text.done"
  else
    log "  $token_dir/.libritts_text.done exists, skipping"
  fi
  if [ -f "$token_dir/.librispeech_codes.done" ] && [ ! -f "$token_dir/.librispeech_text.done" ]; then
    if ! $python -m valle.bin.tokenize text --cuts "$token_dir/librispeech_cuts_codes.jsonl.gz" \
      --output "$token_dir/librispeech_cuts_tokenized.jsonl.gz"; then
      redo_hint
      exit 1
    fi
    touch "$token_dir/.librispeech_text.done"
  fi
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "Stage 4: splits -> $token_dir/libritts_cuts_{train,dev,test}.jsonl.gz"
  need "$token_dir/.libritts_text.done" "text tokens of stage 3"
  if [ ! -f "$token_dir/.libritts_split.done" ]; then
    $python -m valle.bin.prepare split --cuts "$token_dir/libritts_cuts_tokenized.jsonl.gz" \
      --corpus libritts --tokens "$data_dir/tokens.txt" --output-dir "$token_dir" --prefix libritts
    touch "$token_dir/.libritts_split.done"
  else
    log "  $token_dir/.libritts_split.done exists, skipping"
  fi
  if [ -f "$token_dir/.librispeech_text.done" ] && [ ! -f "$token_dir/.librispeech_split.done" ]; then
    $python -m valle.bin.prepare split --cuts "$token_dir/librispeech_cuts_tokenized.jsonl.gz" \
      --corpus librispeech --splits test --tokens "$data_dir/tokens.txt" \
      --output-dir "$token_dir" --prefix librispeech
    touch "$token_dir/.librispeech_split.done"
  fi
  log "Summary ($token_dir/libritts_summary.txt):"
  cat "$token_dir/libritts_summary.txt"
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ] && [ "$align" = true ]; then
  align_dir=$data_dir/align
  log "Stage 4 (--align true): aligner on the train cuts -> $align_dir, durations on every split"
  need "$token_dir/.libritts_split.done" "train/dev/test cuts of stage 4"
  if [ ! -f "$align_dir/.train.done" ]; then
    $python -m valle.bin.align train --cuts "$token_dir/libritts_cuts_train.jsonl.gz" \
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
        --cuts "$token_dir/libritts_cuts_$split.jsonl.gz" \
        --out "$align_dir/libritts_cuts_$split.jsonl.gz" --chunk-size "$chunk_size"
      touch "$align_dir/.durations_$split.done"
      rm -f "$data_dir/prosody/.prosody_$split.done"  # new durations: redo the prosody tokens
    fi
  done
  $python -m valle.bin.align evaluate --cuts "$align_dir/libritts_cuts_dev.jsonl.gz" \
    --plot "$align_dir/alignment.png"  # LibriTTS has no reference timings: the plot only
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ] && [ "$prosody" = true ]; then
  prosody_stage libritts
fi

log "Done (stages $stage..$stop_stage)."
