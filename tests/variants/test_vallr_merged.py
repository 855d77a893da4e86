"""VALL-E R on merged codes (Sec 3.1): the phoneme-aligned AR at one step per window of m = 2
frames (``ar.layout.kind=merged_first_codebook``, preset ``vallr_merged``)."""

from __future__ import annotations

import math

import pytest
import torch

from valle.ar.pointer import uniform_durations
from valle.ar.windows import snap_durations, window_durations
from valle.config import compose_config, load_yaml, save_yaml
from valle.testing.model import batch_from_codes, dummy_batch, tiny_config, tiny_model

MERGED = ["ar.layout.kind=merged_first_codebook", "ar.layout.rate=2"]
RATE_ONE = ["ar.layout.kind=merged_first_codebook", "ar.layout.rate=1"]
V, Q = 16, 4


def _model(seed: int = 0, overrides=MERGED):
    return tiny_model(seed=seed, variant="vallr", overrides=overrides).eval()


def _inputs(batch):
    return (batch["text_tokens"], batch["text_lens"], batch["prompt_codes"], batch["prompt_lens"])


def _merge(codes: torch.Tensor, m: int = 2) -> torch.Tensor:
    """Codes (..., T, Q) with codebook 1 made constant on windows of m frames."""
    out = codes.clone()
    T = codes.shape[-2]
    out[..., 0] = codes[..., ::m, 0].repeat_interleave(m, dim=-1)[..., :T]
    return out


def _batch(seed: int = 0, batch_size: int = 3, **kw):
    b = dummy_batch(tiny_config("vallr", overrides=MERGED), batch_size=batch_size, seed=seed,
                    audio_len=(16, 24), **kw)  # fmt: skip
    b["audio_codes"], b["prompt_codes"] = _merge(b["audio_codes"]), _merge(b["prompt_codes"])
    return b


class StepCounter:
    """Counts the AR's drawn steps (one ``head.sample`` per step for the whole batch)."""

    def __init__(self, model) -> None:
        self.n = 0
        head = model.ar.head
        sample = head.sample

        def counting(*args, **kwargs):
            self.n += 1
            return sample(*args, **kwargs)

        head.sample = counting


@pytest.mark.parametrize("frames", [9, 10, 15])
def test_generation_makes_ceil_half_the_steps(frames: int) -> None:
    """Forced durations of F frames: ceil(F / 2) AR steps, F frames out (each step's code twice,
    the last window cut), the pointer's alignment in whole windows."""
    model = _model(seed=1)
    batch = _batch(seed=2, batch_size=1, text_len=(6, 6))
    start = torch.tensor([2])
    d = torch.zeros(1, 6, dtype=torch.long)
    d[0, 2:] = uniform_durations(torch.tensor([frames]), torch.tensor([4]), 4)[0]
    counter = StepCounter(model)
    codes, aligns = model.generate_aligned(*_inputs(batch), prompt_text_lens=start, durations=d)
    assert counter.n == math.ceil(frames / 2)
    assert codes[0].shape == (frames, Q)
    first = codes[0][:, 0]
    assert torch.equal(first[1::2], first[: frames - frames % 2 : 2])  # constant per window
    windows = window_durations(d[:, 2:], torch.tensor([frames]), 2)[0]
    expect = torch.arange(2, 6).repeat_interleave(2 * windows)[:frames]
    assert torch.equal(aligns[0], expect)


def test_free_generation_makes_half_the_steps_of_rate_one() -> None:
    """Without a known length the continuation has 2 frames per step; the length bound (in
    frames) is the same, so a rate-2 AR that runs to it makes half the steps."""
    batch = _batch(seed=3, batch_size=2)
    start = batch["text_lens"] // 2
    counts = {}
    for name, over in [("r1", []), ("r2", MERGED)]:
        model = _model(seed=0, overrides=over + ["ar.head.max_frames=1000"])
        model.ar.head.move.bias.data = torch.tensor([1e3, -1e3])  # never advance: run to the bound
        counter = StepCounter(model)
        codes, _ = model.generate_aligned(*_inputs(batch), prompt_text_lens=start,
                                          max_len_ratio=3.0)  # fmt: skip
        bound = torch.ceil(3.0 * batch["text_lens"].double()).long()
        assert [c.shape[0] for c in codes] == bound.tolist()  # the bound, in frames, both rates
        counts[name] = counter.n
    assert counts["r2"] == math.ceil(counts["r1"] / 2)


