"""Prosody from a reference recording (issues 11, 12): durations (and RALL-E pitch tokens) per
target phoneme from the aligner, through the Synthesizer and valle-infer.

The aligner is a tiny random one saved as ``aligner.pt`` (a random network still gives a valid
alignment: >= 1 frame each, summing to the frames); where the exact durations matter its frame
scores are replaced by made-up ones whose best monotonic path is known.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from valle.align import AcousticModel, Aligner, FeatureConfig, ModelConfig, save_aligner
from valle.data.prosody import PitchQuantizer
from valle.inference import SynthesisJob, Synthesizer
from valle.inference.reference import (
    AlignerMismatchError,
    ReferenceTooShortError,
    load_aligner_for,
    reference_prosody,
)
from valle.testing.codec import synthetic_waves, tiny_mel_rvq_codec
from valle.testing.model import tiny_model
from valle.text import SymbolTable, tokenize_text

SR = 16000  # the tiny mel-RVQ codec's rate; 80 Hz frames, hop 200
HOP = 200
SENTENCES = ["The quick brown fox.", "She sells sea shells.", "Hello world."]
TEXT = SENTENCES[1]  # 16 phonemes, no two neighbours alike
PROMPT_TEXT = SENTENCES[0]
ZERO_WEIGHTS = ("phone_weight=0", "silence_weight=0", "separator_cost=0")  # base scores only


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("reference")
    symbols = SymbolTable.build([tokenize_text(s, "en") for s in SENTENCES])
    codec = tiny_mel_rvq_codec(num_codebooks=4, codebook_size=16)
    path = _save_aligner(root / "aligner.pt", symbols.symbols)
    prompt = synthetic_waves([SR], SR, seed=3)[0].numpy()
    return root, symbols, codec, path, prompt


def _save_aligner(path: Path, symbols, frame_rate: float = 80.0) -> Path:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AcousticModel(16, len(symbols), ModelConfig(channels=8, dilations=(1,))).eval()
    return save_aligner(path, model, FeatureConfig(frame_rate=frame_rate, n_mels=16), symbols)


def _scripted(aligner: Aligner, phonemes: list[str], durations: list[int]) -> None:
    """Make ``aligner`` score frame t 0 for the class of the phoneme the frame belongs to under
    ``durations`` and -10 for every other class: that segmentation is the best path. Audio of
    another length (a prompt the synthesizer aligns too) keeps the aligner's own scores."""
    ids = [aligner.index[p] for p in phonemes]
    owner = np.repeat(ids, durations)  # (T,)
    V = len(aligner.symbols)
    own = aligner.frame_scores

    def frame_scores(feats):
        if feats.shape[0] != len(owner):
            return own(feats)
        s = np.full((len(owner), V), -10.0)
        s[np.arange(len(owner)), owner] = 0.0
        return s, s

    aligner.frame_scores = frame_scores  # type: ignore[method-assign]


def _composition(total: int, parts: int, seed: int) -> list[int]:
    g = np.random.default_rng(seed)
    cuts = np.sort(g.choice(np.arange(1, total), parts - 1, replace=False))
    return np.diff(np.concatenate([[0], cuts, [total]])).tolist()


def _tone(hz: float, n: int) -> np.ndarray:
    t = np.arange(n) / SR
    return sum(0.3 / k * np.sin(2 * math.pi * k * hz * t) for k in range(1, 4)).astype(np.float32)


# --------------------------------------------------------------------------- the module


def test_reference_durations_one_per_phoneme_summing_to_the_codec_frames(kit) -> None:
    _, symbols, codec, path, _ = kit
    phonemes = tokenize_text(TEXT, "en")
    wave = synthetic_waves([int(1.3 * SR)], SR, seed=5)[0]
    aligner = load_aligner_for(path, symbols, codec)
    ref = reference_prosody(wave, phonemes, codec, aligner)
    (codes,) = codec.encode([wave])
    assert ref.frames == codes.shape[0] == math.ceil(1.3 * SR / HOP)
    assert ref.durations.shape == (len(phonemes),) and ref.phonemes == tuple(phonemes)
    assert int(ref.durations.sum()) == ref.frames and int(ref.durations.min()) >= 1
    assert ref.pitch is None


