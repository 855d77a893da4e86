"""RALL-E (valle/variants/ralle.py): prosody chain of thought, duration-guided mask and stop,
prosody control, ablation switches, and a tiny model that learns."""

from __future__ import annotations

import pytest
import torch

from valle.ar.masks import DurationGuidedMask
from valle.ar.prosody import ProsodyARDecoder, ProsodyTokens, frame_alignment
from valle.ar.stops import DurationStop
from valle.config import ConfigError
from valle.data import batch as B_
from valle.registry import build_model
from valle.testing.model import batch_from_codes, dummy_batch, synthesis_inputs, tiny_config


def _model(seed: int = 0, **kwargs):
    cfg = tiny_config("ralle", **kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(cfg), cfg


def test_loss_logs_each_term_and_the_terms_sum_to_the_loss() -> None:
    model, cfg = _model()
    _, metrics = model.loss(dummy_batch(cfg, batch_size=3), stages=("ar",))
    for k in ("code_loss", "pitch_loss", "duration_loss", "acc", "pitch_acc", "duration_acc"):
        assert f"ar/{k}" in metrics, k
    parts = metrics["ar/code_loss"] + metrics["ar/pitch_loss"] + metrics["ar/duration_loss"]
    assert torch.allclose(parts, metrics["ar/loss"])


def test_a_batch_without_prosody_fields_is_a_clear_error() -> None:
    model, cfg = _model()
    batch = dummy_batch(cfg)
    del batch[B_.PITCH_TOKENS]
    with pytest.raises(ValueError, match="valle.bin.prosody"):
        model.loss(batch, stages=("ar",))


def test_teacher_forcing_aligns_every_audio_input_with_the_frame_it_predicts() -> None:
    model, cfg = _model()
    seen = []

    class Recording(DurationGuidedMask):
        def __call__(self, query, key):
            seen.append(query)
            return super().__call__(query, key)

    model.ar.mask = Recording(1)
    batch = dummy_batch(cfg, batch_size=2, seed=3)
    model.loss(batch, stages=("ar",))
    (pos,) = seen
    S = batch[B_.TEXT_TOKENS].shape[1]
    for b in range(2):
        d = batch[B_.DURATIONS][b, : int(batch[B_.TEXT_LENS][b])].tolist()
        phones = [j for j, n in enumerate(d) for _ in range(n)] + [len(d) - 1]  # + EOS query
        got = pos.align[b, 2 * S : 2 * S + len(phones)].tolist()
        assert got == phones


def _greedy_inputs(seed: int = 1):
    model, cfg = _model(seed)
    model.eval()
    inputs = synthesis_inputs(dummy_batch(cfg, batch_size=3, seed=seed, text_len=(3, 7)))
    return model, cfg, inputs


def test_kv_cached_generation_equals_a_full_teacher_forced_pass() -> None:
    """The codes and prosody drawn step by step (greedy) are the argmax of one full pass
    over [text ; prosody ; prompt + the drawn codes] with the same alignment."""
    model, cfg, inputs = _greedy_inputs()
    ar: ProsodyARDecoder = model.ar
    steps, prosody = ar.generate(
        inputs.text_tokens,
        inputs.text_lens,
        inputs.prompt_codes,
        inputs.prompt_lens,
        prompt_text_lens=inputs.prompt_text_lens,
        max_len_ratio=20.0,
    )
    V = cfg.vocab.codebook_size
    for b in range(inputs.batch_size):
        x = inputs.row(b)
        n = int(x.text_lens[0])
        tok = ProsodyTokens(prosody.pitch[b : b + 1, :n], prosody.duration[b : b + 1, :n], None)
        frames = prosody.frames[b : b + 1, :n]
        p = int(x.prompt_lens[0])
        pt = int(x.prompt_text_lens[0])
        codes = torch.cat([x.prompt_codes[0, :, 0], steps[b]])  # (P + N,)
        audio_in = torch.cat([torch.tensor([ar.layout.bos_id]), codes])[None]  # (1, P + N + 1)
        L = audio_in.shape[1]
        from valle.ar.pointer import prompt_alignment

        p_align = prompt_alignment(x.prompt_lens, x.prompt_text_lens, n, p)
        target = torch.where(torch.arange(n) >= pt, frames, 0)
        align = frame_alignment(p_align, x.prompt_lens, target, x.text_lens, L)
        pos = ar.audio_positions(torch.tensor([L]), L, align=align)
        h_text, h_pros, h_audio = ar.hidden_parts(x.text_tokens, x.text_lens, tok, audio_in, pos)
        # prosody: the state before each phoneme predicts its tokens (target phonemes only)
        states = torch.cat([h_text[:, n - 1 : n], h_pros[:, :-1]], dim=1)
        p_logits, d_logits = ar.prosody_head(states)
        assert torch.equal(p_logits[0, pt:].argmax(-1), prosody.pitch[b, pt:n])
        assert torch.equal(d_logits[0, pt:, 1:].argmax(-1) + 1, prosody.duration[b, pt:n])
        # codes: input k predicts frame k; EOS is masked before D, so the argmax over codes
        logits = ar.head(h_audio)[0, p : p + len(steps[b]), :V]
        assert torch.equal(logits.argmax(-1), steps[b])


def test_generation_stops_at_the_sum_of_the_predicted_durations_and_ignores_eos() -> None:
    model, cfg, inputs = _greedy_inputs(seed=2)
    ar: ProsodyARDecoder = model.ar
    with torch.no_grad():  # the code head now prefers EOS everywhere
        ar.head.bias[ar.layout.eos_id] = 100.0
    codes, prosody = model.generate_with_prosody(
        inputs.text_tokens, inputs.text_lens, inputs.prompt_codes, inputs.prompt_lens,
        prompt_text_lens=inputs.prompt_text_lens, max_len_ratio=50.0,
    )  # fmt: skip
    for b in range(inputs.batch_size):
        pt, n = int(inputs.prompt_text_lens[b]), int(inputs.text_lens[b])
        D = int(prosody.frames[b, pt:n].sum())
        assert D >= n - pt  # every target phoneme lasts >= 1 frame
        assert codes[b].shape[0] == D


def test_the_duration_stop_masks_eos_before_d_and_ends_at_d() -> None:
    from valle.ar.stops import DecodeContext

    stop = DurationStop(eos_id=4)
    d = torch.tensor([[1, 2, 0], [1, 0, 0]])
    state = stop.begin(DecodeContext(torch.tensor([3, 1]), torch.zeros(2), torch.tensor([9, 9]),
                                     {"durations": d}))  # fmt: skip
    out = torch.zeros(2, 5)
    early = stop.prepare(out, 0, state)
    assert torch.isinf(early[:, 4]).all() and (early[:, 4] < 0).all()
    later = stop.prepare(out, 1, state)
    assert torch.isinf(later[0, 4]) and later[1, 4] == 0  # row 1 has D = 1
    eos = torch.tensor([4, 4])
    assert stop(eos, out, 1, state).tolist() == [False, True]
    assert stop(eos, out, 3, state).tolist() == [True, True]


def test_forced_durations_fix_the_length_and_speed_scales_it() -> None:
    model, cfg, inputs = _greedy_inputs(seed=3)
    S = inputs.text_tokens.shape[1]
    durations = torch.full((inputs.batch_size, S), 3)
    kw = dict(prompt_text_lens=inputs.prompt_text_lens, max_len_ratio=50.0)
    args = (inputs.text_tokens, inputs.text_lens, inputs.prompt_codes, inputs.prompt_lens)
    codes, prosody = model.generate_with_prosody(*args, durations=durations, **kw)
    slow, _ = model.generate_with_prosody(*args, durations=durations, speed=0.5, **kw)
    for b in range(inputs.batch_size):
        n_target = int(inputs.text_lens[b] - inputs.prompt_text_lens[b])
        assert codes[b].shape[0] == 3 * n_target
        assert slow[b].shape[0] == 6 * n_target
    own, p_own = model.generate_with_prosody(*args, **kw)
    half, p_half = model.generate_with_prosody(*args, speed=0.5, **kw)
    for b in range(inputs.batch_size):  # the model's own durations, doubled
        pt, n = int(inputs.prompt_text_lens[b]), int(inputs.text_lens[b])
        assert torch.equal(p_half.frames[b, pt:n], 2 * p_own.frames[b, pt:n])
        assert half[b].shape[0] == 2 * own[b].shape[0]
    assert (prosody.duration <= cfg.prosody.max_duration).all()


def test_forced_pitch_is_copied_and_pitch_scale_moves_voiced_tokens() -> None:
    model, cfg, inputs = _greedy_inputs(seed=4)
    S = inputs.text_tokens.shape[1]
    pitch = torch.full((inputs.batch_size, S), 3)
    pitch[:, -1] = -1  # left to the model
    args = (inputs.text_tokens, inputs.text_lens, inputs.prompt_codes, inputs.prompt_lens)
    kw = dict(prompt_text_lens=inputs.prompt_text_lens)
    _, forced = model.generate_with_prosody(*args, pitch=pitch, **kw)
    for b in range(inputs.batch_size):
        pt, n = int(inputs.prompt_text_lens[b]), int(inputs.text_lens[b])
        assert (forced.pitch[b, pt : min(n, S - 1)] == 3).all()
    _, base = model.generate_with_prosody(*args, **kw)
    _, high = model.generate_with_prosody(*args, pitch_scale=2.0, **kw)
    # greedy: the same chain of thought, every voiced target token moved by
    # round(M_p * ln 2 / ln 12) buckets (clipped to M_p), unvoiced ones kept
    shift = round(cfg.prosody.pitch_buckets * 0.6931471805599453 / 2.4849066497880004)
    assert shift > 0
    for b in range(inputs.batch_size):
        pt, n = int(inputs.prompt_text_lens[b]), int(inputs.text_lens[b])
        p0, p1 = base.pitch[b, pt:n], high.pitch[b, pt:n]
        want = torch.where(p0 > 0, (p0 + shift).clamp(max=cfg.prosody.pitch_buckets), p0)
        assert torch.equal(p1, want)
        assert torch.equal(high.pitch[b, :pt], base.pitch[b, :pt])  # the prompt's: untouched


@pytest.mark.parametrize(
    "overrides",
    [
        ["ar.mask.kind=prosody_prefix"],  # without the duration-guided masking
        ["prosody.max_duration=null", "ar.mask.kind=prosody_prefix", "ar.stop.kind=eos"],
        ["prosody=null", "ar.mask.kind=prefix", "ar.stop.kind=eos"],  # no chain of thought
    ],
)
def test_ablation_switches_build_train_and_generate(overrides: list[str]) -> None:
    model, cfg = _model(overrides=overrides)
    loss, metrics = model.loss(dummy_batch(cfg, batch_size=2))
    assert torch.isfinite(loss)
    model.eval()
    inputs = synthesis_inputs(dummy_batch(cfg, batch_size=2, seed=1))
    out = model.generate(inputs.text_tokens, inputs.text_lens, inputs.prompt_codes,
                         inputs.prompt_lens, prompt_text_lens=inputs.prompt_text_lens)  # fmt: skip
    assert len(out) == 2


def test_inconsistent_ablations_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_duration"):
        tiny_config("ralle", overrides=["prosody.max_duration=null"])
    with pytest.raises(ConfigError, match="prosody"):
        tiny_config("ralle", overrides=["ar.mask.kind=prefix"])


def _two_utterances():
    g = torch.Generator().manual_seed(0)
    texts, codes, durs, pitch = [], [], [], []
    for n in (4, 5):
        texts.append(torch.randint(1, 12, (n,), generator=g))
        d = torch.randint(1, 4, (n,), generator=g)
        durs.append(d)
        pitch.append(torch.randint(0, 9, (n,), generator=g))
        codes.append(torch.randint(0, 16, (int(d.sum()), 4), generator=g))
    batch = batch_from_codes(texts, codes)
    batch[B_.DURATIONS], batch["durations_lens"] = B_.pad_rows(durs, 0)
    batch[B_.DURATION_TOKENS], _ = B_.pad_rows(durs, 0)
    batch[B_.PITCH_TOKENS], _ = B_.pad_rows(pitch, 0)
    return batch, texts, codes, durs, pitch


def test_a_tiny_model_learns_prosody_and_codes_of_two_utterances() -> None:
    """Teacher-forced accuracy near 1 on codes, pitch and durations; free-running greedy
    generation then reproduces the durations (hence the length) and the first codebook."""
    torch.manual_seed(0)
    model, cfg = _model(seed=0)
    batch, texts, codes, durs, pitch = _two_utterances()
    opt = torch.optim.Adam(model.ar.parameters(), lr=1e-2)
    for _ in range(80):
        loss, m = model.loss(batch, stages=("ar",))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(m["ar/acc"]) > 0.95
    assert float(m["ar/pitch_acc"]) > 0.95 and float(m["ar/duration_acc"]) > 0.95
    model.eval()
    for t, c, d, p in zip(texts, codes, durs, pitch, strict=True):
        out, prosody = model.generate_with_prosody(
            t[None], torch.tensor([len(t)]), torch.zeros(1, 0, 4, dtype=torch.long),
            torch.tensor([0]), max_len_ratio=10.0,
        )  # fmt: skip
        assert prosody.frames[0].tolist() == d.tolist()
        assert prosody.pitch[0].tolist() == p.tolist()
        assert torch.equal(out[0][:, 0], c[:, 0])


def test_synthesizer_passes_speed_and_pitch_scale_and_other_models_refuse_pitch() -> None:
    """The CLI's ``--speed`` / ``--pitch-scale`` (``Synthesizer(speed=, pitch_scale=)``):
    speed 0.5 doubles every predicted duration, hence the wave; pitch_scale reaches the
    model; a model without pitch tokens refuses it."""
    from valle.inference import Synthesizer
    from valle.testing.codec import synthetic_waves, tiny_mel_rvq_codec
    from valle.testing.model import tiny_model
    from valle.text import SymbolTable, tokenize_text

    sentences = ["The quick brown fox.", "She sells sea shells."]
    symbols = SymbolTable.build([tokenize_text(s, "en") for s in sentences])
    codec = tiny_mel_rvq_codec(num_codebooks=4, codebook_size=16)  # no fitting: fast
    model = tiny_model(seed=1, variant="ralle", text_vocab_size=len(symbols))
    prompt = synthetic_waves([codec.sample_rate], codec.sample_rate, seed=3)[0].numpy()
    seen = {}
    original = model.generate_with_prosody

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    model.generate_with_prosody = spy
    lengths = []
    for speed, pitch_scale in ((None, None), (0.5, 1.5)):
        synth = Synthesizer(
            model, symbols, codec, speed=speed, pitch_scale=pitch_scale, max_len_ratio=50.0
        )
        wave, _ = synth.synthesize(sentences[1], prompt, sentences[0], prompt_sample_rate=16000)
        lengths.append(len(wave))
    assert lengths[1] == 2 * lengths[0] > 0
    assert seen["pitch_scale"] == 1.5 and seen["speed"] == 0.5
    valle = tiny_model(seed=1, variant="valle", text_vocab_size=len(symbols))
    with pytest.raises(ValueError, match="pitch"):
        Synthesizer(valle, symbols, codec, pitch_scale=1.5)


def test_without_prosody_the_components_declared_needs_decide_not_their_classes() -> None:
    """ralle with prosody: null reads what the mask and stop say they need (prosody tokens,
    durations), not their classes: a stop of a new kind that needs neither is taken (the
    config did refuse every stop but EosStopConfig), a mask of a new kind that orders prosody
    positions is refused, and the kinds declare their needs."""
    import dataclasses

    from valle.ar.masks import (
        DurationGuidedMaskConfig,
        MaskConfig,
        PrefixLMMask,
        PrefixMaskConfig,
        ProsodyPrefixMaskConfig,
    )
    from valle.ar.stops import DurationStopConfig, EosStop, EosStopConfig, StopConfig

    @dataclasses.dataclass(frozen=True)
    class FirstEos(StopConfig):  # a stop of a kind ralle never heard of, needing no durations
        kind: str = "first_eos"

        def build(self, layout):
            return EosStop(layout.eos_id)

    @dataclasses.dataclass(frozen=True)
    class ProsodyFirst(MaskConfig):  # a mask of a new kind that needs prosody positions
        reads_prosody = True
        kind: str = "prosody_first"

        def build(self):
            return PrefixLMMask()

    plain = tiny_config("ralle", overrides=["prosody=null", "ar.mask.kind=prefix",
                                            "ar.stop.kind=eos"])  # fmt: skip
    cfg = dataclasses.replace(plain, ar=dataclasses.replace(plain.ar, stop=FirstEos()))
    model = cfg.build()
    assert isinstance(model.ar.stop, EosStop)
    with pytest.raises(ConfigError, match="prosody: null.*mask kind 'prosody_first'"):
        dataclasses.replace(plain, ar=dataclasses.replace(plain.ar, mask=ProsodyFirst()))
    with pytest.raises(ConfigError, match="stop kind 'duration'"):
        dataclasses.replace(plain, ar=dataclasses.replace(plain.ar, stop=DurationStopConfig()))
    assert ProsodyPrefixMaskConfig.reads_prosody and not ProsodyPrefixMaskConfig.reads_durations
    assert DurationGuidedMaskConfig.reads_prosody and DurationGuidedMaskConfig.reads_durations
    assert not PrefixMaskConfig.reads_prosody and not PrefixMaskConfig.reads_durations
    assert DurationStopConfig.reads_durations and not EosStopConfig.reads_durations
