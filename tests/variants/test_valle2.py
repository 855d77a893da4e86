"""VALL-E 2 (arXiv 2406.05370): each paper idea against its definition.

Grouped code modeling (Sec 3.1/3.3): the group embedding is the G code embeddings concatenated
and projected by W^g, the group prediction layer feeds the tied code prediction layer, the
sequence is trimmed at the start and the prompt seam neither loses nor repeats a frame, G = 1
is VALL-E's AR. NAR (Sec 3.2/3.3): a code-ID token instead of AdaLN; the acoustic-condition
split (lengths, seconds from the codec frame rate, loss on the target only). Repetition-aware
sampling (Sec 3.2, Algorithm 1): with a greedy first choice (top-p 0) a model whose greedy
choice repeats forever still ends.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lhotse import NumpyFilesWriter
from lhotse.testing.dummies import dummy_cut

from valle.ar.generate import generate_ar, max_new_steps
from valle.ar.layouts import GroupedCodeLayout, GroupEmbedding
from valle.config import ConfigError, compose_config, load_yaml, save_yaml
from valle.data import batch as B_
from valle.data.featurizers import FRAME_RATE, FrameRate
from valle.modules.norms import AdaptiveLayerNorm
from valle.nar.condition import AcousticConditionConfig, AcousticConditionPrefix, condition_lengths
from valle.nar.stage import CodeIdTokenStage
from valle.registry import data_request
from valle.sampling import Greedy, RepetitionAwareSampler, build_sampler
from valle.testing.model import batch_from_codes, dummy_batch, tiny_model

V, Q = 16, 4


def _valle2(seed: int = 0, **kwargs):
    return tiny_model(seed=seed, variant="valle2", **kwargs)


# --------------------------------------------------------------------------- the composition


def test_preset_is_the_paper_composition() -> None:
    cfg = compose_config("valle2", "tiny", text_vocab_size=12, codebook_size=V, num_codebooks=Q)
    assert cfg.ar.layout.kind == "grouped" and cfg.ar.layout.group == 2
    assert cfg.ar.head.tie_embedding
    s = cfg.ar.sampler
    assert (s.kind, s.window, s.threshold, s.top_p) == ("repetition_aware", 10, 0.1, 0.8)
    assert cfg.nar.stage == "code_id_token"
    model = cfg.build()
    assert isinstance(model.ar.default_sampler, RepetitionAwareSampler)
    D = cfg.ar.backbone.d_model
    emb = model.ar.audio_embedding
    assert isinstance(emb, GroupEmbedding)
    assert emb.codes.weight.shape == (V + 2, D)  # full-width code embedding W^c
    assert emb.project.weight.shape == (D, 2 * D)  # W^g: G*D -> D
    assert model.ar.head.group.weight.shape == (2 * D, D)  # group prediction layer: D -> G*D
    assert isinstance(model.nar.stage, CodeIdTokenStage)
    assert not any(isinstance(m, AdaptiveLayerNorm) for m in model.nar.modules())


def test_group_embedding_concatenates_full_width_code_embeddings_then_projects() -> None:
    torch.manual_seed(0)
    G, D = 4, 8
    emb = GroupEmbedding(V + 2, D, G)
    ids = torch.randint(0, V + 2, (2, 3, G))  # (B, N, G)
    wc, wg = emb.codes.weight, emb.project.weight  # (ids, D), (D, G*D)
    concat = torch.cat([wc[ids[..., g]] for g in range(G)], dim=-1)  # (B, N, G*D)
    assert torch.allclose(emb(ids), concat @ wg.T)  # e^g_t = [e^c_tG; ...; e^c_tG+G-1] W^g


def test_group_prediction_feeds_the_tied_code_prediction_layer() -> None:
    model = _valle2()
    head, table = model.ar.head, model.ar.audio_embedding.weight
    D = table.shape[1]
    h = torch.randn(3, D)
    g = head.group(h).unflatten(-1, (2, D))  # (3, G, D)
    expected = (g / math.sqrt(D)) @ table[: V + 1].T + head.bias  # (3, G, V + 1)
    assert torch.allclose(head(h), expected, atol=1e-6)


def test_group_of_one_is_exactly_valles_ar() -> None:
    """G = 1: the same parameters (no W^g, no group prediction layer) and the same outputs as
    the first-codebook layout, teacher-forced and generated."""
    common = dict(sampler="greedy", max_len_ratio=3.0)
    valle = tiny_model(seed=3, overrides=["nar=null"], **common)
    valle2 = _valle2(seed=9, group=1, overrides=["nar=null"], **common)
    assert valle.ar.state_dict().keys() == valle2.ar.state_dict().keys()
    valle2.ar.load_state_dict(valle.ar.state_dict())
    batch = dummy_batch(valle.config, batch_size=3, seed=4)
    with torch.no_grad():
        a = valle.ar.layout.teacher_forcing(batch[B_.AUDIO_CODES], batch[B_.AUDIO_LENS])
        b = valle2.ar.layout.teacher_forcing(batch[B_.AUDIO_CODES], batch[B_.AUDIO_LENS])
        for x, y in zip(a, b, strict=True):  # inputs, lengths, targets, mask: one code a step
            assert torch.equal(x, y)
        text, lens = batch[B_.TEXT_TOKENS], batch[B_.TEXT_LENS]
        la = valle.ar(text, lens, a.inputs, a.lens)  # (B, N, V+1)
        assert torch.equal(la, valle2.ar(text, lens, b.inputs, b.lens))
        assert torch.equal(valle.ar.loss(batch)[0], valle2.ar.loss(batch)[0])
    args = (text, lens, batch[B_.PROMPT_CODES], batch[B_.PROMPT_LENS])
    for x, y in zip(valle.generate(*args), valle2.generate(*args), strict=True):
        assert torch.equal(x, y)


# --------------------------------------------------------------------------- grouping


@pytest.mark.parametrize("G", [1, 2, 4, 8])
def test_grouping_round_trip_trims_at_the_start(G: int) -> None:
    g = torch.Generator().manual_seed(G)
    lens = torch.tensor([0, G - 1, G, 3 * G + G - 1, 5 * G])
    codes = torch.randint(0, V, (len(lens), int(lens.max()), Q), generator=g)
    layout = GroupedCodeLayout(V, G)
    steps, n, valid = layout.to_steps(codes, lens)
    for b, T in enumerate(lens.tolist()):
        k = T // G
        assert int(n[b]) == k and valid[b, :k].all() and not valid[b, k:].any()
        # the groups are the LAST k*G frames: T mod G frames are dropped at the start
        assert torch.equal(layout.from_steps(steps[b, :k])[:, 0], codes[b, T - k * G : T, 0])


@pytest.mark.parametrize("G", [2, 4])
def test_the_first_t_mod_g_frames_are_not_trained(G: int) -> None:
    model = _valle2(seed=0, group=G, overrides=["nar=null"])
    g = torch.Generator().manual_seed(1)
    T = 3 * G + G - 1  # T mod G = G - 1 frames dropped at the start
    codes = torch.randint(0, V, (T, Q), generator=g)
    texts = [torch.randint(1, 12, (5,), generator=g)]
    first, last = codes.clone(), codes.clone()
    first[: G - 1, 0] = (codes[: G - 1, 0] + 1) % V
    last[-1, 0] = (codes[-1, 0] + 1) % V
    with torch.no_grad():
        base = model.ar.loss(batch_from_codes(texts, [codes]))[0]
        assert torch.equal(base, model.ar.loss(batch_from_codes(texts, [first]))[0])
        assert not torch.equal(base, model.ar.loss(batch_from_codes(texts, [last]))[0])


@pytest.mark.parametrize("G", [2, 4])
def test_prompt_seam_neither_loses_nor_repeats_a_frame(G: int) -> None:
    """The AR reads the prompt's last P - P mod G frames (they end at frame P) and the model
    returns frames P, P+1, ... only: whole groups, the NAR filling them after the full prompt."""
    model = _valle2(seed=2, group=G).eval()
    ar = model.ar
    seen = {}
    prefill = ar.prefill

    def recording_prefill(text_tokens, text_lens, audio_in, audio_lens, *args, **kwargs):
        seen["audio_in"], seen["lens"] = audio_in.clone(), audio_lens.clone()
        return prefill(text_tokens, text_lens, audio_in, audio_lens, *args, **kwargs)

    ar.prefill = recording_prefill
    g = torch.Generator().manual_seed(G)
    prompts = [torch.randint(0, V, (p, Q), generator=g) for p in (G + 1, 2 * G, G - 1)]
    texts = [torch.randint(1, 12, (6,), generator=g) for _ in prompts]
    b = batch_from_codes(texts, prompts, prompts)
    out = model.generate(b["text_tokens"], b["text_lens"], b["prompt_codes"], b["prompt_lens"])
    for row, p in enumerate(prompts):
        k = int(seen["lens"][row]) - 1  # prompt steps after BOS
        fed = ar.layout.from_steps(seen["audio_in"][row, 1 : k + 1])[:, 0]
        assert k == len(p) // G
        assert torch.equal(fed, p[len(p) - G * k :, 0]), row
        assert out[row].shape[0] % G == 0 and out[row].shape[1] == Q  # continuation only


# --------------------------------------------------------------------------- NAR


def test_code_id_token_is_how_the_nar_knows_its_stage() -> None:
    """Plain LayerNorm everywhere; stage j reads its own code-ID embedding (row j - 1) and no
    other: changing row 1 changes stage 2's output, changing row 0 does not."""
    model = _valle2(seed=5).eval()
    nar = model.nar
    assert nar.stage.embedding.num_embeddings == Q - 1  # code IDs of codebooks 2..Q
    batch = dummy_batch(model.config, batch_size=2, seed=6)
    args = (batch[B_.TEXT_TOKENS], batch[B_.TEXT_LENS], batch[B_.PROMPT_CODES],
            batch[B_.PROMPT_LENS], batch[B_.AUDIO_CODES], batch[B_.AUDIO_LENS], 2)  # fmt: skip
    # a random direction: a constant shift of every feature is what a LayerNorm removes, so
    # "+= 1.0" would change nothing but rounding
    g = torch.Generator().manual_seed(7)
    shift = torch.randn(nar.stage.embedding.weight.shape[1], generator=g)
    with torch.no_grad():
        base = nar(*args)
        nar.stage.embedding.weight[0] += shift  # stage 1's code ID
        assert torch.equal(nar(*args), base)
        nar.stage.embedding.weight[1] += shift  # stage 2's code ID
        assert not torch.allclose(nar(*args), base, atol=1e-3)


