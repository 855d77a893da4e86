"""VALL-E R: phoneme-aligned AR, monotonic pointer, aligned NAR, prosody control."""

from __future__ import annotations

import pytest
import torch

from valle.ar.pointer import (
    alignment_to_durations,
    durations_to_alignment,
    prompt_alignment,
    scale_durations,
    uniform_durations,
)
from valle.config import compose_config, load_yaml, save_yaml
from valle.data.featurizers import Durations
from valle.registry import build_model, data_request
from valle.testing.model import batch_from_codes, dummy_batch, tiny_config, tiny_model

L = torch.long


def _model(seed: int = 0, **kwargs):
    return tiny_model(seed=seed, variant="vallr", **kwargs).eval()


def _inputs(batch):
    return (batch["text_tokens"], batch["text_lens"], batch["prompt_codes"], batch["prompt_lens"])


# --------------------------------------------------------------------------- alignments


def test_durations_and_alignment_round_trip() -> None:
    d = torch.tensor([[2, 1, 3, 0], [1, 1, 1, 1]])
    lens = torch.tensor([3, 4])
    align = durations_to_alignment(d, lens, 7)
    assert align.tolist() == [[0, 0, 1, 2, 2, 2, 3], [0, 1, 2, 3, 4, 4, 4]]
    frames = d.sum(-1)
    assert torch.equal(alignment_to_durations(align, frames, 4), d)


def test_uniform_prompt_split_is_the_default() -> None:
    assert uniform_durations(torch.tensor([7, 2, 5]), torch.tensor([3, 2, 0]), 4).tolist() == [
        [2, 2, 3, 0],
        [1, 1, 0, 0],
        [0, 0, 0, 0],
    ]
    align = prompt_alignment(torch.tensor([7, 5]), torch.tensor([3, 0]), 4, 7)
    assert align[0].tolist() == [0, 0, 1, 1, 2, 2, 2]
    assert (align[1] == -1).all()  # no transcript: unaligned


def test_scaled_durations_follow_the_speed() -> None:
    d = torch.tensor([[2, 4, 2, 6]])
    assert scale_durations(d, 0.5).tolist() == [[4, 8, 4, 12]]
    assert scale_durations(d, 2.0).tolist() == [[1, 2, 1, 3]]
    fast = scale_durations(torch.tensor([[1, 1, 1, 1]]), 4.0)
    assert fast.tolist() == [[1, 1, 1, 1]]  # every phoneme keeps a frame
    assert int(scale_durations(torch.tensor([[3, 3, 3]]), 0.8).sum()) == round(9 / 0.8)


# --------------------------------------------------------------------------- data contract


def test_data_request_asks_for_durations_and_missing_ones_are_a_clear_error() -> None:
    cfg = tiny_config("vallr")
    assert any(isinstance(f, Durations) for f in data_request(cfg).featurizers)
    batch = dummy_batch(cfg, batch_size=2)
    assert torch.equal(batch["durations"].sum(-1), batch["audio_lens"])
    model = build_model(cfg)
    no_durations = {k: v for k, v in batch.items() if not k.startswith("durations")}
    with pytest.raises(ValueError, match="aligner stage"):
        model.loss(no_durations)
    bad = dict(batch, durations=batch["durations"] + 1)
    with pytest.raises(ValueError, match="do not sum"):
        model.loss(bad)


def test_preset_composes_and_round_trips(tmp_path) -> None:
    cfg = compose_config("vallr", "tiny", text_vocab_size=12, codebook_size=16, num_codebooks=4)
    assert cfg.ar.head.kind == "pointer" and cfg.ar.stop.kind == "pointer"
    save_yaml(cfg, tmp_path / "m.yaml")
    assert load_yaml(tmp_path / "m.yaml") == cfg
    with pytest.raises(ValueError, match="pointer"):
        tiny_config("vallr", overrides=["ar.stop.kind=eos"])


# --------------------------------------------------------------------------- the pointer


