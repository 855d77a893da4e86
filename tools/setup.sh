#!/usr/bin/env bash
# One-shot set-up on a fresh Debian machine: system packages, then the valle package with torch
# pinned. Safe to re-run. Usage: bash tools/setup.sh
set -euo pipefail

cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Speech engines for the offline mini corpus (flite, festival + voices, espeak-ng, which
# phonemizer also uses as its G2P backend), sox for audio checks, libsndfile for soundfile,
# fortunes for the English text the mini corpus's training voices read
# (valle/data/mini/fortune_sentences.py), and a headless Chromium that renders the recipes'
# listening pages (valle/eval/listening_page.py).
# fortunes-zh: Mandarin text (modern prose, Tang and Song poems) the mini corpus's Mandarin
# training voices read (valle/data/mini/chinese_sentences.py)
APT_PACKAGES=(espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
              sox libsndfile1 fortunes fortunes-zh chromium-headless-shell)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# torch is installed first and pinned in every pip call: an open torch requirement would pull
# the CUDA build (gigabytes) instead of the CPU build.
PIP="python3 -m pip install -q --disable-pip-version-check"
$PIP "torch==2.13.0"
$PIP -e ".[dev,ja,vocoder]" "torch==2.13.0"
python3 -c "import torch, valle; print(f'valle {valle.__version__} ready (torch {torch.__version__})')"
