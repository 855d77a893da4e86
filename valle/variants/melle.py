"""MELLE (Meng et al. 2024, arXiv 2407.08551): one AR over continuous mel frames, no NAR.

Shape legend: B batch, S text tokens, P prompt frames, T mel frames, F mel bins,
r frames per step, N steps, E = r * F.

The wiring only. The AR is the shared :class:`~valle.ar.decoder.ARDecoder` with the parts of
:mod:`valle.ar.latent`: a :class:`~valle.ar.latent.MelFrameLayout` (r frames per step,
Sec 3.4), the :class:`~valle.ar.latent.PreNet` as its input embedding, the
:class:`~valle.ar.latent.LatentHead` (latent sampling module and stop logit, Sec 3.2) and the
:class:`~valle.ar.stops.StopFlag` stop; a :class:`~valle.modules.postnet.PostNet` refines the
whole output. Training (Sec 3.3) sums ``L_reg(y') + L_reg(y'') + lambda L_KL + beta L_flux +
gamma L_stop`` with lambda warmed up by the training step (``loss(..., step=)``).
Generation continues a mel prompt (``prompt_mel``) through the KV-cached generate loop and
returns refined log-mel frames; a vocoder (:mod:`valle.codec.vocoder`) makes the wave.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from valle.ar.alignment_prior import AlignmentPriorConfig, prior_term
from valle.ar.decoder import ARDecoder
from valle.ar.frame_alignment import (
    ConditionedInput,
    FrameTrackConditioner,
    FrameTrackConfig,
    FrameTrackDecoding,
    rescale_durations,
)
from valle.ar.generate import generate_ar, max_new_steps
from valle.ar.latent import (
    LatentConfig,
    LatentHead,
    LatentLossConfig,
    LatentSamplerConfig,
    MelFeatureConfig,
    MelFrameLayout,
    PreNetConfig,
    flux_loss,
    kl_loss,
    kl_weight,
    regression_loss,
    stop_loss,
    stop_targets,
)
from valle.ar.masks import MaskConfig, PrefixMaskConfig
from valle.ar.pointer import scale_durations, uniform_durations
from valle.ar.stops import StopConfig, StopFlagConfig
from valle.config import (
    ConfigError,
    NARConfig,
    TransformerConfig,
    VocabConfig,
    opt,
)
from valle.data import batch as B_
from valle.data.batch import pad_rows
from valle.data.featurizers import DataRequest, Durations, MelFrames
from valle.modules.duration_predictor import (
    DurationPredictor,
    DurationPredictorConfig,
    speaking_rate,
)
from valle.modules.mel_warp import MelWarp, MelWarpConfig, mel_centres
from valle.modules.postnet import PostNetConfig
from valle.modules.prompt_stats import PromptStatsConfig
from valle.modules.transformer import TransformerStack
from valle.registry import register_variant
from valle.sampling.latent import GaussianSampler
from valle.variants.tiny import TinySize, tiny_config

__all__ = ["MelleARConfig", "MelleConfig", "Melle"]

STAGES = ("ar",)


@dataclass(frozen=True)
class MelleARConfig:
    """MELLE's AR: backbone, reduction factor and its continuous parts."""

    backbone: TransformerConfig = opt(help="transformer size", factory=TransformerConfig)
    reduction: int = opt(1, "reduction factor r: mel frames per AR step (1..5)")
    prenet: PreNetConfig = opt(help="pre-net over each step's frames", factory=PreNetConfig)
    latent: LatentConfig | None = opt(
        help="latent sampling module (null: regress y' from the hidden state directly, the "
        "paper's ablation without latent sampling)",
        factory=LatentConfig,
    )
    mask: MaskConfig = opt(
        help="attention-mask policy over [text ; audio]", factory=PrefixMaskConfig
    )
    stop: StopConfig = opt(
        help="when generation stops (stop_flag; duration: with alignment)", factory=StopFlagConfig
    )
    max_len_ratio: float = opt(
        20.0, "generation bound: at most ceil(ratio * text tokens) new mel frames (per token)"
    )
    sampler: LatentSamplerConfig = opt(
        help="latent draw when generating", factory=LatentSamplerConfig
    )
    loss: LatentLossConfig = opt(help="training objective weights", factory=LatentLossConfig)
    alignment_prior: AlignmentPriorConfig | None = opt(
        None,
        "guided-attention prior on the audio-to-text attention (training only; not in the "
        "paper, null: off); its term is logged as ar/attn_prior",
    )

    def __post_init__(self) -> None:
        if not 1 <= self.reduction <= 5:
            raise ConfigError(f"ar.reduction must be in 1..5, got {self.reduction}")


