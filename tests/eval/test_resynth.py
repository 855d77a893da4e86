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


def test_resynth_cache_serves_the_same_audio_through_the_same_codec(tiny_codec, tmp_path,
                                                                    monkeypatch):  # fmt: skip
    from valle.eval import resynth as resynth_mod
    from valle.eval.resynth_files import ResynthCache, codec_fingerprint, write_resynthesized

    rng = np.random.default_rng(1)
    waves = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (4000, 3000)]
    jobs = lambda d, ws: [(d / f"{k}.wav", w, 8000) for k, w in enumerate(ws)]  # noqa: E731
    cache = ResynthCache(tmp_path / "cache", tiny_codec)
    assert write_resynthesized(tiny_codec, jobs(tmp_path / "a", waves), cache=cache,
                               progress=False) == 2  # fmt: skip
    assert (cache.hits, cache.misses) == (0, 2)
    assert len(list((tmp_path / "cache").glob("*.wav"))) == 2

    # a second decoding of the same audio copies every wave and resynthesizes none
    def no_codec(*a, **k):
        raise AssertionError("a cached wave was resynthesized again")

    again = ResynthCache(tmp_path / "cache", tiny_codec)
    monkeypatch.setattr(resynth_mod, "resynthesize", no_codec)
    write_resynthesized(tiny_codec, jobs(tmp_path / "b", waves), cache=again, progress=False)
    assert (again.hits, again.misses) == (2, 0)
    for k in range(2):
        assert (tmp_path / "a" / f"{k}.wav").read_bytes() == (tmp_path / "b" / f"{k}.wav").read_bytes()
    monkeypatch.undo()

    # other audio, or the same audio through another codec, is never served from the cache
    other = [waves[0] * 0.5]
    write_resynthesized(tiny_codec, jobs(tmp_path / "c", other), cache=again, progress=False)
    assert again.misses == 1
    fewer = ResynthCache(tmp_path / "cache", tiny_codec, num_codebooks=1)
    assert fewer.codec_id != again.codec_id
    assert fewer.key(waves[0], 8000) != again.key(waves[0], 8000)
    assert again.key(waves[0], 8000) != again.key(waves[0], 16000)
    from valle.testing.codec import tiny_encodec_codec

    reseeded = tiny_encodec_codec(num_codebooks=4, seed=1)
    assert codec_fingerprint(reseeded) != again.codec_id, "other weights, same digest"
