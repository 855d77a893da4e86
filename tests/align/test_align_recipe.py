"""egs/libritts/prepare.sh --align true on a tiny LibriTTS made on the spot (tiny EnCodec)."""

from __future__ import annotations

import subprocess

from lhotse import CutSet

from tests.egs.test_libritts_recipe import RECIPE, make_libritts


def test_align_stage_adds_durations_to_every_split(tmp_path):
    from valle.align.durations import cut_durations
    from valle.data.prompt import load_codes
    from valle.data.tokenize import cut_phonemes
    from valle.testing.codec import tiny_encodec_codec

    corpus = make_libritts(tmp_path / "root")
    codec = tiny_encodec_codec()
    codec.model.save_pretrained(tmp_path / "encodec_tiny")
    data = tmp_path / "data"
    cmd = ["bash", str(RECIPE), "--stage", "1", "--stop-stage", "4", "--data-dir", str(data),
           "--corpus-dir", str(corpus), "--parts", "train-clean-100 dev-clean test-clean",
           "--codec-path", str(tmp_path / "encodec_tiny"), "--bandwidth", str(codec.bandwidth),
           "--num-jobs", "1", "--chunk-size", "3", "--align", "true", "--align-steps", "2"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    align = data / "align"
    assert (align / "aligner.pt").is_file() and (align / "alignment.png").is_file()
    for split, count in {"train": 5, "dev": 2, "test": 2}.items():
        cuts = CutSet.from_file(align / f"libritts_cuts_{split}.jsonl.gz")
        assert len(cuts) == count
        for cut in cuts:
            d = cut_durations(cut)
            assert len(d) == len(cut_phonemes(cut)) and min(d) >= 1
            assert sum(d) == load_codes(cut).shape[0]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert ".train.done exists, skipping the training" in again.stdout
