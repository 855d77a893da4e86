"""Synthesizer: checkpoint loading, wave length at the codec rate, batch == single, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from valle.inference import (
    CheckpointContentError,
    CodecMismatchError,
    PromptTrim,
    SynthesisJob,
    Synthesizer,
)
from valle.sampling import Greedy
from valle.testing.codec import tiny_encodec_codec
from valle.text import UnknownSymbolError, UnsupportedLanguageError


def never_eos(eos: int):
    """Greedy sampling that can never stop early: every job runs to its length bound."""

    def sampler(logits, history, generator):
        logits = logits.clone()
        logits[:, eos] = -math.inf
        return logits.argmax(-1)

    return sampler


@pytest.fixture(scope="module")
def synth(setup) -> Synthesizer:
    return Synthesizer.from_checkpoint(setup.checkpoint)


def test_from_checkpoint_reads_symbols_and_codec_from_the_checkpoint(setup, synth) -> None:
    assert synth.symbols == setup.symbols
    assert synth.sample_rate == 16000
    assert (synth.codec.num_codebooks, synth.codec.codebook_size) == (4, 16)
    assert not synth.model.training


def test_wave_is_finite_with_the_bound_length_at_the_codec_rate(setup, synth) -> None:
    ar = synth.model.ar
    text, prompt_text = "She sells sea shells.", "The quick brown fox."
    n_text = len(synth.text_ids(text, prompt_text))
    wave, sr = synth.synthesize(text, setup.prompt_wav, prompt_text, sampler=never_eos(ar.eos_id))
    assert sr == 16000 and wave.dtype == np.float32 and wave.ndim == 1
    assert np.isfinite(wave).all() and np.abs(wave).max() > 0
    frames = math.ceil(1.5 * n_text)  # max_len_ratio 1.5 of the whole text (prompt + target)
    hop = round(sr / synth.codec.frame_rate)
    assert len(wave) == frames * hop


def test_text_is_prompt_then_boundary_then_target(synth) -> None:
    ids = synth.text_ids("lazy dog", "quick fox")
    from valle.text import tokenize_text

    want = tokenize_text("quick fox", "en") + ["_"] + tokenize_text("lazy dog", "en")
    assert synth.symbols.decode(ids) == want


def test_batch_equals_single_under_greedy(setup, synth) -> None:
    rng = np.random.default_rng(0)
    sr = 16000
    jobs = [
        SynthesisJob("The lazy dog.", setup.prompt_wav, "She sells sea shells."),
        SynthesisJob(
            "Hello world, this is a test.",
            (0.1 * rng.standard_normal(int(0.7 * sr))).astype(np.float32),
            "The quick brown fox.",
            prompt_sample_rate=sr,
        ),
        SynthesisJob("Sea shells.", setup.prompt_wav, "Hello.", prompt_language="en"),
    ]
    sampler = never_eos(synth.model.ar.eos_id)
    batched = synth.synthesize_batch(jobs, sampler=sampler)
    assert len({len(w) for w, _ in batched}) > 1  # different lengths in one batch
    for job, (wave, sr_b) in zip(jobs, batched, strict=True):
        single, sr_s = synth.synthesize_batch([job], sampler=sampler)[0]
        assert sr_b == sr_s
        np.testing.assert_allclose(wave, single, atol=1e-5, rtol=0)
    # batch_size splits into several generate calls with the same results
    split = synth.synthesize_batch(jobs, sampler=sampler, batch_size=2)
    for (a, _), (b, _) in zip(batched, split, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_seed_makes_sampling_reproducible(setup, synth) -> None:
    from valle.sampling import build_sampler

    sampler = build_sampler("sample", temperature=1.5)
    args = ("The lazy dog.", setup.prompt_wav, "She sells sea shells.")
    a, _ = synth.synthesize(*args, seed=3, sampler=sampler)
    b, _ = synth.synthesize(*args, seed=3, sampler=sampler)
    np.testing.assert_array_equal(a, b)


def test_errors_empty_text_language_unknown_symbols(setup, synth) -> None:
    with pytest.raises(ValueError, match="empty"):
        synth.synthesize("   ", setup.prompt_wav, "She sells sea shells.")
    with pytest.raises(ValueError, match="prompt transcript is empty"):
        synth.synthesize("The dog.", setup.prompt_wav, "")
    with pytest.raises(UnsupportedLanguageError, match="supported languages"):
        synth.synthesize("The dog.", setup.prompt_wav, "Hello.", language="xx")
    with pytest.raises(UnknownSymbolError) as err:
        synth.synthesize("Measure the azure vision.", setup.prompt_wav, "Hello.")
    assert set(err.value.symbols) == {"ʒ", "ˈæ"}  # every unknown phoneme, each once
    assert "symbol table" in str(err.value)


def test_codec_mismatch_is_a_clear_error(setup) -> None:
    other = tiny_encodec_codec(num_codebooks=2, codebook_size=16)
    with pytest.raises(CodecMismatchError, match="2 codebooks of 16 codes.*4 codebooks of 16"):
        Synthesizer.from_checkpoint(setup.checkpoint, codec=other)


def test_bare_checkpoint_needs_explicit_tokens_and_codec(setup) -> None:
    with pytest.raises(CheckpointContentError, match="tokens.txt"):
        Synthesizer.from_checkpoint(setup.bare_checkpoint)
    with pytest.raises(CheckpointContentError, match="codec"):
        Synthesizer.from_checkpoint(setup.bare_checkpoint, tokens=setup.tokens)
    synth = Synthesizer.from_checkpoint(
        setup.bare_checkpoint, tokens=setup.tokens, codec=setup.codec_dir, sampler=Greedy()
    )
    wave, sr = synth.synthesize("The dog.", setup.prompt_wav, "Hello.")
    assert sr == 16000 and np.isfinite(wave).all()


def test_tokens_of_another_size_are_refused(setup, tmp_path) -> None:
    from valle.text import SymbolTable

    small = SymbolTable(setup.symbols.symbols[:-1])
    with pytest.raises(CheckpointContentError, match="symbols but the model was trained with"):
        Synthesizer.from_checkpoint(setup.checkpoint, tokens=small)


def test_long_prompt_is_trimmed_and_untrimmed_on_request(setup) -> None:
    sr = 16000
    t = np.arange(6 * sr) / sr
    wave = (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    wave[int(2.9 * sr) : int(3.0 * sr)] = 0.0  # a pause near 3 s
    prompt_text = "one two three four five six"
    synth = Synthesizer.from_checkpoint(setup.checkpoint, sampler=Greedy())
    codes, text = synth.prompt_codes(wave, prompt_text, sr)
    frame_rate = synth.codec.frame_rate
    assert abs(codes.shape[0] / frame_rate - 2.95) < 0.05
    assert text == "one two three"
    keep = Synthesizer.from_checkpoint(
        setup.checkpoint, sampler=Greedy(), prompt_trim=PromptTrim(seconds=None)
    )
    codes_all, text_all = keep.prompt_codes(wave, prompt_text, sr)
    assert abs(codes_all.shape[0] / frame_rate - 6.0) < 0.05 and text_all == prompt_text
    assert torch.equal(codes_all[: codes.shape[0] - 2], codes[:-2])  # same audio up to the cut


def test_lightning_checkpoint_loads_the_model_weights(setup, tmp_path) -> None:
    obj = torch.load(setup.checkpoint, weights_only=True)
    lightning = {
        "state_dict": {f"model.{k}": v for k, v in obj["state_dict"].items()},
        "valle_config": obj["valle_config"],
        "global_step": 7,
        "optimizer_states": [],
    }
    path = tmp_path / "step-00000007.ckpt"
    torch.save(lightning, path)
    synth = Synthesizer.from_checkpoint(path, tokens=setup.tokens, codec=setup.codec)
    ref = Synthesizer.from_checkpoint(setup.checkpoint)
    for (name, a), (_, b) in zip(
        synth.model.state_dict().items(), ref.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_codec_spec_pointing_nowhere_says_what_to_pass(setup, tmp_path) -> None:
    from valle.inference import CodecSpecError

    obj = torch.load(setup.checkpoint, weights_only=True)
    obj["codec"] = dict(obj["codec"], path=str(tmp_path / "gone"))
    path = tmp_path / "moved.pt"
    torch.save(obj, path)
    with pytest.raises(CodecSpecError, match="not on this machine.*--codec-dir"):
        Synthesizer.from_checkpoint(path)
    synth = Synthesizer.from_checkpoint(path, codec=setup.codec_dir)  # explicit wins
    assert synth.codec.num_codebooks == 4


def test_changed_codec_files_are_refused(setup, tmp_path) -> None:
    import shutil

    from valle.inference import CodecSpecError

    copy = tmp_path / "codec"
    shutil.copytree(setup.codec_dir, copy)
    obj = torch.load(setup.checkpoint, weights_only=True)
    assert obj["codec"]["fingerprint"]  # recorded by codec_spec
    obj["codec"] = dict(obj["codec"], path=str(copy))
    path = tmp_path / "copied.pt"
    torch.save(obj, path)
    assert Synthesizer.from_checkpoint(path).codec.num_codebooks == 4  # a copy is fine
    (copy / "config.json").write_text((copy / "config.json").read_text() + "\n")
    with pytest.raises(CodecSpecError, match="changed since"):
        Synthesizer.from_checkpoint(path)


def test_model_overrides_change_inference_settings_and_refuse_shape_changes(setup) -> None:
    """``model_overrides`` (decode.py --set) apply to the stored config before the build."""
    synth = Synthesizer.from_checkpoint(setup.checkpoint, model_overrides=["ar.max_len_ratio=3.5"])
    assert synth.model.config.ar.max_len_ratio == 3.5
    assert Synthesizer.from_checkpoint(setup.checkpoint).model.config.ar.max_len_ratio != 3.5
    with pytest.raises(CheckpointContentError, match="change the model's weights.*shape"):
        Synthesizer.from_checkpoint(setup.checkpoint, model_overrides=["ar.backbone.d_model=64"])


def test_a_prompt_file_shared_by_jobs_is_encoded_once(setup, tmp_path, monkeypatch) -> None:
    """``prepare`` keeps a prompt file's codes (the ``--jobs`` case of a few voices); a
    rewritten file or another transcript is encoded again."""
    import os
    import shutil

    import soundfile as sf

    synth = Synthesizer.from_checkpoint(setup.checkpoint)
    encoded: list[int] = []
    encode = synth.codec.encode

    def counting(waves):
        encoded.append(len(waves))
        return encode(waves)

    monkeypatch.setattr(synth.codec, "encode", counting)
    prompt = tmp_path / "voice.wav"
    shutil.copy(setup.prompt_wav, prompt)
    texts = ("The lazy dog.", "Hello world.", "Sea shells.")
    jobs = [SynthesisJob(t, prompt, "She sells sea shells.") for t in texts]
    rows = [synth.prepare(j).rows[0] for j in jobs]
    assert len(encoded) == 1
    fresh = Synthesizer.from_checkpoint(setup.checkpoint).prepare(jobs[0]).rows[0]
    assert all(torch.equal(r.prompt_codes, fresh.prompt_codes) for r in rows)
    synth.prepare(SynthesisJob(texts[0], prompt, "Hello."))  # another transcript
    assert len(encoded) == 2
    wave, sr = sf.read(prompt)
    sf.write(prompt, 0.5 * wave[: len(wave) // 2], sr)  # the same path, other audio
    st = os.stat(prompt)
    os.utime(prompt, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = synth.prepare(jobs[0]).rows[0]
    assert len(encoded) == 3 and again.prompt_codes.shape != rows[0].prompt_codes.shape


def test_synthesis_inputs_of_prepared_rows(setup, synth) -> None:
    """Prepared rows become one right-padded :class:`SynthesisInputs` batch."""
    jobs = [
        SynthesisJob("The lazy dog jumps.", setup.prompt_wav, "Hello."),
        SynthesisJob("Sea shells.", setup.prompt_wav, "The quick brown fox."),
    ]
    rows = [synth.prepare(j).rows[0] for j in jobs]
    x = synth.synthesis_inputs(rows)
    assert x.text_lens.tolist() == [len(r.text_ids) for r in rows]
    assert x.prompt_text_lens.tolist() == [r.prompt_text_len for r in rows]
    assert x.language.tolist() == [0, 0]
    for b, r in enumerate(rows):
        assert x.text_tokens[b, : len(r.text_ids)].tolist() == r.text_ids
        assert not x.text_tokens[b, len(r.text_ids) :].any()
        P = r.prompt_codes.shape[0]
        assert torch.equal(x.prompt_codes[b, :P], r.prompt_codes) and x.prompt_lens[b] == P
