from __future__ import annotations

import json

import numpy as np
import pytest
from lhotse import CutSet

from tests.data.factories import FakeCodec, fake_frontend_for
from valle.data.audio import load_cut_audio
from valle.data.codec_info import CodecInfo
from valle.data.tokenize import (
    add_phonemes,
    cut_phonemes,
    drop_unknown_symbols,
    encode_cuts,
    supervision_language,
)


def _encode(cuts, codec, out, **kw):
    info = CodecInfo.from_codec(codec, name="fake", path="/nowhere")
    return encode_cuts(cuts, codec, out, "t", info, progress=False, **kw)


def test_codes_attached_and_loadable(cuts, tmp_path):
    codec = FakeCodec()
    result, stats = _encode(cuts, codec, tmp_path / "tok", chunk_size=4, batch_size=3)
    assert [c.id for c in result] == [c.id for c in cuts]
    assert stats.chunks_total == 3 and stats.chunks_computed == 3
    assert max(codec.batch_sizes) <= 3 and len(codec.batch_sizes) < len(cuts)  # batched calls
    for cut in result:
        codes = cut.load_codes()
        expected = codec.encode([load_cut_audio(cut, codec.sample_rate)])[0].numpy()
        # lhotse's TemporalArray read gives round(duration * frame_rate) frames at most
        assert codes.shape[1] == 2
        assert abs(codes.shape[0] - expected.shape[0]) <= 1
        np.testing.assert_array_equal(codes, expected[: codes.shape[0]])
        assert cut.codes.frame_shift == pytest.approx(1 / 50)
        assert cut.codes.temporal_dim == 0
    # the combined manifest round-trips through disk
    again = CutSet.from_file(tmp_path / "tok" / "t_cuts_codes.jsonl.gz")
    np.testing.assert_array_equal(next(iter(again)).load_codes(), next(iter(result)).load_codes())
    info = json.loads((tmp_path / "tok" / "codec.json").read_text())
    assert info["sample_rate"] == 8000 and info["frame_rate"] == 50.0
    assert info["num_codebooks"] == 2 and info["codebook_size"] == 16 and info["name"] == "fake"
    assert CodecInfo.from_file(tmp_path / "tok" / "codec.json").path == "/nowhere"


def test_resume_after_interruption(cuts, tmp_path):
    out = tmp_path / "tok"
    ref, _ = _encode(cuts, FakeCodec(), tmp_path / "ref", chunk_size=4, batch_size=2)

    crashing = FakeCodec(fail_after=5)  # first chunk (4 cuts) finishes, the second dies
    with pytest.raises(KeyboardInterrupt):
        _encode(cuts, crashing, out, chunk_size=4, batch_size=2)
    done = sorted(p.name for p in (out / "t_codes_chunks").glob("*.jsonl.gz"))
    assert done == ["cuts.00000.jsonl.gz"]
    assert not (out / "t_cuts_codes.jsonl.gz").exists()

    second = FakeCodec()
    result, stats = _encode(cuts, second, out, chunk_size=4, batch_size=2)
    assert stats.chunks_computed == 2
    assert len(second.encoded) == len(cuts) - 4  # the finished chunk was not recomputed
    assert [c.id for c in result] == [c.id for c in ref]
    for a, b in zip(result, ref, strict=True):
        np.testing.assert_array_equal(a.load_codes(), b.load_codes())

    third = FakeCodec()
    _, stats = _encode(cuts, third, out, chunk_size=4, batch_size=2)
    assert stats.chunks_computed == 0 and third.encoded == []


def test_rerun_with_other_cuts_reuses_the_codes_of_unchanged_audio(cuts, tmp_path):
    """Leaving cuts out (e.g. bad audio) or adding some re-encodes only the new ones (it was
    refused, and starting over re-encoded everything)."""
    out = tmp_path / "tok"
    ref, _ = _encode(cuts, FakeCodec(), tmp_path / "ref", chunk_size=4)
    all_cuts = list(cuts)
    _encode(CutSet.from_cuts(all_cuts[:3] + all_cuts[4:8]), FakeCodec(), out, chunk_size=4)
    codec = FakeCodec()
    result, stats = _encode(cuts, codec, out, chunk_size=3)  # cut 3 and 8 are new
    assert len(codec.encoded) == 2 and stats.chunks_computed == 2
    assert [c.id for c in result] == [c.id for c in ref]
    for a, b in zip(result, ref, strict=True):
        np.testing.assert_array_equal(a.load_codes(), b.load_codes())
    again = FakeCodec()
    _, stats = _encode(cuts, again, out, chunk_size=3)
    assert again.encoded == [] and stats.chunks_computed == 0


def test_lossy_storage_refused(cuts, tmp_path):
    with pytest.raises(ValueError, match="lossless"):
        _encode(cuts, FakeCodec(), tmp_path / "tok", storage_type="lilcom_chunky")


def test_bad_codec_output_is_caught(cuts, tmp_path):
    class Broken(FakeCodec):
        def encode(self, wavs):
            return [c + 100 for c in super().encode(wavs)]

    with pytest.raises(RuntimeError, match="leave"):
        _encode(cuts, Broken(), tmp_path / "tok")


def test_phonemes_and_unknown_symbols(cuts):
    from valle.text import SymbolTable

    ph = add_phonemes(cuts, frontend_for=fake_frontend_for, progress=False)
    first = next(iter(ph))
    assert cut_phonemes(first) == [ch for ch in first.supervisions[0].text if ch.isalpha()]
    table = SymbolTable.build(cut_phonemes(c) for c in ph if c.supervisions[0].speaker != "spk2")
    # speaker 2's texts use the same letters as the others: all known; a made-up token is not
    odd = add_phonemes(cuts, frontend_for=lambda lang: lambda t: ["zz_unknown"], progress=False)
    assert len(drop_unknown_symbols(ph, table)) == len(ph)
    assert len(drop_unknown_symbols(odd, table)) == 0