def test_prompt_seam_reads_every_prompt_window_once() -> None:
    """The AR's prefill holds [BOS ; codebook 1 at prompt frames 0, 2, 4, ...]: ceil(P / 2)
    steps, a partial last window included; the output is the continuation only."""
    model = _model(seed=2)
    ar = model.ar
    seen = {}
    prefill = ar.prefill

    def recording(text_tokens, text_lens, audio_in, audio_lens, *args, **kwargs):
        seen["audio_in"], seen["lens"] = audio_in.clone(), audio_lens.clone()
        return prefill(text_tokens, text_lens, audio_in, audio_lens, *args, **kwargs)

    ar.prefill = recording
    g = torch.Generator().manual_seed(0)
    prompts = [_merge(torch.randint(0, V, (p, Q), generator=g)) for p in (5, 6, 1)]
    texts = [torch.randint(1, 12, (6,), generator=g) for _ in prompts]
    b = batch_from_codes(texts, prompts, prompts)
    d = torch.full((3, 6), 3)
    start = torch.full((3,), 3)
    out, _ = model.generate_aligned(*_inputs(b), prompt_text_lens=start, durations=d)
    for row, p in enumerate(prompts):
        k = int(seen["lens"][row]) - 1  # prompt steps after BOS
        assert k == math.ceil(len(p) / 2)
        fed = seen["audio_in"][row, 1 : k + 1, 0]  # [code, pointer, phoneme] -> code
        assert torch.equal(fed, p[::2, 0])
        assert torch.equal(ar.layout.from_steps(fed, len(p))[:, 0], p[:, 0])  # each frame once
        assert out[row].shape == (9, Q)  # the continuation only: the forced 3 x 3 frames