@register_variant("melle")
@dataclass(frozen=True)
class MelleConfig:
    """MELLE: a continuous mel AR and a post-net; text facts come from the data."""

    vocab: VocabConfig = opt(help="vocabulary facts read from tokens.txt and the codec")
    mel: MelFeatureConfig = opt(help="log-mel frames modelled", factory=MelFeatureConfig)
    ar: MelleARConfig = opt(help="AR decoder over mel frames", factory=MelleARConfig)
    postnet: PostNetConfig | None = opt(
        help="convolutional post-net y' -> y'' (null: none)", factory=PostNetConfig
    )
    alignment: FrameTrackConfig | None = opt(
        None,
        "frame-aligned conditioning (not in the paper; null: off): every step gets its aligned "
        "phoneme and its place in it (VALL-E R's alignment, RALL-E's durations first); needs "
        "the aligner's durations in training, reduction 1 and the duration stop",
    )
    durations: DurationPredictorConfig | None = opt(
        None,
        "duration predictor for generation with alignment (null: durations must be given "
        "to generate)",
    )
    augment: MelWarpConfig | None = opt(
        None,
        "speaker augmentation in training (not in the paper; null: off): each utterance's mel "
        "frequency axis warped by its own random factor, so the voice must be read from the "
        "utterance's own earlier frames (valle.modules.mel_warp)",
    )
    prompt_stats: PromptStatsConfig | None = opt(
        None,
        "inference post-filter (not in the paper; null: off): the generated frames take the "
        "per-bin mean and spread of the prompt's speech frames, against the regression's "
        "over-smoothing (valle.modules.prompt_stats)",
    )
    nar: NARConfig | None = opt(None, "MELLE has no NAR (must stay null)")
    vocoder: str = opt(
        "griffin_lim",
        "wave maker of the output mels: griffin_lim (any mel settings, no weights) | "
        "hifigan_universal | hifigan_ljspeech (packaged HiFi-GAN; mel settings of melle_hifigan)",
    )

    stages: ClassVar[tuple[str, ...]] = STAGES

    def __post_init__(self) -> None:
        if self.nar is not None:
            raise ConfigError("melle has no NAR: set nar: null")
        from valle.codec.vocoder import VOCODERS

        if self.vocoder not in VOCODERS:
            raise ConfigError(
                f"melle: vocoder must be one of {tuple(VOCODERS)}, got {self.vocoder!r}"
            )
        duration_stop = getattr(self.ar.stop, "reads_durations", False)
        if self.alignment is not None:
            if self.ar.reduction != 1:
                raise ConfigError(
                    "melle: alignment conditions every frame, so it needs ar.reduction: 1, "
                    f"got {self.ar.reduction}"
                )
            if not duration_stop:
                raise ConfigError(
                    "melle: with alignment a row ends after its durations: set "
                    "ar.stop.kind: duration"
                )
        else:
            if duration_stop:
                raise ConfigError(
                    "melle: the duration stop reads durations, which only an aligned MELLE "
                    "has: set alignment, or ar.stop.kind: stop_flag"
                )
            if self.durations is not None:
                raise ConfigError("melle: durations (the predictor) needs alignment; set null")

    def build(self) -> Melle:
        a, b = self.ar, self.ar.backbone
        layout = MelFrameLayout(self.mel.n_mels, a.reduction)
        latent = a.latent
        prenet = a.prenet.build(layout.step_dim, b.d_model)
        audio_embedding: nn.Module = (
            prenet if self.alignment is None else ConditionedInput(prenet, layout.step_dim)
        )
        ar = ARDecoder(
            text_vocab_size=self.vocab.text_vocab_size,
            backbone=TransformerStack.from_config(b),
            mask=a.mask.build(),
            layout=layout,  # type: ignore[arg-type]
            audio_embedding=audio_embedding,
            head=LatentHead(
                b.d_model, layout.step_dim, latent is not None, (latent or LatentConfig()).hidden
            ),
            stop=a.stop.build(layout),
            dropout=b.dropout,
            max_len_ratio=a.max_len_ratio,
            default_sampler=a.sampler.build(),  # type: ignore[arg-type]
            alignment_prior=None if a.alignment_prior is None else a.alignment_prior.build(),
        )
        postnet = None if self.postnet is None else self.postnet.build(self.mel.n_mels)
        track = (
            None if self.alignment is None else self.alignment.build(ar.text_embedding, b.d_model)
        )
        durations = None if self.durations is None else self.durations.build(b.d_model)
        warp = None
        if self.augment is not None:
            m = self.mel.mel_config()
            warp = self.augment.build(mel_centres(m.n_mels, m.fmin, m.max_frequency, m.mel_scale))
        return Melle(ar, postnet, config=self, track=track, duration_predictor=durations,
                     mel_warp=warp)  # fmt: skip

    def data_request(self, stages: tuple[str, ...] | None = None) -> DataRequest:
        """Log-mel frames of each cut (``batch["mel"]``), computed from its audio; with
        alignment also the aligner's ``durations``."""
        mel = MelFrames(self.mel.mel_config())
        if self.alignment is None:
            return DataRequest(featurizers=(mel,))
        return DataRequest(featurizers=(mel, Durations()))

    @classmethod
    def tiny(
        cls,
        *,
        n_mels: int = 8,
        reduction: int = 2,
        overrides: Iterable[str] = (),
        **size: Any,
    ) -> MelleConfig:
        """A config small enough to train in seconds on a CPU; generation is deterministic
        (mean latent, no pre-net dropout at inference) so the contract can compare outputs.
        ``size``: :class:`~valle.variants.tiny.TinySize` keywords (its sampler kind is not
        MELLE's: the latent draw's scale is 0)."""
        s = TinySize(**size)
        ar = {"backbone": s.backbone(), "reduction": reduction, "max_len_ratio": s.max_len_ratio,
              "prenet": {"hidden": 16, "inference_dropout": 0.0}, "latent": {"hidden": 16},
              "sampler": {"scale": 0.0}}  # fmt: skip
        mel = {"n_mels": n_mels, "n_fft": 256, "win_length": 256, "hop_length": 64}
        return tiny_config(cls, s, overrides, mel=mel, ar=ar,
                           postnet={"channels": 16, "layers": 3})  # fmt: skip