def test_condition_lengths_follow_the_rule() -> None:
    lens = torch.tensor([1, 2, 10, 10, 10, 11])
    drawn = torch.tensor([0.0, 0.0, 2.0, 7.0, 50.0, 0.0])
    # max(round(T/2), drawn), capped at T - 1 (one frame has no condition)
    assert condition_lengths(lens, drawn).tolist() == [0, 1, 5, 7, 9, 6]
    assert condition_lengths(lens, drawn, fraction=0.0).tolist() == [0, 0, 2, 7, 9, 0]


def _frame_rate_batch(lens: list[int], rate: float, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    texts = [torch.randint(1, 12, (4,), generator=g) for _ in lens]
    codes = [torch.randint(0, V, (n, Q), generator=g) for n in lens]
    batch = batch_from_codes(texts, codes)
    batch[FRAME_RATE] = torch.full((len(lens), 1), rate)
    return batch


def test_condition_split_draws_seconds_and_converts_them_with_the_frame_rate() -> None:
    lens = [40, 100, 300, 7]
    policy = AcousticConditionPrefix(min_seconds=1.0, max_seconds=3.0, fraction=0.5)
    for rate in (20.0, 75.0):
        batch = _frame_rate_batch(lens, rate)
        split = policy(batch, torch.Generator().manual_seed(7))
        u = torch.rand(len(lens), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
        expected = condition_lengths(torch.tensor(lens), (1.0 + 2.0 * u) * rate)
        assert split.prompt_lens.tolist() == expected.tolist()
        for b, T in enumerate(lens):
            p = int(split.prompt_lens[b])
            assert round(T / 2) <= p <= T - 1
            assert torch.equal(split.prompt_codes[b, :p], batch[B_.AUDIO_CODES][b, :p])
            assert int(split.target_lens[b]) == T - p
            assert torch.equal(split.target_codes[b, : T - p], batch[B_.AUDIO_CODES][b, p:T])
    # a random length shorter than half the utterance: exactly half
    short = AcousticConditionPrefix(min_seconds=0.0, max_seconds=0.1, fraction=0.5)
    assert short(_frame_rate_batch([40, 41], 20.0)).prompt_lens.tolist() == [20, 20]
    # one longer than the utterance: all but its last frame
    long = AcousticConditionPrefix(min_seconds=60.0, max_seconds=60.0)
    assert long(_frame_rate_batch([40, 41], 20.0)).prompt_lens.tolist() == [39, 40]


def test_nar_loss_covers_only_the_frames_after_the_condition() -> None:
    model = _valle2(seed=1).eval()
    batch = _frame_rate_batch([9, 14, 6], 75.0, seed=3)
    split = model.nar.prompt(batch, torch.Generator().manual_seed(11))
    with torch.no_grad():
        loss, _ = model.nar.loss(batch, torch.Generator().manual_seed(11), stage=2)
        logits = model.nar(
            batch[B_.TEXT_TOKENS], batch[B_.TEXT_LENS], split.prompt_codes, split.prompt_lens,
            split.target_codes, split.target_lens, 2,
        )  # fmt: skip
    rows = [(b, t) for b in range(3) for t in range(int(split.target_lens[b]))]
    ce = torch.stack([F.cross_entropy(logits[b, t], split.target_codes[b, t, 2]) for b, t in rows])
    assert torch.allclose(loss, ce.mean(), atol=1e-6)
    assert len(rows) == int((batch[B_.AUDIO_LENS] - split.prompt_lens).sum())


def test_the_split_needs_the_frame_rate_and_the_variant_asks_for_it() -> None:
    cfg = _valle2().config
    assert [f.name for f in data_request(cfg).featurizers] == [FRAME_RATE]
    assert [f.name for f in data_request(cfg, ("nar",)).featurizers] == [FRAME_RATE]
    assert data_request(cfg, ("ar",)).featurizers == ()  # the AR reads no frame rate
    batch = dummy_batch(cfg)
    assert batch[FRAME_RATE].shape == (2, 1)
    del batch[FRAME_RATE]
    with pytest.raises(KeyError, match="frame_rate"):
        _valle2().loss(batch, generator=torch.Generator())
    with pytest.raises(ConfigError, match="min_seconds"):
        AcousticConditionConfig(min_seconds=5.0, max_seconds=1.0)


def test_frame_rate_featurizer_reads_the_codec_rate_of_the_cut(tmp_path) -> None:
    cut = dummy_cut(0, duration=2.0, with_data=False)
    with NumpyFilesWriter(str(tmp_path)) as writer:
        arr = writer.store_array(cut.id, np.zeros((40, 2), dtype=np.int64), frame_shift=0.05,
                                 temporal_dim=0)  # fmt: skip
    cut = cut.with_custom("codes", arr)
    assert FrameRate()(cut).tolist() == [pytest.approx(20.0)]


def test_config_round_trip(tmp_path) -> None:
    cfg = compose_config("valle2", "base", ["ar.layout.group=4", "nar.prompt.max_seconds=30"],
                         text_vocab_size=50, codebook_size=1024, num_codebooks=8)  # fmt: skip
    save_yaml(cfg, tmp_path / "m.yaml")
    assert load_yaml(tmp_path / "m.yaml") == cfg
    text = (tmp_path / "m.yaml").read_text()
    assert "variant: valle2" in text and "min_seconds" in text


# --------------------------------------------------------------------------- RAS


def test_greedy_ras_breaks_a_loop_that_greedy_never_leaves() -> None:
    """A model whose arg-max is always code 3: greedy decoding repeats it up to the length
    bound; repetition-aware sampling with top-p 0 (greedy first choice) falls back to random
    sampling once 3 fills more than t_r of the last K codes, which can draw EOS, so it ends."""
    model = _valle2(seed=0, group=2, max_len_ratio=40.0, overrides=["nar=null"]).eval()
    head = model.ar.head
    with torch.no_grad():  # logits = the bias alone: the group prediction layer outputs 0
        head.group.weight.zero_()
        head.bias.zero_()
        head.bias[3] = 10.0  # the greedy choice, always
        head.bias[V] = 7.0  # EOS: ~5 % of the mass
    ras = build_sampler("repetition_aware", top_p=0.0)
    assert isinstance(ras.nucleus, Greedy)
    g = torch.Generator().manual_seed(0)
    text = torch.randint(1, 12, (2, 6), generator=g)
    text_lens = torch.tensor([6, 5])
    prompt = torch.randint(0, V, (2, 4, Q), generator=g)
    prompt_lens = torch.tensor([4, 3])
    limit = model.ar.layout.max_steps(max_new_steps(text_lens, 40.0))  # (B,) steps
    looped = generate_ar(model.ar, text, text_lens, prompt, prompt_lens, sampler=Greedy())
    for s, n in zip(looped, limit.tolist(), strict=True):
        assert s.shape[0] == n and (s == 3).all()  # one code up to the bound
    ended = generate_ar(model.ar, text, text_lens, prompt, prompt_lens, sampler=ras, generator=g)
    for s, n in zip(ended, limit.tolist(), strict=True):
        assert s.shape[0] < n  # EOS drawn by the fallback before the bound


# --------------------------------------------------------------------------- learning


def test_tiny_valle2_overfits_and_continues_its_prompts() -> None:
    """Both parts learn two utterances (odd and even length, G = 2): the AR teacher-forced
    exactly and, from prompts of 5 and 4 frames, greedy generation returns exactly the frames
    after the prompt; the NAR, trained on acoustic-condition splits, predicts the targets'
    codebooks 2..Q."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    lengths, prompt_lens = [17, 20], [5, 4]
    texts = [torch.randint(1, 12, (6,), generator=g), torch.randint(1, 12, (8,), generator=g)]
    codes = [torch.randint(0, V, (n, Q), generator=g) for n in lengths]
    batch = batch_from_codes(texts, codes)
    batch[FRAME_RATE] = torch.full((2, 1), 75.0)  # the tiny split: 1.5-9 frames, or half
    model = _valle2(seed=0, d_model=64, ffn_dim=128)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    split_gen = torch.Generator().manual_seed(2)

    def accuracies() -> list[float]:  # AR, then NAR stage 1..Q-1 on fresh splits
        with torch.no_grad():
            accs = [float(model.ar.loss(batch)[1]["acc"])]
            for stage in range(1, Q):
                _, m = model.nar.loss(batch, torch.Generator().manual_seed(stage), stage=stage)
                accs.append(float(m["acc"]))
        return accs

    for step in range(1000):
        loss, _ = model.loss(batch, generator=split_gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 49 and min(accuracies()) >= 0.999:
            break
    model.eval()
    accs = accuracies()
    assert accs[0] >= 0.99 and min(accs[1:]) >= 0.95, accs
    prompts = [c[:p] for c, p in zip(codes, prompt_lens, strict=True)]
    pb = batch_from_codes(texts, codes, prompts)
    out = model.generate(
        pb["text_tokens"], pb["text_lens"], pb["prompt_codes"], pb["prompt_lens"],
        sampler=Greedy(),
    )  # fmt: skip
    for o, c, p in zip(out, codes, prompt_lens, strict=True):
        assert torch.equal(o[:, 0], c[p:, 0])