def _check_monotonic(align: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """The frames' phonemes go start..end-1, each step staying or advancing by one."""
    assert int(align[0]) == start and int(align[-1]) == end - 1
    assert set(align.diff().tolist()) <= {0, 1}
    counts = torch.bincount(align - start, minlength=end - start)
    assert len(counts) == end - start and int(counts.min()) >= 1
    return counts


@pytest.mark.parametrize("guard", [(1, 3), (2, 4)])
def test_pointer_never_skips_or_goes_back_and_ends_past_the_last_phoneme(guard) -> None:
    lo, hi = guard
    model = _model(
        seed=3,
        overrides=[
            "ar.head.advance=sample",
            f"ar.head.min_frames={lo}",
            f"ar.head.max_frames={hi}",
        ],
    )
    batch = dummy_batch(tiny_config("vallr"), batch_size=4, seed=7, text_len=(3, 9))
    start = batch["text_lens"] // 2
    for seed in range(3):
        _, aligns = model.generate_aligned(
            *_inputs(batch), prompt_text_lens=start, generator=torch.Generator().manual_seed(seed)
        )
        for a, s, n in zip(aligns, start.tolist(), batch["text_lens"].tolist(), strict=True):
            counts = _check_monotonic(a, s, n)  # ended by the pointer, not the length bound
            assert lo <= int(counts.min()) and int(counts.max()) <= hi


def test_forced_durations_give_the_alignment_and_speed_scales_the_length() -> None:
    model = _model(seed=5)
    batch = dummy_batch(tiny_config("vallr"), batch_size=3, seed=2, text_len=(4, 8))
    start = batch["text_lens"] // 2
    g = torch.Generator().manual_seed(0)
    d = 2 * torch.randint(1, 4, batch["text_tokens"].shape, generator=g)  # even: speed 2 exact
    idx = torch.arange(d.shape[1])
    target = (idx >= start[:, None]) & (idx < batch["text_lens"][:, None])
    want = torch.where(target, d, 0).sum(-1)
    for speed, scale in [(None, 1.0), (1.0, 1.0), (0.5, 2.0), (2.0, 0.5)]:
        codes, aligns = model.generate_aligned(
            *_inputs(batch), prompt_text_lens=start, durations=d, speed=speed
        )
        for b, (c, a) in enumerate(zip(codes, aligns, strict=True)):
            assert c.shape == (int(want[b] * scale), 4)
            counts = _check_monotonic(a, int(start[b]), int(batch["text_lens"][b]))
            assert torch.equal(counts, (d[b][target[b]] * scale).long())


def test_incremental_decoding_equals_teacher_forcing() -> None:
    """The codes drawn with the KV cache, prompt and pointer alignment are the argmax of a
    full teacher-forced pass over [prompt ; generated] with the same alignment."""
    model = _model(seed=2)
    batch = dummy_batch(tiny_config("vallr"), batch_size=2, seed=4, text_len=(4, 8))
    start = batch["text_lens"] // 2
    d = torch.randint(1, 4, batch["text_tokens"].shape, generator=torch.Generator().manual_seed(1))
    codes, aligns = model.generate_aligned(*_inputs(batch), prompt_text_lens=start, durations=d)
    S = batch["text_tokens"].shape[1]
    prompt_d = uniform_durations(batch["prompt_lens"], start, S)
    for b in range(2):
        P, n = int(batch["prompt_lens"][b]), int(batch["text_lens"][b])
        full = torch.cat([batch["prompt_codes"][b, :P], codes[b]])  # (P + N, Q)
        dur = prompt_d[b, :n].clone()
        dur[int(start[b]) :] = torch.bincount(aligns[b], minlength=n)[int(start[b]) :]
        one = batch_from_codes([batch["text_tokens"][b, :n]], [full])
        one["durations"], one["durations_lens"] = dur[None], torch.tensor([n])
        with torch.no_grad():
            out, targets, _ = model.ar.teacher_forced(one)
        assert torch.equal(out[0, P:, :16].argmax(-1), codes[b][:, 0])


def test_nar_reads_the_aligned_phonemes() -> None:
    model = _model(seed=1)
    nar = model.nar
    batch = dummy_batch(tiny_config("vallr"), batch_size=2, seed=3)
    T = batch["audio_codes"].shape[1]
    args = (batch["text_tokens"], batch["text_lens"], batch["prompt_codes"][:, :0])
    args += (batch["prompt_lens"] * 0, batch["audio_codes"], batch["audio_lens"], 1)
    ids = torch.randint(1, 12, (2, T), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = nar(*args, audio_cond=ids)
        b = nar(*args, audio_cond=(ids % 11) + 1)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("policy", ["none", "random_segment", "other_utterance"])
def test_nar_prompt_policies_train_and_generate(policy: str) -> None:
    """Every NAR prompt policy carries the frames' phonemes through its split (another
    utterance's prompt has none) and generates from the AR's alignment."""
    cfg = tiny_config("vallr", prompt=policy)
    model = build_model(cfg)
    batch = dummy_batch(cfg, batch_size=3, seed=9)
    batch["prompt_start"] = torch.tensor([-1, 0, -1])
    loss, metrics = model.loss(batch, stages=("nar",), generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and "nar/acc" in metrics
    out = model.eval().generate(*_inputs(batch), prompt_text_lens=batch["text_lens"] // 2)
    assert all(o.shape[1] == 4 and o.shape[0] >= 1 for o in out)


# --------------------------------------------------------------------------- learning


def test_tiny_model_overfits_and_reproduces_codes_alignment_and_speed() -> None:
    """A tiny VALL-E R learns two utterances with their durations; greedy generation from a
    prompt of their first two phonemes gives the rest of the codes and the true alignment,
    and speed 0.5 on the model's own alignment doubles every phoneme's frames."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    Q, V = 4, 16
    durs = [torch.tensor([2, 2, 3, 2, 4, 3]), torch.tensor([3, 2, 2, 3, 2, 3, 2, 3])]
    texts = [torch.randint(1, 12, (len(d),), generator=g) for d in durs]
    codes = [torch.randint(0, V, (int(d.sum()), Q), generator=g) for d in durs]
    batch = batch_from_codes(texts, codes)
    batch["durations"] = torch.nn.utils.rnn.pad_sequence(durs, batch_first=True)
    batch["durations_lens"] = torch.tensor([len(d) for d in durs])
    model = tiny_model(
        variant="vallr",
        d_model=64,
        ffn_dim=128,
        overrides=["nar.prompt.min_ratio=0.25", "nar.prompt.max_ratio=0.25"],
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def accuracies() -> list[float]:
        model.eval()
        with torch.no_grad():
            _, m = model.ar.loss(batch)
            accs = [float(m["acc"]), float(m["pointer_acc"])]
            accs += [float(model.nar.loss(batch, stage=s)[1]["acc"]) for s in range(1, Q)]
        model.train()
        return accs

    for step in range(500):
        loss, metrics = model.loss(batch, generator=g)
        assert {"ar/code_loss", "ar/pointer_loss", "ar/pointer_acc"} <= set(metrics)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 24 and min(accuracies()) >= 0.99:
            break
    accs = accuracies()
    assert min(accs) >= 0.99, accs

    model.eval()
    m = 2  # prompt = the frames of the first two phonemes (4 and 5 frames: 25 %)
    prompt_lens = [int(d[:m].sum()) for d in durs]
    pb = batch_from_codes(texts, codes, [c[:p] for c, p in zip(codes, prompt_lens, strict=True)])
    prompt_d = batch["durations"].clone()
    prompt_d[:, m:] = 0
    kwargs = dict(prompt_text_lens=torch.tensor([m, m]), prompt_durations=prompt_d)
    out, aligns = model.generate_aligned(*_inputs(pb), **kwargs)
    for o, a, c, d, p in zip(out, aligns, codes, durs, prompt_lens, strict=True):
        assert torch.equal(o, c[p:])
        assert torch.equal(a, torch.arange(m, len(d)).repeat_interleave(d[m:]))
    slow, slow_aligns = model.generate_aligned(*_inputs(pb), speed=0.5, **kwargs)
    for o, a, d in zip(slow, slow_aligns, durs, strict=True):
        assert o.shape[0] == 2 * int(d[m:].sum())
        assert torch.equal(a, torch.arange(m, len(d)).repeat_interleave(2 * d[m:]))


# --------------------------------------------------------------------------- synthesis


def test_synthesis_inputs_durations_and_synthesizer_speed() -> None:
    """``SynthesisInputs.durations`` force the alignment; ``Synthesizer(speed=0.5)`` (the CLI's
    ``--speed``) scales the model's own alignment to twice the frames; a model without
    prosody control refuses ``speed``."""
    from valle.inference import Synthesizer
    from valle.testing.codec import synthetic_waves, tiny_encodec_codec
    from valle.testing.model import generate_from, synthesis_inputs
    from valle.text import SymbolTable, tokenize_text

    cfg = tiny_config("vallr")
    batch = dummy_batch(cfg, batch_size=2, seed=6, text_len=(4, 8))
    inputs = synthesis_inputs(batch)
    d = torch.full_like(batch["text_tokens"], 3)
    model = _model(seed=8)
    forced = generate_from(model, inputs.replace(durations=d))
    want = 3 * (inputs.text_lens - inputs.prompt_text_lens)
    assert [o.shape[0] for o in forced] == want.tolist()

    sentences = ["The quick brown fox.", "She sells sea shells."]
    symbols = SymbolTable.build([tokenize_text(s, "en") for s in sentences])
    codec = tiny_encodec_codec(num_codebooks=4, codebook_size=16)
    model = tiny_model(
        seed=1,
        variant="vallr",
        text_vocab_size=len(symbols),
        overrides=["ar.head.max_frames=2"],  # a random pointer still ends
    )
    prompt = synthetic_waves([codec.sample_rate], codec.sample_rate, seed=3)[0].numpy()
    lengths = []
    for speed in (None, 0.5):
        synth = Synthesizer(model, symbols, codec, speed=speed)
        wave, _ = synth.synthesize(sentences[1], prompt, sentences[0], prompt_sample_rate=16000)
        lengths.append(len(wave))
    assert lengths[1] == 2 * lengths[0] > 0
    with pytest.raises(ValueError, match="prosody control"):
        Synthesizer(tiny_model(variant="valle", text_vocab_size=len(symbols)), symbols, codec,
                    speed=0.5)  # fmt: skip


def test_unaligned_steps_are_a_clear_error() -> None:
    """Code-only AR inputs (a VALL-E caller, e.g. a benchmark) are refused, not misread."""
    ar = _model().ar
    batch = dummy_batch(tiny_config("vallr"), batch_size=2)
    with pytest.raises(ValueError, match=r"\[code, pointer, phoneme id\]"):
        ar(
            batch["text_tokens"],
            batch["text_lens"],
            batch["audio_codes"][..., 0],
            batch["audio_lens"],
        )


def test_forced_durations_draw_no_pointer_move() -> None:
    """With forced durations the move rule is not consulted: a sampled pointer draws nothing,
    so sampled codes match the greedy pointer's draw for draw (the same random stream)."""
    from valle.sampling.factory import SampleConfig
    from valle.testing.model import generate_from, synthesis_inputs

    batch = dummy_batch(tiny_config("vallr"), batch_size=2, seed=6, text_len=(4, 8))
    inputs = synthesis_inputs(batch).replace(durations=torch.full_like(batch["text_tokens"], 2))
    outs = []
    for advance in ("greedy", "sample"):
        model = _model(seed=3, overrides=[f"ar.head.advance={advance}"])
        outs.append(generate_from(model, inputs, sampler=SampleConfig(top_k=8).build(),
                                  generator=torch.Generator().manual_seed(5)))  # fmt: skip
    for greedy, sampled in zip(*outs, strict=True):
        assert torch.equal(greedy, sampled)


def test_the_pointer_check_reads_what_the_components_declare() -> None:
    """check_pointer_config judges the head and stop by what they declare (moves_pointer,
    reads_pointer), so a new head kind that moves the pointer is accepted without being a
    PointerHeadConfig, and a categorical head is refused with its kind named."""
    from dataclasses import dataclass, replace
    from typing import ClassVar

    from valle.ar.heads import CategoricalHeadConfig, HeadConfig
    from valle.ar.pointer import check_pointer_config
    from valle.config import ConfigError

    @dataclass(frozen=True)
    class OtherPointerHead(HeadConfig):
        moves_pointer: ClassVar[bool] = True
        kind: str = "other_pointer"

    ar = tiny_config("vallr").ar
    check_pointer_config(replace(ar, head=OtherPointerHead()))
    with pytest.raises(ConfigError, match="head kind 'categorical'"):
        check_pointer_config(replace(ar, head=CategoricalHeadConfig()))