def test_language_names():
    assert supervision_language("English") == "en"
    assert supervision_language(None, default="zh") == "zh"
    with pytest.raises(ValueError, match="unknown supervision language"):
        supervision_language("Klingon")


def test_refitted_codec_at_same_path_is_refused(cuts, tmp_path):
    codec_dir = tmp_path / "codec"
    codec_dir.mkdir()
    (codec_dir / "codebooks.pt").write_bytes(b"first fit")
    codec = FakeCodec()
    info = CodecInfo.from_codec(codec, name="fake", path=codec_dir)
    assert info.fingerprint is not None
    encode_cuts(cuts, codec, tmp_path / "tok", "t", info, progress=False)
    (codec_dir / "codebooks.pt").write_bytes(b"second fit")
    info2 = CodecInfo.from_codec(codec, name="fake", path=codec_dir)
    assert info2.fingerprint != info.fingerprint
    with pytest.raises(RuntimeError, match="different run"):
        encode_cuts(cuts, codec, tmp_path / "tok", "t", info2, progress=False)


# ---------------------------------------------------------------- changed inputs (issue #8.6)


def _with_text(cuts, cut_id, text):
    from lhotse.utils import fastcopy

    out = []
    for c in cuts:
        if c.id == cut_id:
            c = fastcopy(c, supervisions=[fastcopy(c.supervisions[0], text=text)])
        out.append(c)
    return CutSet.from_cuts(out)


def test_fixed_transcript_reaches_the_codes_manifest_without_encoding_again(cuts, tmp_path):
    out = tmp_path / "tok"
    _encode(cuts, FakeCodec(), out, chunk_size=4)
    target = list(cuts)[5].id
    fixed = _with_text(cuts, target, "the fixed transcript")
    codec = FakeCodec()
    result, stats = _encode(fixed, codec, out, chunk_size=4)
    assert stats.chunks_computed == 0 and codec.encoded == []  # the audio did not change
    texts = {c.id: c.supervisions[0].text for c in result}
    assert texts[target] == "the fixed transcript"
    on_disk = CutSet.from_file(out / "t_cuts_codes.jsonl.gz")
    assert {c.id: c.supervisions[0].text for c in on_disk}[target] == "the fixed transcript"


def test_replaced_audio_is_encoded_again(cuts, tmp_path):
    import os

    import soundfile as sf

    out = tmp_path / "tok"
    first, _ = _encode(cuts, FakeCodec(), out, chunk_size=4)
    target = list(cuts)[5]  # chunk 1
    before = {c.id: c for c in first}[target.id].load_codes().copy()
    path = target.recording.sources[0].source
    # same rate and length (so the same recording manifest), other samples: a repaired file
    n = target.recording.num_samples
    sf.write(path, np.linspace(-0.9, 0.9, n).astype(np.float32), target.sampling_rate)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert type(target).from_dict(target.to_dict()).recording == target.recording
    codec = FakeCodec()
    result, stats = _encode(cuts, codec, out, chunk_size=4)
    assert stats.chunks_computed == 1 and len(codec.encoded) == 1  # only that cut
    by_id = {c.id: c for c in result}
    fresh = FakeCodec().encode([load_cut_audio(by_id[target.id], 8000)])[0].numpy()
    got = by_id[target.id].load_codes()
    np.testing.assert_array_equal(got, fresh[: got.shape[0]])
    assert not np.array_equal(got, before)


# ---------------------------------------------------------------- errors name the utterance (#8.8)


class BatchFrontend:
    """Like the English front end: ``batch`` fails naming a text by its index."""

    def __call__(self, text):
        return self.batch([text])[0]

    def batch(self, texts):
        for i, t in enumerate(texts):
            if not any(ch.isalpha() for ch in t):
                raise ValueError(f"text {i} ({t!r}) has nothing pronounceable in it")
        return [[ch for ch in t.lower() if ch.isalpha()] for t in texts]


def test_unpronounceable_transcript_names_the_utterance(cuts):
    ids = [c.id for c in cuts]
    bad = _with_text(_with_text(cuts, ids[6], "... !"), ids[2], "   ")
    with pytest.raises(ValueError) as e:
        add_phonemes(bad, frontend_for=lambda lang: BatchFrontend(), progress=False)
    msg = str(e.value)
    assert f"utterance {ids[6]}" in msg and "'... !'" in msg  # every bad one, by id
    assert f"utterance {ids[2]}" in msg and "empty transcript" in msg
    assert "text 6" not in msg and "text 0" not in msg
    assert "stage 1" in msg  # what to do next


def test_audio_keys_of_other_codes_are_not_trusted(cuts, tmp_path):
    """An interrupted rewrite can leave a chunk's audio.json describing codes that its
    manifest does not point to: those cuts are encoded again rather than trusted."""
    out = tmp_path / "tok"
    _encode(cuts, FakeCodec(), out, chunk_size=4)
    keys_path = out / "t_codes_chunks" / "cuts.00000.audio.json"
    keys = json.loads(keys_path.read_text())
    first = next(iter(keys))
    keys[first][1] = "elsewhere::x"
    keys_path.write_text(json.dumps(keys))
    codec = FakeCodec()
    _, stats = _encode(cuts, codec, out, chunk_size=4)
    assert len(codec.encoded) == 1 and stats.chunks_computed == 1
