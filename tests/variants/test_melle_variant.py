"""MELLE as a variant: every loss term logged, the KL warm-up reaching the loss through the
training step, stopping (StopFlag threshold, length cap), KV-cached generation equal to a
full recomputation, the reduction factor in generation, and a tiny model learning."""

from __future__ import annotations

import math

import pytest
import torch

from valle.ar.stops import StopFlag, StopFlagConfig
from valle.config import ConfigError, compose_config
from valle.data import batch as B_
from valle.testing.model import tiny_config, tiny_model
from valle.variants.melle import Melle, MelleConfig

F_ = 8  # tiny mel bins


def _batch(lens=(9, 6), text=(5, 3), seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    B, T, S = len(lens), max(lens), max(text)
    t = torch.arange(T, dtype=torch.float32)
    mel = torch.zeros(B, T, F_)
    for b in range(B):  # smooth made-up spectrograms
        mel[b] = torch.sin(0.7 * t[:, None] + torch.arange(F_) + b) + 0.1 * torch.randn(
            T, F_, generator=g
        )
    text_tokens = torch.zeros(B, S, dtype=torch.long)
    for b, n in enumerate(text):
        text_tokens[b, :n] = torch.randint(1, 12, (n,), generator=g)
    return {
        B_.TEXT_TOKENS: text_tokens,
        B_.TEXT_LENS: torch.tensor(text),
        B_.LANGUAGE: torch.zeros(B, dtype=torch.long),
        B_.MEL: mel,
        B_.lens_key(B_.MEL): torch.tensor(lens),
    }


def _model(**kwargs) -> Melle:
    model = tiny_model(variant="melle", **kwargs)
    assert isinstance(model, Melle)
    return model


def test_every_term_is_logged_and_sums_to_the_loss() -> None:
    model = _model()
    w = model.config.ar.loss
    loss, m = model.loss(_batch(), generator=torch.Generator().manual_seed(0), step=10**6)
    for k in ("reg_pre", "reg_post", "kl", "flux", "stop", "kl_weight"):
        assert f"ar/{k}" in m
    expected = (
        m["ar/reg_pre"]
        + m["ar/reg_post"]
        + w.kl_weight * m["ar/kl"]
        + w.flux_weight * m["ar/flux"]
        + w.stop_weight * m["ar/stop"]
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_alignment_prior_adds_its_weighted_term_in_training_only() -> None:
    """``ar.alignment_prior`` (not in the paper; off by default) adds weight x the diagonal
    penalty of the audio->text attention to MELLE's loss while training, nothing in eval."""
    from valle.config import from_dict, to_dict

    base = tiny_config("melle")
    d = to_dict(base)
    d["ar"]["alignment_prior"] = {"weight": 3.0, "sigma": 0.2, "layers": [0, 1]}
    cfg = from_dict(MelleConfig, d)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        guided = cfg.build()
    plain = _model()
    guided.load_state_dict(plain.state_dict())  # the prior adds no weights
    batch = _batch()
    for m in (plain, guided):
        m.train()
    with torch.random.fork_rng(devices=[]):  # the post-net's dropout draws from the global RNG
        torch.manual_seed(0)
        loss_p, _ = plain.loss(batch, generator=torch.Generator().manual_seed(0), step=10**6)
        torch.manual_seed(0)
        loss_g, m = guided.loss(batch, generator=torch.Generator().manual_seed(0), step=10**6)
    assert 0.0 < m["ar/attn_prior"].item() <= 1.0
    assert loss_g.item() == pytest.approx(loss_p.item() + 3.0 * m["ar/attn_prior"].item(), rel=1e-5)
    guided.eval()
    _, m_eval = guided.loss(batch, generator=torch.Generator().manual_seed(0), step=10**6)
    assert "ar/attn_prior" not in m_eval


def test_kl_warm_up_reaches_the_loss_through_the_step() -> None:
    model = _model().eval()  # no post-net dropout: the two runs differ by the KL term only
    w = model.config.ar.loss
    batch = _batch()

    def run(step):
        return model.loss(batch, generator=torch.Generator().manual_seed(0), step=step)

    (early, m0), (late, m1) = run(w.kl_warmup_steps - 1), run(w.kl_warmup_steps)
    assert m0["ar/kl_weight"].item() == 0.0 and m1["ar/kl_weight"].item() == pytest.approx(0.1)
    assert (late - early).item() == pytest.approx(0.1 * m1["ar/kl"].item(), rel=1e-4)


def test_ablations_without_latent_sampling_and_without_flux() -> None:
    cfg = tiny_config("melle", overrides=["ar.latent=null", "ar.loss.flux_weight=0"])
    model = cfg.build()
    loss, m = model.loss(_batch(), generator=torch.Generator().manual_seed(0))
    assert "ar/kl" not in m and torch.isfinite(loss)
    expected = m["ar/reg_pre"] + m["ar/reg_post"] + m["ar/stop"]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_stop_flag_threshold() -> None:
    out = torch.tensor([[0.0, 2.0], [0.0, -2.0], [0.0, 0.1]])  # stop logit last
    assert StopFlag(0.5)(out[:, :1], out, 0, None).tolist() == [True, False, True]
    assert StopFlag(0.6)(out[:, :1], out, 0, None).tolist() == [True, False, False]
    assert StopFlag(0.5).keeps_last
    with pytest.raises(ConfigError):
        StopFlagConfig(threshold=1.0)


def _forced_stop(model: Melle, logit: float) -> Melle:
    with torch.no_grad():
        model.head.stop_proj.weight.zero_()
        model.head.stop_proj.bias.fill_(logit)
    return model.eval()


def test_generation_stops_on_the_flag_and_keeps_that_step() -> None:
    r = 2
    model = _forced_stop(_model(reduction=r), 5.0)
    text = torch.tensor([[1, 2, 3], [4, 5, 0]])
    out = model.generate(text, torch.tensor([3, 2]))
    assert [tuple(o.shape) for o in out] == [(r, F_), (r, F_)]  # one step of r frames each


@pytest.mark.parametrize("r", [1, 4])
def test_generation_is_capped_by_the_length_bound(r: int) -> None:
    model = _forced_stop(_model(reduction=r), -5.0)  # never stops by itself
    text = torch.tensor([[1, 2, 3], [4, 5, 0]])
    out = model.generate(text, torch.tensor([3, 2]), max_len_ratio=1.5)
    assert [o.shape[0] for o in out] == [math.ceil(1.5 * 3), math.ceil(1.5 * 2)]


def test_threshold_decides_where_a_row_stops() -> None:
    model = _forced_stop(_model(), 0.0)  # stop probability exactly 0.5
    text = torch.tensor([[1, 2, 3]])
    model.ar.stop = StopFlag(0.4)
    assert model.generate(text, torch.tensor([3]))[0].shape[0] == 2  # one step (r = 2)
    model.ar.stop = StopFlag(0.6)
    assert model.generate(text, torch.tensor([3]), max_len_ratio=2.0)[0].shape[0] == 6


def test_kv_cached_generation_equals_full_recomputation() -> None:
    torch.manual_seed(0)
    model = _forced_stop(_model(reduction=2), -5.0)
    batch = _batch()
    prompt = batch[B_.MEL][:, :4]
    text, text_lens = batch[B_.TEXT_TOKENS], batch[B_.TEXT_LENS]
    prompt_lens = torch.tensor([4, 3])
    model.postnet = None  # compare the AR's own frames y'
    out = model.generate(text, text_lens, prompt_mel=prompt, prompt_mel_lens=prompt_lens)
    layout = model.layout
    for b in range(2):
        p_steps, p_n, _ = layout.to_steps(
            prompt[b : b + 1, : int(prompt_lens[b])], prompt_lens[b : b + 1]
        )
        gen = out[b].reshape(-1, layout.step_dim)[None]  # (1, N, E)
        steps = torch.cat([p_steps[:, : int(p_n)], gen], 1)
        inputs, lens = layout.with_bos(steps[:, :-1], torch.tensor([steps.shape[1] - 1]))
        with torch.no_grad():
            h = model.ar.hidden(
                text[b : b + 1, : int(text_lens[b])], text_lens[b : b + 1], inputs, lens
            )
            full = model.head.sample(model.head(h[0]), None, model.ar.default_sampler, None)
        torch.testing.assert_close(full[int(p_n) :], gen[0], rtol=1e-4, atol=1e-5)


def test_a_tiny_model_learns_two_utterances() -> None:
    """Teacher-forced losses fall and free-running generation reproduces both utterances and
    stops where they end. No pre-net dropout here (the paper's 0.5 needs far more steps);
    threshold 0.9 because the positive weight 100 makes the stop probability run high."""
    torch.manual_seed(0)
    model = _model(reduction=2, overrides=["ar.prenet.dropout=0", "ar.stop.threshold=0.9"])
    batch = _batch(lens=(10, 8))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(80):
        loss, m = model.loss(batch, step=0)  # KL off (warm-up)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(m)
    assert losses[-1]["ar/reg_post"] < 0.1 * losses[0]["ar/reg_post"]
    assert losses[-1]["ar/stop"] < 0.1 * losses[0]["ar/stop"]
    model.eval()
    out = model.generate(batch[B_.TEXT_TOKENS], batch[B_.TEXT_LENS], max_len_ratio=4.0)
    assert [o.shape[0] for o in out] == [10, 8]  # stops where the utterances end
    for b, o in enumerate(out):
        assert (o - batch[B_.MEL][b, : o.shape[0]]).abs().mean() < 0.2


def test_presets_compose_with_the_size_presets() -> None:
    for variant, rate in (("melle", 16000), ("melle_hifigan", 22050)):
        cfg = compose_config(
            variant, "base", text_vocab_size=40, codebook_size=1024, num_codebooks=8
        )
        assert isinstance(cfg, MelleConfig) and cfg.nar is None
        assert cfg.mel.sample_rate == rate and cfg.mel.n_mels == 80 and cfg.mel.hop_length == 256
        assert cfg.ar.backbone.d_model == 1024 and cfg.ar.loss.stop_pos_weight == 100.0
    paper = compose_config("melle", "tiny", text_vocab_size=40, codebook_size=1024, num_codebooks=8)
    assert (paper.mel.fmin, paper.mel.fmax, paper.mel.log_base) == (80.0, 7600.0, "10")
    from valle.codec.vocoder import PACKAGED_HIFIGAN_MEL

    hifi = compose_config(
        "melle_hifigan", "tiny", text_vocab_size=40, codebook_size=2, num_codebooks=1
    )
    assert hifi.mel.mel_config() == PACKAGED_HIFIGAN_MEL


def test_the_variant_s_wave_maker_speaks_its_mels() -> None:
    """Prompt wave -> the wave maker's log-mel (``prompt_mel``) -> generate -> vocoder wave."""
    model = _forced_stop(_model(reduction=2), -5.0)
    voc = model.wave_maker()  # config.vocoder: griffin_lim, on the tiny model's mel settings
    assert voc.logmel.config == model.config.mel.mel_config()
    t = torch.arange(4000) / voc.sample_rate
    prompt = voc.logmel(0.3 * torch.sin(2 * torch.pi * 300 * t))  # (1, P, F)
    (mel,) = model.generate(
        torch.tensor([[1, 2, 3]]),
        torch.tensor([3]),
        prompt_mel=prompt,
        prompt_mel_lens=torch.tensor([prompt.shape[1]]),
        max_len_ratio=2.0,
    )
    wave = voc(mel)
    assert mel.shape == (6, F_) and wave.shape == (1, 6 * voc.logmel.hop_length)
    with pytest.raises(ValueError, match="train on those settings"):
        model.wave_maker("hifigan_universal")  # the tiny mel is not the HiFi-GAN's


def test_training_samples_of_a_mel_model_go_through_its_vocoder() -> None:
    from valle.train.samples import SampleProvider

    model = _forced_stop(_model(reduction=2), -5.0)
    provider = SampleProvider(
        text_tokens=torch.tensor([1, 2, 3]),
        prompt_codes=torch.zeros(4, 4, dtype=torch.long),  # codec codes: MELLE reads none
        codec=None,  # type: ignore[arg-type]  # never asked: the model's vocoder decodes
    )
    wave, sr = provider.synthesize(model)
    assert sr == model.config.mel.sample_rate
    assert wave.shape == (math.ceil(4.0 * 3) * model.config.mel.hop_length,)


def test_a_stop_that_needs_an_eos_class_is_refused_by_the_stop_itself() -> None:
    """MELLE's mel layout has no EOS class: the stop kind says so when it is built on it
    (MELLE does not keep its own list of allowed stops)."""
    cfg = tiny_config("melle", overrides=["ar.stop.kind=eos"])
    with pytest.raises(ConfigError, match="stop kind 'eos' needs a layout with an EOS class"):
        cfg.build()


def test_the_duration_stop_needs_an_aligned_melle() -> None:
    """Only a frame-aligned MELLE has durations to stop after."""
    with pytest.raises(ConfigError, match="only an aligned MELLE"):
        tiny_config("melle", overrides=["ar.stop.kind=duration"])


def test_melle_takes_any_stop_kind_that_fits_its_layout() -> None:
    """A stop kind other than stop_flag that needs no EOS class is built into MELLE's AR;
    the variant's config did refuse every stop but StopFlagConfig by its class."""
    import dataclasses

    from valle.ar.stops import StopConfig

    @dataclasses.dataclass(frozen=True)
    class FlagAtHalf(StopConfig):  # a stop of a kind MELLE never heard of
        kind: str = "flag_at_half"

        def build(self, layout):
            return StopFlag(0.5)

    cfg = tiny_config("melle")
    cfg = dataclasses.replace(cfg, ar=dataclasses.replace(cfg.ar, stop=FlagAtHalf()))
    model = cfg.build()
    assert isinstance(model.ar.stop, StopFlag) and model.ar.stop.threshold == 0.5


def test_the_stop_flag_refuses_a_code_layout_when_built() -> None:
    """stop_flag reads the head's last output as a stop logit: on a code layout that is the
    EOS class's logit, so the stop refuses any layout that is not continuous frames (it did
    build silently and read the EOS logit as its flag)."""
    from valle.ar.latent import MelFrameLayout
    from valle.ar.layouts import FirstCodebookLayout

    with pytest.raises(ConfigError, match="stop kind 'stop_flag' needs a layout of continuous"):
        tiny_config("valle", overrides=["ar.stop.kind=stop_flag"]).build()
    with pytest.raises(ConfigError, match="stop_flag"):
        StopFlagConfig().build(FirstCodebookLayout(8))
    assert isinstance(StopFlagConfig(threshold=0.7).build(MelFrameLayout(8)), StopFlag)


# --------------------------------------------------------------------------- frame-aligned MELLE


def _aligned(predictor: bool = True, seed: int = 0) -> Melle:
    import dataclasses

    from valle.ar.frame_alignment import FrameTrackConfig
    from valle.ar.stops import DurationStopConfig
    from valle.modules.duration_predictor import DurationPredictorConfig

    cfg = tiny_config("melle", reduction=1)
    cfg = dataclasses.replace(
        cfg,
        ar=dataclasses.replace(cfg.ar, stop=DurationStopConfig()),
        alignment=FrameTrackConfig(lookahead_layers=1, lookahead_kernel=3),
        durations=DurationPredictorConfig(channels=8, layers=1) if predictor else None,
    )
    torch.manual_seed(seed)
    return cfg.build()


def _aligned_batch() -> dict:
    b = _batch()
    b[B_.DURATIONS] = torch.tensor([[2, 2, 1, 2, 2], [3, 2, 1, 0, 0]])
    return b


def test_aligned_melle_config_checks() -> None:
    import dataclasses

    cfg = _aligned().config
    with pytest.raises(ConfigError, match="reduction: 1"):
        dataclasses.replace(cfg, ar=dataclasses.replace(cfg.ar, reduction=2))
    with pytest.raises(ConfigError, match="ar.stop.kind: duration"):
        dataclasses.replace(cfg, ar=dataclasses.replace(cfg.ar, stop=StopFlagConfig()))
    with pytest.raises(ConfigError, match="needs alignment"):
        dataclasses.replace(
            cfg, alignment=None, ar=dataclasses.replace(cfg.ar, stop=StopFlagConfig())
        )


def test_aligned_melle_trains_on_durations_and_says_how_to_get_them() -> None:
    model = _aligned()
    loss, m = model.loss(_aligned_batch(), step=5)
    assert "ar/duration" in m and m["ar/duration"] > 0
    loss.backward()
    assert model.duration_predictor is not None
    assert model.duration_predictor.out.weight.grad is not None  # the predictor trains
    assert model.track is not None and model.track.position.weight.grad is not None
    with pytest.raises(ValueError, match="aligner"):
        model.loss(_batch(), step=5)


def test_the_track_changes_the_teacher_forced_output() -> None:
    """Another alignment of the same text and frames gives other outputs: the steps read it."""
    model = _aligned().eval()
    b = _aligned_batch()
    g = torch.Generator().manual_seed(0)
    _, m1 = model.loss(b, step=5, generator=g)
    b[B_.DURATIONS] = torch.tensor([[5, 1, 1, 1, 1], [1, 1, 4, 0, 0]])
    _, m2 = model.loss(b, step=5, generator=torch.Generator().manual_seed(0))
    assert not torch.isclose(m1["ar/reg_pre"], m2["ar/reg_pre"])


def test_aligned_generation_follows_the_durations() -> None:
    model = _aligned().eval()
    b = _aligned_batch()
    text, lens = b[B_.TEXT_TOKENS], b[B_.TEXT_LENS]
    prompt, plens, ptl = b[B_.MEL][:, :4], torch.tensor([4, 3]), torch.tensor([2, 1])
    d = torch.tensor([[9, 9, 3, 3, 3], [9, 5, 5, 0, 0]])  # prompt entries are ignored
    out = model.generate(text, lens, prompt_mel=prompt, prompt_mel_lens=plens,
                         prompt_text_lens=ptl, durations=d)  # fmt: skip
    assert [o.shape[0] for o in out] == [9, 10]
    fast = model.generate(text, lens, prompt_mel=prompt, prompt_mel_lens=plens,
                          prompt_text_lens=ptl, durations=d, speed=2.0)  # fmt: skip
    assert [o.shape[0] for o in fast] == [4, 5]  # round(9 / 2) and 10 / 2 frames
    own = model.generate(text, lens, prompt_mel=prompt, prompt_mel_lens=plens, prompt_text_lens=ptl)
    assert model.duration_predictor is not None
    assert all(o.shape[0] >= n for o, n in zip(own, (3, 2), strict=True))  # >= 1 per token


def test_aligned_generation_batch_equals_per_item() -> None:
    """Rows of different prompt and text lengths decode alone as in a batch (deterministic
    tiny config: mean latent, no pre-net dropout at inference)."""
    model = _aligned().eval()
    b = _aligned_batch()
    text, lens = b[B_.TEXT_TOKENS], b[B_.TEXT_LENS]
    prompt, plens, ptl = b[B_.MEL][:, :4], torch.tensor([4, 3]), torch.tensor([2, 1])
    d = torch.tensor([[0, 0, 3, 2, 3], [0, 4, 2, 0, 0]])
    both = model.generate(text, lens, prompt_mel=prompt, prompt_mel_lens=plens,
                          prompt_text_lens=ptl, durations=d)  # fmt: skip
    for i in range(2):
        S, P = int(lens[i]), int(plens[i])
        one = model.generate(text[i : i + 1, :S], lens[i : i + 1], prompt_mel=prompt[i : i + 1, :P],
                             prompt_mel_lens=plens[i : i + 1], prompt_text_lens=ptl[i : i + 1],
                             durations=d[i : i + 1, :S])  # fmt: skip
        assert torch.allclose(both[i], one[0], atol=1e-5)


def test_durations_are_refused_where_nothing_reads_them() -> None:
    b = _aligned_batch()
    text, lens = b[B_.TEXT_TOKENS], b[B_.TEXT_LENS]
    with pytest.raises(ValueError, match="frame-aligned MELLE only"):
        _model(reduction=1).eval().generate(text, lens, durations=b[B_.DURATIONS])
    with pytest.raises(ValueError, match="no duration predictor"):
        _aligned(predictor=False).eval().generate(text, lens)