def test_reference_durations_are_the_aligners_best_path(kit) -> None:
    _, symbols, codec, path, _ = kit
    phonemes = tokenize_text(TEXT, "en")
    want = _composition(80, len(phonemes), seed=1)  # 1 s: 80 frames
    aligner = Aligner(path, settings=ZERO_WEIGHTS)
    _scripted(aligner, phonemes, want)
    ref = reference_prosody(synthetic_waves([SR], SR, seed=2)[0], phonemes, codec, aligner)
    assert ref.durations.tolist() == want


def test_reference_pitch_tokens_are_the_quantised_mean_f0_of_each_phoneme(kit) -> None:
    """A 150 Hz tone, 200 ms of silence, a 275 Hz tone; the scripted alignment puts phonemes
    0-6 on the first tone, the word boundary 7 inside the silence, 8-15 on the second tone."""
    _, symbols, codec, path, _ = kit
    phonemes = tokenize_text(TEXT, "en")
    assert phonemes[7] == "_"
    wave = np.concatenate([_tone(150, 40 * HOP), np.zeros(16 * HOP, np.float32),
                           _tone(275, 40 * HOP)])  # fmt: skip
    # phonemes 6 and 8 take the silence's first and last frame (Praat voices them: its
    # window straddles the tone), the boundary the 14 frames between
    durations = [6, 5, 6, 5, 6, 6, 7, 14, 7, 5, 5, 5, 5, 5, 5, 4]
    assert sum(durations[:7]) == 41 and sum(durations[8:]) == 41
    aligner = Aligner(path, settings=ZERO_WEIGHTS)
    _scripted(aligner, phonemes, durations)
    q = PitchQuantizer(num_buckets=8)
    ref = reference_prosody(wave, phonemes, codec, aligner, pitch=q)
    low, high = int(q(np.array(150.0))), int(q(np.array(275.0)))
    assert 0 < low < high
    assert ref.pitch.tolist() == [low] * 7 + [0] + [high] * 8


def test_reference_is_resampled_like_a_prompt(kit) -> None:
    """Samples at 8 kHz (said so) are resampled to the codec's 16 kHz: 1 s is 80 frames; the
    same samples taken for 16 kHz ones are 0.5 s, 40 frames."""
    _, symbols, codec, path, _ = kit
    phonemes = tokenize_text(TEXT, "en")
    aligner = load_aligner_for(path, symbols, codec)
    wave = synthetic_waves([8000], 8000, seed=4)[0].numpy()
    assert reference_prosody(wave, phonemes, codec, aligner, source_rate=8000).frames == 80
    assert reference_prosody(wave, phonemes, codec, aligner).frames == 40
    stereo = np.stack([wave, wave])  # (C, N) mixed down
    assert reference_prosody(stereo, phonemes, codec, aligner, source_rate=8000).frames == 80
    with pytest.raises(ValueError, match=r"look like \(N, C\)"):
        reference_prosody(stereo.T, phonemes, codec, aligner, source_rate=8000)


def test_reference_errors(kit, tmp_path) -> None:
    _, symbols, codec, path, _ = kit
    phonemes = tokenize_text(TEXT, "en")
    aligner = load_aligner_for(path, symbols, codec)
    short = synthetic_waves([10 * HOP], SR, seed=1)[0]  # 10 frames for 16 phonemes
    with pytest.raises(ReferenceTooShortError, match="16 phonemes"):
        reference_prosody(short, phonemes, codec, aligner)
    with pytest.raises(ValueError, match="no phonemes"):
        reference_prosody(short, [], codec, aligner)
    with pytest.raises(ValueError, match="empty"):
        reference_prosody(np.zeros(0, np.float32), phonemes, codec, aligner)
    with pytest.raises(FileNotFoundError, match="reference recording"):
        reference_prosody(tmp_path / "missing.wav", phonemes, codec, aligner)
    with pytest.raises(AlignerMismatchError, match="no class"):
        reference_prosody(short, ["ʒ"], codec, aligner)
    other = SymbolTable.build([tokenize_text("Hello world.", "en")])
    bad = _save_aligner(tmp_path / "other.pt", other.symbols)
    with pytest.raises(AlignerMismatchError, match="first differ"):
        load_aligner_for(bad, symbols, codec)
    slow = _save_aligner(tmp_path / "slow.pt", symbols.symbols, frame_rate=50.0)
    with pytest.raises(AlignerMismatchError, match="50 Hz"):
        load_aligner_for(slow, symbols, codec)
    with pytest.raises(FileNotFoundError, match="--align true"):
        load_aligner_for(tmp_path / "none.pt", symbols, codec)