def test_incremental_decoding_equals_teacher_forcing() -> None:
    """At rate 2, the codes drawn with the KV cache are the argmax of a teacher-forced pass
    over [prompt ; generated] (even prompts: one merged utterance) with the same windows."""
    model = _model(seed=2)
    g = torch.Generator().manual_seed(4)
    prompts = [_merge(torch.randint(0, V, (p, Q), generator=g)) for p in (4, 6)]
    texts = [torch.randint(1, 12, (n,), generator=g) for n in (6, 8)]
    b = batch_from_codes(texts, prompts, prompts)
    start = b["text_lens"] // 2
    d = torch.randint(1, 5, b["text_tokens"].shape, generator=g)
    codes, aligns = model.generate_aligned(*_inputs(b), prompt_text_lens=start, durations=d)
    S = b["text_tokens"].shape[1]
    prompt_w = uniform_durations(b["prompt_lens"] // 2, start, S)  # the prompt's windows
    for r in range(2):
        P, n, s = int(b["prompt_lens"][r]), int(b["text_lens"][r]), int(start[r])
        full = torch.cat([b["prompt_codes"][r, :P], codes[r]])  # (P + F, Q)
        dur = 2 * prompt_w[r, :n]  # frames whose windows are the prompt's uniform split
        dur[s:] = torch.bincount(aligns[r], minlength=n)[s:]
        one = batch_from_codes([b["text_tokens"][r, :n]], [full])
        one["durations"], one["durations_lens"] = dur[None], torch.tensor([n])
        with torch.no_grad():
            out, targets, _ = model.ar.teacher_forced(one)
        assert out.shape[1] == math.ceil(full.shape[0] / 2)
        assert torch.equal(out[0, P // 2 :, :V].argmax(-1), codes[r][::2, 0])


def test_rate_one_is_the_first_codebook_model() -> None:
    """``merged_first_codebook`` at rate 1 is the default VALL-E R: same parameters, loss and
    generation."""
    a, b = _model(seed=3, overrides=[]), _model(seed=3, overrides=RATE_ONE)
    assert a.state_dict().keys() == b.state_dict().keys()
    b.load_state_dict(a.state_dict())
    batch = dummy_batch(tiny_config("vallr"), batch_size=3, seed=1)
    la, _ = a.loss(batch, generator=torch.Generator().manual_seed(0))
    lb, _ = b.loss(batch, generator=torch.Generator().manual_seed(0))
    assert torch.equal(la, lb)
    start = batch["text_lens"] // 2
    for x, y in zip(a.generate_aligned(*_inputs(batch), prompt_text_lens=start),
                    b.generate_aligned(*_inputs(batch), prompt_text_lens=start), strict=True):  # fmt: skip
        for u, v in zip(x, y, strict=True):
            assert torch.equal(u, v)


def test_training_reads_windows_and_learns_the_pointer() -> None:
    """Loss on merged codes is finite and every parameter gets a gradient; the AR's targets
    are the windows' codes and moves from the windows' durations."""
    model = _model(seed=0).train()
    batch = _batch(seed=5)
    loss, metrics = model.loss(batch, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and "ar/pointer_loss" in metrics
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():
        _, targets, mask = model.ar.teacher_forced(batch)
    lens = batch["audio_lens"]
    assert mask.sum(-1).tolist() == ((lens + 1) // 2).tolist()
    for r in range(lens.shape[0]):
        k = int(mask[r].sum())
        assert torch.equal(targets[r, :k, 0], batch["audio_codes"][r, : int(lens[r]) : 2, 0])
        moves = int(targets[r, :k, 1].sum())  # advances: one per phoneme with frames
        assert moves == int((batch["durations"][r] > 0).sum())


def test_the_nar_trains_on_the_windows_alignment() -> None:
    """At rate 2 the loss reads the durations snapped to windows (what the NAR gets from the
    AR at inference): the raw and the snapped durations give the same loss."""
    model = _model(seed=4).train()
    batch = _batch(seed=6)
    snapped = {**batch, "durations": snap_durations(batch["durations"], batch["audio_lens"], 2)}
    assert not torch.equal(snapped["durations"], batch["durations"])
    a, _ = model.loss(batch, generator=torch.Generator().manual_seed(0))
    b, _ = model.loss(snapped, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_too_many_phonemes_for_the_windows_is_a_clear_error() -> None:
    model = _model(seed=0)
    batch = _batch(seed=0, batch_size=1, text_len=(8, 8))
    batch["audio_codes"] = batch["audio_codes"][:, :8]
    batch["audio_lens"] = torch.tensor([8])
    batch["durations"] = torch.ones(1, 8, dtype=torch.long)
    with pytest.raises(ValueError, match="8 phonemes with frames but only 4 windows"):
        model.loss(batch)


def test_preset_vallr_merged_composes_and_round_trips(tmp_path) -> None:
    cfg = compose_config("vallr_merged", "tiny", text_vocab_size=12, codebook_size=V,
                         num_codebooks=Q)  # fmt: skip
    assert cfg.ar.layout.kind == "merged_first_codebook" and cfg.ar.layout.rate == 2
    plain = compose_config("vallr", "tiny", text_vocab_size=12, codebook_size=V, num_codebooks=Q)
    assert plain.ar.layout.kind == "first_codebook"  # the default data are not merged
    save_yaml(cfg, tmp_path / "m.yaml")
    assert load_yaml(tmp_path / "m.yaml") == cfg
    model = cfg.build()
    assert model.ar.layout.frames_per_step == 2


def test_training_on_codes_of_another_merge_rate_stops_with_what_to_do(tmp_path, caplog) -> None:
    """valle-train checks the AR's rate against codec.json before any data is read."""
    from lhotse import CutSet

    from tests.data.factories import FakeCodec, fake_frontend_for, make_cuts
    from valle.bin.train import main
    from valle.data.codec_info import CodecInfo
    from valle.data.manifests import save_cuts_atomic
    from valle.data.tokenize import add_phonemes, build_symbol_table, encode_cuts

    codec = FakeCodec()
    info = CodecInfo.from_codec(codec, name="fake")  # records no merge_rates: not merged
    coded, _ = encode_cuts(make_cuts(tmp_path / "wav"), codec, tmp_path / "tok", "t", info,
                           progress=False)  # fmt: skip
    cuts = list(add_phonemes(coded, frontend_for=fake_frontend_for, progress=False))
    build_symbol_table(cuts).to_file(tmp_path / "tokens.txt")
    save_cuts_atomic(CutSet.from_cuts(cuts), tmp_path / "train.jsonl.gz")
    args = ["--variant", "vallr_merged", "--size", "tiny", "--exp-dir", str(tmp_path / "exp"),
            "--train-cuts", str(tmp_path / "train.jsonl.gz"), "--tokens",
            str(tmp_path / "tokens.txt"), "--codec-dir", str(tmp_path / "tok"),
            "--accelerator", "cpu"]  # fmt: skip
    with caplog.at_level("ERROR"):
        assert main(args) == 2
    assert "merged at rate 1" in caplog.text and "ar.layout.rate=1" in caplog.text
    assert not (tmp_path / "exp" / "model.pt").exists()


def test_tiny_model_overfits_merged_codes_at_half_rate() -> None:
    """A tiny half-rate VALL-E R learns two merged utterances with their frame durations;
    greedy generation from a prompt of their first two phonemes (ending on a window
    boundary) gives the rest of the codes and the windows' alignment, in half the steps, and
    speed 0.5 on the model's own alignment doubles the frames."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    durs = [torch.tensor([2, 2, 3, 2, 4, 3]), torch.tensor([3, 3, 2, 3, 2, 3, 2, 2])]
    texts = [torch.randint(1, 12, (len(d),), generator=g) for d in durs]
    codes = [_merge(torch.randint(0, V, (int(d.sum()), Q), generator=g)) for d in durs]
    batch = batch_from_codes(texts, codes)
    batch["durations"] = torch.nn.utils.rnn.pad_sequence(durs, batch_first=True)
    batch["durations_lens"] = torch.tensor([len(d) for d in durs])
    model = tiny_model(variant="vallr", d_model=64, ffn_dim=128,
                       overrides=MERGED + ["nar.prompt.min_ratio=0.25",
                                           "nar.prompt.max_ratio=0.25"])  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    # the NAR trains on the alignment the AR's windows give it at inference (Vallr.loss)
    snapped = {**batch, "durations": snap_durations(batch["durations"], batch["audio_lens"], 2)}

    def accuracies() -> list[float]:
        model.eval()
        with torch.no_grad():
            _, m = model.ar.loss(batch)
            accs = [float(m["acc"]), float(m["pointer_acc"])]
            accs += [float(model.nar.loss(snapped, stage=s)[1]["acc"]) for s in range(1, Q)]
        model.train()
        return accs

    for step in range(500):
        loss, _ = model.loss(batch, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 24 and min(accuracies()) >= 0.99:
            break
    accs = accuracies()
    assert min(accs) >= 0.99, accs

    model.eval()
    k = 2  # prompt = the frames of the first two phonemes (4 and 6 frames: whole windows)
    prompt_lens = [int(d[:k].sum()) for d in durs]
    pb = batch_from_codes(texts, codes, [c[:p] for c, p in zip(codes, prompt_lens, strict=True)])
    prompt_d = batch["durations"].clone()
    prompt_d[:, k:] = 0
    kwargs = dict(prompt_text_lens=torch.tensor([k, k]), prompt_durations=prompt_d)
    counter = StepCounter(model)
    out, aligns = model.generate_aligned(*_inputs(pb), **kwargs)
    rest = [len(c) - p for c, p in zip(codes, prompt_lens, strict=True)]
    assert counter.n == max(rest) // 2  # one step per window of the longer row
    for o, a, c, d, p in zip(out, aligns, codes, durs, prompt_lens, strict=True):
        assert torch.equal(o, c[p:])
        w = window_durations(d[None], d.sum()[None], 2)[0]  # the windows it trained on
        assert torch.equal(a, torch.arange(k, len(d)).repeat_interleave(2 * w[k:]))
    slow, _ = model.generate_aligned(*_inputs(pb), speed=0.5, **kwargs)
    assert [o.shape[0] for o in slow] == [2 * r for r in rest]