class Melle(nn.Module):
    """Mel AR + post-net. ``loss(batch, step=)`` for training, ``generate(...)`` for TTS."""

    def __init__(
        self,
        ar: ARDecoder,
        postnet: nn.Module | None,
        config: MelleConfig,
        track: FrameTrackConditioner | None = None,
        duration_predictor: DurationPredictor | None = None,
        mel_warp: MelWarp | None = None,
    ) -> None:
        super().__init__()
        self.ar = ar
        self.postnet = postnet
        self.config = config
        self.track = track  # per-frame conditioning from durations (config.alignment)
        self.duration_predictor = duration_predictor
        self.mel_warp = mel_warp  # training-only speaker augmentation (config.augment)

    @property
    def layout(self) -> MelFrameLayout:
        return self.ar.layout  # type: ignore[return-value]

    @property
    def head(self) -> LatentHead:
        return self.ar.head  # type: ignore[return-value]

    @property
    def n_mels(self) -> int:
        return self.config.mel.n_mels

    def wave_maker(self, name: str | None = None, device: str | torch.device = "cpu") -> Any:
        """The vocoder that turns this model's mels into waves (``config.vocoder`` unless
        ``name``): a :class:`~valle.codec.vocoder.Vocoder` made for ``config.mel``, so its
        ``logmel`` also makes the mel prompts (``prompt_mel``)."""
        from valle.codec.vocoder import load_vocoder

        return load_vocoder(name or self.config.vocoder, self.config.mel.mel_config(), device)

    def refine(self, frames: Tensor, mask: Tensor) -> Tensor:
        """``y''`` (B, T, F) from ``y'`` (B, T, F) (``y'`` itself without a post-net)."""
        return frames if self.postnet is None else self.postnet(frames, mask)

    def loss(
        self,
        batch: Mapping[str, Any],
        stages: Iterable[str] = STAGES,
        generator: torch.Generator | None = None,
        *,
        step: int | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """MELLE's objective (Sec 3.3) on ``batch["mel"]``; metrics ``ar/<term>``.

        ``step``: the training step, for the KL warm-up (``valle.train`` passes it; None
        uses lambda after the warm-up). ``generator``: the latent noise and the pre-net's
        dropout masks (the global RNG when None).
        """
        stages = tuple(stages)
        if stages != STAGES:
            raise ValueError(f"stages must be {STAGES} (MELLE has one part), got {stages}")
        if B_.MEL not in batch:
            raise ValueError(
                "the batch has no 'mel' frames: MELLE reads them (its data request's MelFrames)"
            )
        w = self.config.ar.loss
        mel, mel_lens = batch[B_.MEL], batch[B_.lens_key(B_.MEL)]
        if self.mel_warp is not None:  # identity in eval mode
            mel = self.mel_warp(mel, generator)
        tf = self.layout.teacher_forcing(mel, mel_lens)  # steps (B, N, E)
        prenet: Any = self.ar.audio_embedding
        text, text_lens = batch[B_.TEXT_TOKENS], batch[B_.TEXT_LENS]
        inputs, extra = tf.inputs, {}
        if self.track is not None:
            inputs, d = self._track_inputs(batch, tf.inputs, tf.lens)
            if self.duration_predictor is not None:  # its loss on the same mel-frame durations
                x = self.ar.text_embedding(text)  # (B, S, D)
                rate = speaking_rate(tf.lens, text_lens)
                extra["duration"] = self.duration_predictor.loss(x, text_lens, rate, d)
        prior = self.ar.alignment_prior if self.training else None
        with prenet.drawing_from(generator), prior_term(prior, self.ar.backbone) as guided:
            h = self.ar.hidden(text, text_lens, inputs, tf.lens, batch.get(B_.LANGUAGE))
        # h: (B, N, D)
        parts = self.head.split(self.head(h))
        z = self.head.draw(parts, GaussianSampler(1.0), generator)  # (B, N, E): mu + sigma eps
        frame_mask = tf.mask[..., 0].repeat_interleave(self.layout.frames_per_step, 1)  # (B, T')
        to_frames = self.layout.from_steps
        y = to_frames(tf.targets)  # (B, T', F)
        y1 = to_frames(self.head.frames(z))
        y2 = self.refine(y1, frame_mask)
        mu = to_frames(parts.mu)
        terms = {
            "reg_pre": regression_loss(y1, y, frame_mask),
            "reg_post": regression_loss(y2, y, frame_mask),
            "flux": flux_loss(mu, y, frame_mask),
            "stop": stop_loss(
                parts.stop, stop_targets(tf.lens, h.shape[1]), tf.mask[..., 0], w.stop_pos_weight
            ),
        }
        terms.update(extra)
        lam = kl_weight(step, w.kl_weight, w.kl_warmup_steps)
        total = terms["reg_pre"] + terms["reg_post"]
        if "duration" in extra:
            assert self.config.durations is not None
            total = total + self.config.durations.weight * extra["duration"]
        total = total + w.flux_weight * terms["flux"] + w.stop_weight * terms["stop"]
        total = guided.add(total, terms, text.shape[1], text_lens, tf.lens)
        if parts.logvar is not None:
            terms["kl"] = kl_loss(mu, to_frames(parts.logvar), y, frame_mask)
            total = total + lam * terms["kl"]
        metrics = {f"ar/{k}": v.detach() for k, v in terms.items()}
        metrics["ar/kl_weight"] = torch.tensor(lam)
        metrics["ar/loss"] = total.detach()
        metrics["loss"] = total.detach()
        return total, metrics

    def teacher_forcing_inputs(
        self, batch: Mapping[str, Any], inputs: Tensor, lens: Tensor
    ) -> Tensor:
        """The AR's teacher-forced inputs for ``inputs`` (B, N, E), ``lens`` (B,) steps:
        themselves, or with alignment each step's frame track packed behind them (B, N, E + D),
        from ``batch["durations"]`` (what :meth:`loss` feeds the AR; diagnostics use it)."""
        if self.track is None:
            return inputs
        return self._track_inputs(batch, inputs, lens)[0]

    def _track_inputs(
        self, batch: Mapping[str, Any], inputs: Tensor, lens: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Teacher-forced inputs (B, N, E) with each step's frame track packed behind them
        (B, N, E + D), and the durations (B, S) in mel frames they were made from.

        The aligner's durations count codec frames; they are rescaled to the mel frames."""
        assert self.track is not None
        if B_.DURATIONS not in batch:
            raise ValueError(
                "this MELLE is frame-aligned (config alignment) and trains on phoneme "
                f"durations, but the batch has no {B_.DURATIONS!r}: run the aligner stage on the "
                "cuts first (prepare.sh --align true; python -m valle.bin.align durations)"
            )
        text = batch[B_.TEXT_TOKENS]
        d = batch[B_.DURATIONS].long()
        if d.shape[0] != text.shape[0] or d.shape[1] > text.shape[1]:
            raise ValueError(
                f"durations {tuple(d.shape)} do not fit text_tokens {tuple(text.shape)}: one "
                "duration per phoneme token; re-run the aligner with this symbol table"
            )
        d = torch.nn.functional.pad(d, (0, text.shape[1] - d.shape[1]))
        d = rescale_durations(d, lens)  # (B, S) mel frames per token, summing to lens
        cond = self.track(text, d, inputs.shape[1], lens)  # (B, N, D)
        return torch.cat([inputs, cond.to(inputs.dtype)], -1), d

    @torch.no_grad()
    def predict_durations(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        prompt_lens: Tensor,
        prompt_text_lens: Tensor,
    ) -> Tensor:
        """Mel frames per token (B, S) from the duration predictor; the voice's speaking
        rate is the prompt's ``log(frames / transcript tokens)`` (the training mean for a
        row without a prompt or transcript)."""
        if self.duration_predictor is None:
            raise ValueError(
                "this aligned MELLE has no duration predictor (config durations: null): pass "
                "durations to generate (frames per target token), e.g. from a reference"
            )
        x = self.ar.text_embedding(text_tokens)
        rate = speaking_rate(prompt_lens, prompt_text_lens)
        return self.duration_predictor.predict(x, text_lens, rate)

    def benchmark_decoding(
        self, text_tokens: Tensor, text_lens: Tensor, prompt_lens: Tensor, frames: int
    ) -> FrameTrackDecoding | None:
        """The decoding a speed benchmark times for ``frames`` new frames after prompts of
        ``prompt_lens`` (B,) frames: None for a plain MELLE (``ar.decoding``); with alignment
        the frame track of a call whose first half of each text is the prompt's transcript and
        whose target tokens share at least ``frames`` frames evenly."""
        if self.track is None:
            return None
        S = text_tokens.shape[1]
        ptl = text_lens // 2  # (B,)
        idx = torch.arange(S, device=text_lens.device)
        n_target = (text_lens - ptl).clamp(min=1)  # (B,)
        each = (-(-frames // n_target)).clamp(min=1)  # (B,) ceil(frames / targets)
        target = (idx >= ptl[:, None]) & (idx < text_lens[:, None])
        durations = torch.where(target, each[:, None], 0)  # (B, S)
        decoding, _ = self._aligned_decoding(
            text_tokens, text_lens, prompt_lens, ptl, None, durations, None
        )
        return decoding

    def _aligned_decoding(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        prompt_lens: Tensor,
        prompt_text_lens: Tensor | None,
        prompt_durations: Tensor | None,
        durations: Tensor | None,
        speed: float | None,
    ) -> tuple[FrameTrackDecoding, Tensor]:
        """The decoding of one aligned call and the target durations (B, S) in mel frames
        (0 outside the target tokens)."""
        assert self.track is not None
        S = text_tokens.shape[1]
        idx = torch.arange(S, device=text_lens.device)
        ptl = torch.zeros_like(text_lens) if prompt_text_lens is None else prompt_text_lens
        target = (idx >= ptl[:, None]) & (idx < text_lens[:, None])  # (B, S)
        if durations is None:
            durations = self.predict_durations(text_tokens, text_lens, prompt_lens, ptl)
        d_t = torch.where(target, durations.long().clamp(min=1), 0)  # (B, S)
        if speed is not None:
            d_t = scale_durations(d_t, speed, keep=target)
        transcript = ptl > 0
        if prompt_durations is None:
            prompt_durations = uniform_durations(prompt_lens, ptl, S)
        d_p = torch.where(idx < ptl[:, None], prompt_durations.long().clamp(min=0), 0)
        d_p = torch.where(transcript[:, None], rescale_durations(d_p, prompt_lens), 0)
        unaligned = torch.where(transcript, 0, prompt_lens)  # prompt frames without phonemes
        full = d_p + d_t  # (B, S): the prompt's frames, then the target's
        total = prompt_lens + d_t.sum(-1)  # (B,) frames of the whole track
        L = int(total.max()) + 1
        cond = self.track(text_tokens, full, L, total, unaligned=unaligned)  # (B, L, D)
        return FrameTrackDecoding(self.ar, cond), d_t

    @torch.no_grad()
    def generate(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        prompt_codes: Tensor | None = None,
        prompt_lens: Tensor | None = None,
        *,
        prompt_mel: Tensor | None = None,
        prompt_mel_lens: Tensor | None = None,
        language: Tensor | None = None,
        sampler: Any | None = None,
        generator: torch.Generator | None = None,
        max_len_ratio: float | None = None,
        prompt_text_lens: Tensor | None = None,
        prompt_durations: Tensor | None = None,
        durations: Tensor | None = None,
        speed: float | None = None,
    ) -> list[Tensor]:
        """Zero-shot TTS: continue each mel prompt with speech for the text (Sec 3.4).

        Call ``model.eval()`` first. MELLE's prompt is ``prompt_mel`` (B, P, F) log-mel
        frames made with ``config.mel`` (none: no acoustic prompt); float ``prompt_codes``
        (a :class:`~valle.codec.vocoder.MelWaveMaker`'s frames, as the Synthesizer passes)
        serve as it when ``prompt_mel`` is None; integer codec codes are ignored. ``sampler``: ``(mu, logvar, generator) ->
        z`` (default: the config's). ``generator`` also draws the pre-net's inference dropout.

        A frame-aligned MELLE (``config.alignment``) also reads: ``prompt_text_lens`` (B,)
        the prompt transcript's tokens at the start of the text (None: 0, the prompt's
        frames get no phoneme), ``prompt_durations`` (B, S) frames per prompt-transcript token
        (None: the prompt's frames split uniformly), ``durations`` (B, S) mel frames per
        target token to force (None: the duration predictor's; prompt entries ignored) and
        ``speed`` (0.8: slower, 1.25: faster; scales the durations). Its rows end after
        their durations.

        Returns:
            B float tensors (T_b, F): the post-net's log-mel frames of the continuation
            (matched to the row's prompt when ``config.prompt_stats`` is set), at most
            ``ceil(max_len_ratio * S_b)`` frames each (aligned: the target's durations).
        """
        if self.track is None and (
            durations is not None or prompt_durations is not None or speed is not None
        ):
            raise ValueError(
                "durations, prompt_durations and speed steer a frame-aligned MELLE only; this "
                "model has no alignment (config alignment: null)"
            )
        B = text_tokens.shape[0]
        if prompt_mel is None and prompt_codes is not None and prompt_codes.is_floating_point():
            # the frames of a mel wave maker (valle.codec.vocoder.MelWaveMaker.encode) standing
            # in the codec's place: the Synthesizer's prompt
            prompt_mel, prompt_mel_lens = prompt_codes, prompt_lens
        if prompt_mel is None:
            prompt_mel = text_tokens.new_zeros((B, 0, self.n_mels), dtype=torch.float32)
            prompt_mel_lens = torch.zeros_like(text_lens)
        assert prompt_mel_lens is not None
        prenet: Any = self.ar.audio_embedding
        dtype = next(self.ar.parameters()).dtype  # bfloat16 weights (quantize="bf16") read bf16
        decodable: Any = self.ar
        conditions: dict[str, Tensor] = {}
        ratio = self.ar.max_len_ratio if max_len_ratio is None else max_len_ratio
        if self.track is not None:
            decodable, d_t = self._aligned_decoding(
                text_tokens, text_lens, prompt_mel_lens, prompt_text_lens, prompt_durations,
                durations, speed,
            )  # fmt: skip
            conditions["durations"] = d_t
            need = d_t.sum(-1).double() + 0.5  # (B,) frames the durations ask for
            ratio = max(ratio, float((need / text_lens.double()).max()))
        with prenet.drawing_from(generator):
            steps = generate_ar(
                decodable, text_tokens, text_lens, prompt_mel.to(dtype), prompt_mel_lens,
                language=language, sampler=sampler, generator=generator,
                max_len_ratio=ratio, conditions=conditions,
            )  # fmt: skip  # B x (N_b, E)
        bound = max_new_steps(text_lens, ratio).tolist()  # frames
        rows = [self.layout.from_steps(s)[:n] for s, n in zip(steps, bound, strict=True)]
        frames, lens = pad_rows(rows, 0.0)  # (B, T, F)
        if frames.shape[1] == 0:
            return rows
        mask = torch.arange(frames.shape[1], device=lens.device) < lens[:, None]  # (B, T)
        refined = self.refine(frames, mask).float()  # float32 frames for the vocoder
        out = [refined[b, : int(n)] for b, n in enumerate(lens.tolist())]
        match = self.config.prompt_stats
        if match is not None:  # the prompt's per-bin statistics (its rows' own prompts)
            out = [match(o, prompt_mel[b, : int(prompt_mel_lens[b])]) for b, o in enumerate(out)]
        return out