# --------------------------------------------------------------------------- the Synthesizer


def _vallr(symbols, overrides=()):
    # a random pointer still ends (at most 2 frames a phoneme) when nothing is forced
    return tiny_model(seed=1, variant="vallr", text_vocab_size=len(symbols),
                      overrides=["ar.head.max_frames=2", *overrides]).eval()  # fmt: skip


def _melle_aligned(symbols):
    """A tiny frame-aligned MELLE on 16 kHz mels with hop 200 (the aligner's 80 Hz frames)."""
    import dataclasses

    from valle.ar.frame_alignment import FrameTrackConfig
    from valle.ar.stops import DurationStopConfig
    from valle.modules.duration_predictor import DurationPredictorConfig
    from valle.testing.model import tiny_config

    mel = ["mel.sample_rate=16000", "mel.n_fft=512", "mel.win_length=400", "mel.hop_length=200"]
    cfg = tiny_config("melle", reduction=1, text_vocab_size=len(symbols), overrides=mel)
    cfg = dataclasses.replace(
        cfg,
        ar=dataclasses.replace(cfg.ar, stop=DurationStopConfig()),
        alignment=FrameTrackConfig(lookahead_layers=1, lookahead_kernel=3),
        durations=DurationPredictorConfig(channels=8, layers=1),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return cfg.build().eval()


def _spy(model, name: str) -> list[tuple[dict, object]]:
    """Record the arguments (by name) and results of ``model.<name>`` (a generate with
    extras)."""
    calls: list[tuple[dict, object]] = []
    original = getattr(model, name)

    @functools.wraps(original)  # its signature stays readable (the Synthesizer reads it)
    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append((inspect.signature(original).bind(*args, **kwargs).arguments, out))
        return out

    setattr(model, name, spy)
    return calls


@pytest.mark.parametrize("rate", [1, 2])
def test_vallr_follows_the_reference_alignment_exactly(kit, rate: int) -> None:
    """The pointer follows the reference's durations: the continuation has exactly sum(d)
    frames (hence sum(d) * hop samples), each target phoneme its d frames (at rate 1; at
    rate 2 the AR steps windows of 2 frames and phonemes move to window edges); speed 0.5
    doubles each."""
    _, symbols, codec, path, prompt = kit
    layout = ["ar.layout.kind=merged_first_codebook", f"ar.layout.rate={rate}"]
    model = _vallr(symbols, layout if rate > 1 else ())
    calls = _spy(model, "generate_aligned")
    phonemes = tokenize_text(TEXT, "en")
    want = _composition(72, len(phonemes), seed=7)
    for speed, scale in ((None, 1), (0.5, 2)):
        aligner = Aligner(path, settings=ZERO_WEIGHTS)
        _scripted(aligner, phonemes, want)
        synth = Synthesizer(model, symbols, codec, aligner=aligner, speed=speed)
        reference = synthetic_waves([72 * HOP], SR, seed=9)[0].numpy()
        wave, sr = synth.synthesize(TEXT, prompt, PROMPT_TEXT, reference_wav=reference,
                                    reference_sample_rate=SR)  # fmt: skip
        kwargs, (codes, aligns) = calls[-1]
        start = int(kwargs["prompt_text_lens"][0])
        forced = kwargs["durations"][0]
        assert forced[start : start + len(phonemes)].tolist() == want
        assert int(forced.sum()) == 72  # nothing outside the target text
        assert codes[0].shape[0] == scale * 72 and len(wave) == scale * 72 * HOP
        counts = torch.bincount(aligns[0], minlength=start + len(phonemes))[start:]
        if rate == 1:
            assert counts.tolist() == [scale * d for d in want]
        else:
            assert (counts >= 1).all()  # every phoneme spoken, none skipped


def test_ralle_gets_the_references_pitch_and_durations(kit) -> None:
    _, symbols, codec, path, prompt = kit
    model = tiny_model(seed=1, variant="ralle", text_vocab_size=len(symbols)).eval()
    calls = _spy(model, "generate_with_prosody")
    synth = Synthesizer(model, symbols, codec, aligner=path, max_len_ratio=1.0)
    wave = np.concatenate([_tone(140, 50 * HOP), _tone(260, 50 * HOP)])
    ref = synth.reference_prosody(wave, TEXT, "en", sample_rate=SR)
    assert ref.pitch is not None and ref.pitch.shape == ref.durations.shape == (16,)
    assert len(set(ref.pitch.tolist())) > 1  # two tones: not one bucket everywhere
    out, _ = synth.synthesize(TEXT, prompt, PROMPT_TEXT, reference_wav=wave,
                              reference_sample_rate=SR)  # fmt: skip
    kwargs, (codes, prosody) = calls[-1]
    start = int(kwargs["prompt_text_lens"][0])
    n = start + len(ref.phonemes)
    assert kwargs["pitch"][0, start:n].tolist() == ref.pitch.tolist()
    assert (kwargs["pitch"][0, :start] == -1).all()  # the prompt's: left to the model
    assert prosody.pitch[0, start:n].tolist() == ref.pitch.tolist()  # the CoT took them
    assert prosody.frames[0, start:n].tolist() == ref.durations.tolist()
    # the bound was raised to fit the reference's 100 frames (1.0 frame a token would cut it)
    assert kwargs["max_len_ratio"] * int(kwargs["text_lens"][0]) >= ref.frames
    assert codes[0].shape[0] == ref.frames and len(out) == ref.frames * HOP


def test_long_text_chunks_take_the_durations_of_their_own_phonemes(kit) -> None:
    _, symbols, codec, path, prompt = kit
    model = _vallr(symbols)
    calls = _spy(model, "generate_aligned")
    text = "Hello world. She sells sea shells."
    phonemes = tokenize_text(text, "en")
    T = 2 * len(phonemes) + 9
    want = _composition(T, len(phonemes), seed=3)
    aligner = Aligner(path, settings=ZERO_WEIGHTS)
    _scripted(aligner, phonemes, want)
    synth = Synthesizer(model, symbols, codec, aligner=aligner, max_text_tokens=12,
                        chunk_pause=0.0)  # fmt: skip
    reference = synthetic_waves([T * HOP], SR, seed=2)[0].numpy()
    wave, _ = synth.synthesize(text, prompt, PROMPT_TEXT, reference_wav=reference,
                               reference_sample_rate=SR)  # fmt: skip
    rows = [(kw, codes[b], b) for kw, (codes, _) in calls for b in range(len(codes))]
    assert len(rows) > 1  # chunked (one row per generate call: batch_size 1)
    kept, pos = [], 0  # the chunks' phonemes are the text's in order, some "_" dropped
    for kw, codes, b in rows:
        start, end = int(kw["prompt_text_lens"][b]), int(kw["text_lens"][b])
        chunk = symbols.decode(kw["text_tokens"][b, start:end].tolist())
        for j, tok in enumerate(chunk):
            while phonemes[pos] != tok:
                assert phonemes[pos] == "_"
                pos += 1
            assert int(kw["durations"][b, start + j]) == want[pos]
            kept.append(pos)
            pos += 1
        assert codes.shape[0] == int(kw["durations"][b].sum())
    assert pos == len(phonemes)
    dropped = sum(want[i] for i in range(len(phonemes)) if i not in kept)
    assert len(wave) == (T - dropped) * HOP


@pytest.mark.parametrize("variant", ["vallr", "melle_aligned"])
def test_prompt_is_aligned_when_the_model_reads_prompt_durations(kit, variant: str) -> None:
    """With an aligner, a model whose generate takes prompt_durations gets the aligner's frames
    per prompt-transcript token (its word boundary included), 0 elsewhere; without one it gets
    none (the model splits the prompt uniformly)."""
    _, symbols, codec, path, prompt = kit
    if variant == "vallr":
        model, name = _vallr(symbols), "generate_aligned"
    else:
        model, name = _melle_aligned(symbols), "generate"
    calls = _spy(model, name)
    if variant != "vallr":  # a mel model: its own wave maker stands in the codec's place
        from valle.codec.vocoder import MelWaveMaker

        codec = MelWaveMaker(model.wave_maker())
    plain = Synthesizer(model, symbols, codec)
    aligner = Aligner(path, settings=ZERO_WEIGHTS)
    synth = Synthesizer(model, symbols, codec, aligner=aligner)
    ids = synth.text_ids(TEXT, PROMPT_TEXT)
    n = len(ids) - len(tokenize_text(TEXT, "en"))
    head = symbols.decode(ids[:n])
    assert head[-1] == "_" and len(head) == len(tokenize_text(PROMPT_TEXT, "en")) + 1
    (codes,) = synth.codec.encode([torch.from_numpy(prompt)])
    want = _composition(codes.shape[0], n, seed=4)
    _scripted(aligner, head, want)
    plain.synthesize(TEXT, prompt, PROMPT_TEXT, prompt_sample_rate=SR, seed=0)
    assert "prompt_durations" not in calls[-1][0]
    synth.synthesize(TEXT, prompt, PROMPT_TEXT, prompt_sample_rate=SR, seed=0)
    got = calls[-1][0]["prompt_durations"]
    assert got.shape == calls[-1][0]["text_tokens"].shape
    assert got[0, :n].tolist() == want and int(got[0, n:].abs().sum()) == 0
    # the frames the synthesizer already counted, or counted again: the same alignment
    assert synth.prompt_durations(prompt, PROMPT_TEXT, head, SR, codes.shape[0]) == want
    assert synth.prompt_durations(prompt, PROMPT_TEXT, head, SR) == want


def test_jobs_with_and_without_a_reference_share_a_batch(kit) -> None:
    _, symbols, codec, path, prompt = kit
    model = _vallr(symbols)
    calls = _spy(model, "generate_aligned")
    synth = Synthesizer(model, symbols, codec, aligner=path)
    reference = synthetic_waves([60 * HOP], SR, seed=2)[0].numpy()
    jobs = [
        SynthesisJob(TEXT, prompt, PROMPT_TEXT, prompt_sample_rate=SR),
        SynthesisJob(
            TEXT,
            prompt,
            PROMPT_TEXT,
            prompt_sample_rate=SR,
            reference_wav=reference,
            reference_sample_rate=SR,
        ),
    ]
    (free, _), (forced, _) = synth.synthesize_batch(jobs)
    assert len(forced) == 60 * HOP and len(free) > 0
    assert [k.get("durations") is None for k, _ in calls] == [False, True]  # apart


def test_synthesizer_reference_errors(kit, tmp_path) -> None:
    _, symbols, codec, path, prompt = kit
    valle = tiny_model(seed=1, variant="valle", text_vocab_size=len(symbols))
    with pytest.raises(ValueError, match="prosody control"):
        Synthesizer(valle, symbols, codec, aligner=path)
    plain = Synthesizer(valle, symbols, codec)
    with pytest.raises(ValueError, match="prosody control"):
        plain.synthesize(TEXT, prompt, PROMPT_TEXT, prompt_sample_rate=SR,
                         reference_wav=prompt)  # fmt: skip
    synth = Synthesizer(_vallr(symbols), symbols, codec)
    with pytest.raises(ValueError, match="needs the aligner"):
        synth.synthesize(TEXT, prompt, PROMPT_TEXT, prompt_sample_rate=SR, reference_wav=prompt)
    synth = Synthesizer(_vallr(symbols), symbols, codec, aligner=path)
    with pytest.raises(ValueError, match="empty"):
        synth.synthesize("  ", prompt, PROMPT_TEXT, prompt_sample_rate=SR, reference_wav=prompt)
    with pytest.raises(ReferenceTooShortError):
        synth.synthesize(TEXT, prompt, PROMPT_TEXT, prompt_sample_rate=SR,
                         reference_wav=prompt[: 5 * HOP], reference_sample_rate=SR)  # fmt: skip
    other = SymbolTable.build([tokenize_text("Hello world.", "en")])
    with pytest.raises(AlignerMismatchError):
        Synthesizer(_vallr(symbols), symbols, codec,
                    aligner=_save_aligner(tmp_path / "a.pt", other.symbols))  # fmt: skip


# --------------------------------------------------------------------------- valle-infer


def test_valle_infer_reference_wav_and_jobs(kit, tmp_path, capsys) -> None:
    from valle.bin.infer import main
    from valle.config import to_dict
    from valle.train.checkpoint import save_inference_checkpoint

    _, symbols, codec, path, prompt = kit
    model = _vallr(symbols)
    tokens = tmp_path / "tokens.txt"
    symbols.to_file(tokens)
    codec_dir = tmp_path / "codec"
    codec.save(codec_dir)
    ckpt = save_inference_checkpoint(tmp_path / "model.pt", model.state_dict(),
                                     {"model": to_dict(model.config)}, step=1)  # fmt: skip
    prompt_wav, ref_wav = tmp_path / "prompt.wav", tmp_path / "ref.wav"
    sf.write(prompt_wav, prompt, SR)
    sf.write(ref_wav, synthetic_waves([int(0.8 * 22050)], 22050, seed=4)[0].numpy(), 22050)
    frames = math.ceil(0.8 * SR / HOP)  # resampled to the codec's 16 kHz
    base = ["--checkpoint", str(ckpt), "--tokens", str(tokens), "--codec-dir", str(codec_dir)]
    one = [*base, "--text", TEXT, "--prompt-wav", str(prompt_wav), "--prompt-text", PROMPT_TEXT]
    out = tmp_path / "out.wav"
    rc = main([*one, "--out", str(out), "--reference-wav", str(ref_wav), "--aligner", str(path)])
    assert rc == 0
    assert sf.info(out).frames == frames * HOP
    rc = main([*one, "--out", str(out), "--reference-wav", str(ref_wav)])
    assert rc == 2 and "needs --aligner" in capsys.readouterr().err
    jobs = tmp_path / "jobs.jsonl"
    lines = [
        {"id": "a", "text": TEXT, "prompt_wav": "prompt.wav", "prompt_text": PROMPT_TEXT,
         "reference_wav": "ref.wav"},
        {"id": "b", "text": TEXT, "prompt_wav": "prompt.wav", "prompt_text": PROMPT_TEXT},
        {"id": "c", "text": TEXT, "prompt_wav": "prompt.wav", "prompt_text": PROMPT_TEXT,
         "reference_wav": "nowhere.wav"},
    ]  # fmt: skip
    jobs.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out_dir = tmp_path / "dec"
    rc = main([*base, "--jobs", str(jobs), "--out-dir", str(out_dir), "--aligner", str(path)])
    err = capsys.readouterr().err
    assert rc == 1 and "reference recording nowhere.wav not found" in err
    assert sf.info(out_dir / "a.wav").frames == frames * HOP
    assert (out_dir / "b.wav").is_file() and not (out_dir / "c.wav").exists()
    rc = main([*base, "--jobs", str(jobs), "--out-dir", str(out_dir)])
    assert rc == 2 and "need --aligner" in capsys.readouterr().err
    rc = main([*base, "--jobs", str(jobs), "--out-dir", str(out_dir), "--reference-wav",
               str(ref_wav), "--aligner", str(path)])  # fmt: skip
    assert rc == 2 and 'each job its "reference_wav"' in capsys.readouterr().err
    rc = main([*one, "--out", str(out), "--reference-wav", str(ref_wav), "--aligner",
               str(tmp_path / "no_aligner.pt")])  # fmt: skip
    assert rc == 2 and "--align true" in capsys.readouterr().err
    valle_ckpt = save_inference_checkpoint(
        tmp_path / "valle.pt", tiny_model(seed=1, text_vocab_size=len(symbols)).state_dict(),
        {"model": to_dict(tiny_model(text_vocab_size=len(symbols)).config)}, step=1,
    )  # fmt: skip
    rc = main(["--checkpoint", str(valle_ckpt), *base[2:], *one[len(base):], "--out", str(out),
               "--reference-wav", str(ref_wav), "--aligner", str(path)])  # fmt: skip
    assert rc == 2 and "prosody control" in capsys.readouterr().err
    help_text = capsys.readouterr
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--reference-wav" in help_text().out
