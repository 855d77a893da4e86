from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from lhotse import Recording
from lhotse.cut import MonoCut

from tests.data.factories import write_tone
from valle.data.audio import AudioLoadError, load_audio, load_cut_audio, to_mono_at_rate


def test_stereo_44k_to_mono_24k(tmp_path):
    p = write_tone(tmp_path / "st.wav", 1.5, 44100, 440.0, channels=2)
    x = load_audio(p, 24000)
    assert str(x.dtype) == "torch.float32"
    assert x.ndim == 1
    assert abs(x.shape[0] - int(1.5 * 24000)) <= 2
    # the mono signal is the channel mean, resampled: compare with our own mean + soxr
    data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    ref = to_mono_at_rate(data.T, sr, 24000)
    np.testing.assert_allclose(x.numpy(), ref.numpy(), atol=1e-6)
    # the 440 Hz tone survives resampling: spectral peak at 440 Hz
    spec = np.abs(np.fft.rfft(x.numpy()))
    peak_hz = np.argmax(spec) * 24000 / x.shape[0]
    assert abs(peak_hz - 440.0) < 5


def test_cut_audio_resampled_and_mono(tmp_path):
    p = write_tone(tmp_path / "a.wav", 1.0, 22050, 300.0, channels=2)
    rec = Recording.from_file(p)
    cut = rec.to_cut()
    x = load_cut_audio(cut, 16000)
    assert x.ndim == 1 and abs(x.shape[0] - 16000) <= 2
    assert str(x.dtype) == "torch.float32"


def test_offset_and_duration(tmp_path):
    p = write_tone(tmp_path / "b.wav", 2.0, 16000, 200.0)
    x = load_audio(p, 16000, offset=0.5, duration=1.0)
    full = load_audio(p, 16000)
    np.testing.assert_allclose(x.numpy(), full[8000:24000].numpy(), atol=1e-6)


def test_corrupt_file_error_names_it(tmp_path):
    bad = tmp_path / "corrupt_utt.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(AudioLoadError, match="corrupt_utt.wav"):
        load_audio(bad, 24000)


def test_missing_file_error_names_it(tmp_path):
    with pytest.raises(AudioLoadError, match="nowhere.wav"):
        load_audio(tmp_path / "nowhere.wav", 24000)


def test_corrupt_cut_source_error_names_it(tmp_path):
    good = write_tone(tmp_path / "victim.wav", 1.0, 16000, 200.0)
    rec = Recording.from_file(good)
    good.write_bytes(b"garbage" * 10)  # file corrupted after the manifest was made
    cut = MonoCut(id="c", start=0, duration=1.0, channel=0, recording=rec)
    with pytest.raises(AudioLoadError, match="victim.wav"):
        load_cut_audio(cut, 24000)


def test_check_audio_file_finds_truncated_corrupt_and_empty_files(tmp_path):
    """Issue #8.10: libsndfile (and lhotse) read a truncated wav without a word, returning
    the samples that are there; the header's declared size shows what is missing."""
    from valle.data.audio import check_audio_file

    good = write_tone(tmp_path / "good.wav", 1.0, 16000, 300.0)
    assert check_audio_file(good) is None
    assert check_audio_file(write_tone(tmp_path / "good.flac", 0.5, 16000, 300.0)) is None
    data = good.read_bytes()
    cut = tmp_path / "half.wav"
    cut.write_bytes(data[: len(data) // 2])
    assert sf.info(str(cut)).frames > 0  # readable: nothing else would notice
    problem = check_audio_file(cut)
    assert problem is not None and problem.kind == "truncated"
    assert "declares 16000 samples (1.00 s)" in str(problem)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all" * 10)
    assert check_audio_file(junk).kind == "unreadable"
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, dtype=np.float32), 16000)
    assert check_audio_file(empty).kind == "empty"
    assert check_audio_file(tmp_path / "none.wav").kind == "missing"


def test_check_audio_files_in_threads(tmp_path):
    from valle.data.audio import check_audio_files

    paths = [write_tone(tmp_path / f"{i}.wav", 0.3, 16000, 200.0 + i) for i in range(5)]
    paths[3].write_bytes(paths[3].read_bytes()[:2000])
    found = check_audio_files(paths, num_jobs=2, progress=False)
    assert list(found) == [paths[3]] and found[paths[3]].kind == "truncated"
