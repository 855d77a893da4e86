#!/usr/bin/env python3
"""Align real human speech with the mini recipe's aligner and plot it (issue 11's check that
the aligner, trained on the engines' voices only, also places phonemes in a human voice).

The recordings are any wav files with their transcripts; the default set is the eight short
phrases spoken by a person that Debian's alsa-utils ships (/usr/share/sounds/alsa/*.wav:
"Front Center", "Rear Left", ...), the only recorded human speech this offline machine has.

python local/align_human.py --aligner data/align/aligner.pt --codec-dir data/tokenized
    --out results/alignment_human.png [--wav a.wav --text "what a says" ...]

Each recording goes through :func:`valle.inference.reference.reference_prosody` (the codec's
frame count, the aligner's features and Viterbi: what prosody control from a reference does),
and one panel per recording shows its features with the phoneme boundaries. There is no
ground truth for these: the plot is for the eye (do boundaries sit on the spectral changes?).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ALSA = Path("/usr/share/sounds/alsa")
ALSA_PHRASES = {
    "Front_Center.wav": "Front center.",
    "Front_Left.wav": "Front left.",
    "Front_Right.wav": "Front right.",
    "Rear_Center.wav": "Rear center.",
    "Rear_Left.wav": "Rear left.",
    "Rear_Right.wav": "Rear right.",
    "Side_Left.wav": "Side left.",
    "Side_Right.wav": "Side right.",
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--aligner", type=Path, required=True, help="aligner.pt of the aligner stage")
    p.add_argument("--codec-dir", type=Path, required=True, help="codec.json's directory")
    p.add_argument("--out", type=Path, required=True, help="the plot (.png)")
    p.add_argument("--wav", type=Path, action="append", default=[], help="a recording")
    p.add_argument("--text", action="append", default=[], help="its transcript (per --wav)")
    args = p.parse_args()
    if len(args.wav) != len(args.text):
        p.error("give one --text per --wav")
    pairs = list(zip(args.wav, args.text, strict=True))
    if not pairs:
        pairs = [(ALSA / f, t) for f, t in ALSA_PHRASES.items() if (ALSA / f).is_file()]
        if not pairs:
            p.error(f"no recordings given and none in {ALSA} (Debian package alsa-utils)")

    from lhotse import MonoCut, SupervisionSegment

    from valle.align import Aligner
    from valle.align.evaluate import plot_alignment
    from valle.align.features import analysis_rate
    from valle.data.audio import to_mono_at_rate
    from valle.data.tokenize import PHONEMES_FIELD
    from valle.inference.codec_spec import codec_from_dir
    from valle.inference.reference import load_reference, reference_prosody
    from valle.text import tokenize_text

    aligner = Aligner(args.aligner)
    codec = codec_from_dir(args.codec_dir)
    cuts, feats, durations = [], [], []
    for wav, text in pairs:
        phonemes = tokenize_text(text, "en")
        ref = reference_prosody(wav, phonemes, codec, aligner, name=str(wav))
        wave = load_reference(wav, int(codec.sample_rate))
        a_rate, _ = analysis_rate(float(codec.frame_rate))
        a_wave = to_mono_at_rate(wave.numpy(), int(codec.sample_rate), a_rate)
        feats.append(aligner.features.from_wave(a_wave, ref.frames).numpy())
        sup = SupervisionSegment(
            id=wav.stem, recording_id=wav.stem, start=0.0, duration=ref.frames / codec.frame_rate,
            text=text, custom={PHONEMES_FIELD: phonemes},
        )  # fmt: skip
        cuts.append(MonoCut(id=wav.stem, start=0.0, duration=sup.duration, channel=0,
                            supervisions=[sup]))  # fmt: skip
        durations.append(ref.durations.tolist())
        print(f"{wav.name}: {text!r} -> " + " ".join(
            f"{t}:{d}" for t, d in zip(phonemes, ref.durations.tolist(), strict=True)))  # fmt: skip
    out = plot_alignment(cuts, feats, durations, args.out, float(codec.frame_rate))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
