"""Codec resynthesis with a tiny random EnCodec, library and ``valle-bench resynth``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from valle.eval.audio import load_wave
from valle.eval.resynth import resynthesize


@pytest.fixture(scope="module")
def tiny_codec():
    from valle.testing.codec import tiny_encodec_codec

    return tiny_encodec_codec(num_codebooks=4)


def test_resynthesize_lengths_rates_and_codebooks(tiny_codec):
    rng = np.random.default_rng(0)
    waves = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (4000, 2500)]
    out = resynthesize(tiny_codec, waves, 8000)  # resampled to the codec's 16 kHz
    assert [len(w) for w in out] == [8000, 5000] and all(w.dtype == np.float32 for w in out)
    assert all(np.isfinite(w).all() for w in out)
    fewer = resynthesize(tiny_codec, waves, 8000, num_codebooks=1)
    assert not np.allclose(out[0], fewer[0]), "dropping codebooks must change the decoded wave"
    with pytest.raises(ValueError, match="num_codebooks"):
        resynthesize(tiny_codec, waves, 8000, num_codebooks=9)


def test_bench_resynth_writes_targets_and_prompts(tiny_codec, flite_corpus, tmp_path):
    from valle.bin import bench

    cuts_path, _ = flite_corpus
    codec_dir = tmp_path / "codec"
    tiny_codec.model.save_pretrained(codec_dir)
    lst = tmp_path / "cont.jsonl"
    assert (
        bench.main(
            [
                "protocol",
                "--cuts",
                str(cuts_path),
                "--setting",
                "cont",
                "--max-items",
                "2",
                "--out",
                str(lst),
            ]
        )
        == 0
    )
    out = tmp_path / "codec_out"
    args = [
        "resynth",
        "--cuts",
        str(cuts_path),
        "--list",
        str(lst),
        "--codec-path",
        str(codec_dir),
        "--bandwidth",
        str(tiny_codec.bandwidth),
        "--out-dir",
        str(out),
        "--no-progress",
    ]
    assert bench.main(args) == 0
    items = [json.loads(line) for line in lst.read_text().splitlines()]
    for it in items:
        wave, sr = load_wave(out / f"{it['id']}.wav")
        assert sr == tiny_codec.sample_rate
        assert abs(len(wave) / sr - it["target_duration"]) < 0.01
        prompt, _ = load_wave(out / "prompts" / f"{it['id']}.wav")
        assert len(prompt) == 3 * sr
