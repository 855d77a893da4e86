"""Audio samples during training: synthesize one utterance, log its wave and mel to TensorBoard.

Shape legend: S text tokens, P prompt frames, T code frames, Q codebooks, N samples, F mel bins.

A :class:`SampleProvider` holds what one zero-shot synthesis needs (VALL-E, sec. 4.3: the
prompt's transcript followed by the target text, and the prompt's codes) plus the codec that
turns codes into a wave. :class:`SampleLogger` calls it every ``every_n_steps`` steps on rank 0.
Without a codec there is no provider, and the recipe simply does not add the callback.

Training samples use the continuation protocol (:meth:`SampleProvider.continuation`): the
prompt is the first ~3 s of a dev utterance and the text its whole transcript, so the model
continues mid-sentence. Prompting with a whole utterance (:meth:`SampleProvider.from_batch`)
hands the AR an acoustic prefix that already ends in end-of-utterance silence at a length past
most training utterances; a model that has learnt where utterances end (and one that has not
yet learnt to read) then emits EOS at once: the mini recipe logged 0.01 s samples that way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from valle.codec.base import Codec
from valle.data import batch as B

logger = logging.getLogger(__name__)


@dataclass
class SampleProvider:
    """One fixed synthesis request.

    Attributes:
        text_tokens: (S,) long, the prompt's transcript followed by the target text.
        prompt_codes: (P, Q) long, codes of the prompt utterance.
        codec: decodes the generated codes into a wave.
        language: language id (``valle.text.LANGUAGES``).
        reference_codes: optional (T, Q) codes of the target utterance, logged once as the
            ground truth to compare with.
        seed: seed of the sampling generator (the same sample each time for a given model).
        prompt_text_len: how many leading tokens of ``text_tokens`` are the prompt's
            transcript (None: unknown); passed to ``generate`` as ``prompt_text_lens`` for
            models whose NAR reads the target text alone.
    """

    text_tokens: Tensor
    prompt_codes: Tensor
    codec: Codec
    language: int = 0
    reference_codes: Tensor | None = None
    seed: int = 0
    prompt_text_len: int | None = None

    @classmethod
    def continuation(
        cls,
        batch: Mapping[str, Any],
        codec: Codec,
        index: int | None = None,
        prompt_seconds: float = 3.0,
        seed: int = 0,
        min_target_seconds: float = 1.0,
    ) -> SampleProvider:
        """Prompt = the first ``prompt_seconds`` of one utterance of a (dev) batch, text = its
        whole transcript; the rest of its codes is the reference (VALL-E sec. 5's continuation
        setting).

        ``index`` None: the first utterance at least ``prompt_seconds + min_target_seconds``
        long, else the longest. The prompt keeps at least one frame to continue; the prompt's
        share of the transcript is estimated in proportion to its duration.
        """
        lens = batch[B.AUDIO_LENS].tolist()
        if not lens:
            raise ValueError("the batch is empty; cannot make a sample from it")
        rate = float(codec.frame_rate)
        P = max(1, int(round(prompt_seconds * rate)))
        if index is None:
            wanted = P + max(1, int(round(min_target_seconds * rate)))
            long_enough = [b for b, n in enumerate(lens) if n >= wanted]
            index = long_enough[0] if long_enough else max(range(len(lens)), key=lambda b: lens[b])
        T = int(lens[index])
        P = min(P, max(T - 1, 1))
        S = int(batch[B.TEXT_LENS][index])
        codes = batch[B.AUDIO_CODES][index, :T]  # (T, Q)
        language = int(batch[B.LANGUAGE][index]) if B.LANGUAGE in batch else 0
        return cls(
            text_tokens=batch[B.TEXT_TOKENS][index, :S],  # (S,)
            prompt_codes=codes[:P],  # (P, Q)
            codec=codec,
            language=language,
            reference_codes=codes[P:],  # (T - P, Q)
            seed=seed,
            prompt_text_len=min(S, int(round(S * P / T))),
        )

    @classmethod
    def from_batch(
        cls,
        batch: Mapping[str, Any],
        codec: Codec,
        prompt_index: int = 0,
        target_index: int = 1,
        seed: int = 0,
    ) -> SampleProvider:
        """Prompt = utterance ``prompt_index`` of a (dev) batch, text = its transcript plus the
        transcript of utterance ``target_index`` (its codes become the reference)."""
        n = int(batch[B.TEXT_LENS].shape[0])
        if n == 0:
            raise ValueError("the batch is empty; cannot make a sample from it")
        target_index = target_index if target_index < n else prompt_index
        text_p = batch[B.TEXT_TOKENS][prompt_index, : int(batch[B.TEXT_LENS][prompt_index])]
        text_t = batch[B.TEXT_TOKENS][target_index, : int(batch[B.TEXT_LENS][target_index])]
        codes_p = batch[B.AUDIO_CODES][prompt_index, : int(batch[B.AUDIO_LENS][prompt_index])]
        codes_t = batch[B.AUDIO_CODES][target_index, : int(batch[B.AUDIO_LENS][target_index])]
        language = int(batch[B.LANGUAGE][target_index]) if B.LANGUAGE in batch else 0
        return cls(
            text_tokens=torch.cat([text_p, text_t]),  # (S,)
            prompt_codes=codes_p,  # (P, Q)
            codec=codec,
            language=language,
            reference_codes=codes_t,  # (T, Q)
            seed=seed,
            prompt_text_len=len(text_p),
        )

    @torch.no_grad()
    def synthesize(self, model: nn.Module) -> tuple[Tensor, int]:
        """Run ``model.generate`` on the request and decode it: ``(wave (N,), sample_rate)``."""
        device = next(model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(self.seed)
        text = self.text_tokens.to(device)[None]  # (1, S)
        prompt = self.prompt_codes.to(device)[None]  # (1, P, Q)
        generate: Any = model.generate  # the variant's zero-shot generate loop
        kwargs: dict[str, Any] = {}
        if self.prompt_text_len is not None:  # a NAR trained on the target text reads it alone
            kwargs["prompt_text_lens"] = torch.tensor([self.prompt_text_len], device=device)
        codes = generate(
            text,
            torch.tensor([text.shape[1]], device=device),
            prompt,
            torch.tensor([prompt.shape[1]], device=device),
            language=torch.tensor([self.language], device=device),
            generator=generator,
            **kwargs,
        )[0]  # (T, Q')
        make_wave: Any = getattr(model, "wave_maker", None)
        if codes.is_floating_point() and make_wave is not None:  # mel frames (T, F) of MELLE
            vocoder = make_wave()  # the model's own vocoder (its prompt was codes: unprompted)
            if codes.numel() == 0:
                return torch.zeros(1), int(vocoder.sample_rate)
            wave = vocoder(codes.float().cpu())[0]
            return torch.nan_to_num(wave.float()).clamp(-1.0, 1.0), int(vocoder.sample_rate)
        return self.decode(codes), int(self.codec.sample_rate)

    def decode(self, codes: Tensor) -> Tensor:
        """(T, Q') codes -> (N,) float wave on the CPU, clamped to [-1, 1]."""
        if codes.numel() == 0:
            return torch.zeros(1)
        wave = self.codec.decode([codes.long().cpu()])[0]
        return torch.nan_to_num(wave.float().flatten()).clamp(-1.0, 1.0)


def log_mel_image(wave: Tensor, sample_rate: int) -> Tensor:
    """(N,) wave -> (F, T) log-mel array for plotting (10 ms hop, 80 bins)."""
    from valle.codec.mel import LogMel, MelConfig

    n_fft = 1024 if sample_rate >= 16000 else 512
    cfg = MelConfig(
        sample_rate=sample_rate,
        n_fft=n_fft,
        win_length=n_fft,
        hop_length=max(1, sample_rate // 100),
        n_mels=80,
        fmax=None,
    )
    return LogMel(cfg)(wave.float())[0].T  # (F, T)


def mel_figure(wave: Tensor, sample_rate: int, title: str = "") -> Any:
    """A matplotlib figure of the wave's log-mel spectrogram (no pyplot state involved)."""
    from matplotlib.figure import Figure

    mel = log_mel_image(wave, sample_rate).numpy()  # (F, T)
    fig = Figure(figsize=(8, 3), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(mel, origin="lower", aspect="auto", interpolation="none")
    ax.set_xlabel("frame (10 ms)")
    ax.set_ylabel("mel bin")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def tensorboard_writer(trainer: L.Trainer) -> Any | None:
    """The SummaryWriter of the trainer's TensorBoard logger (None without one)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    for lg in trainer.loggers:
        if isinstance(lg, TensorBoardLogger):
            return lg.experiment
    return None


class SampleLogger(L.Callback):
    """Every ``every_n_steps`` steps, log a synthesized sample's audio and mel plot (rank 0)."""

    def __init__(self, provider: SampleProvider, every_n_steps: int) -> None:
        super().__init__()
        self.provider = provider
        self.every_n_steps = every_n_steps
        self._reference_logged = False

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        step = trainer.global_step
        if not self.every_n_steps or step == 0 or step % self.every_n_steps:
            return
        if trainer.is_global_zero:
            self.log_sample(trainer, pl_module, step)

    def log_sample(self, trainer: L.Trainer, pl_module: L.LightningModule, step: int) -> None:
        tb = tensorboard_writer(trainer)
        if tb is None:
            logger.debug("no TensorBoard logger: skipping the audio sample")
            return
        model = getattr(pl_module, "model", pl_module)
        was_training = model.training
        model.eval()
        try:
            wave, sr = self.provider.synthesize(model)
        except Exception:  # a failing sample must not end a long run; it is logged loudly
            logger.exception("step %d: synthesizing the training sample failed", step)
            return
        finally:
            model.train(was_training)
        tb.add_audio("sample/generated", wave[None], step, sample_rate=sr)  # (1, N)
        tb.add_figure("sample/generated_mel", mel_figure(wave, sr, f"step {step}"), step)
        if not self._reference_logged and self.provider.reference_codes is not None:
            ref = self.provider.decode(self.provider.reference_codes)
            tb.add_audio("sample/reference", ref[None], step, sample_rate=sr)
            tb.add_figure("sample/reference_mel", mel_figure(ref, sr, "reference"), step)
            prompt = self.provider.decode(self.provider.prompt_codes)
            tb.add_audio("sample/prompt", prompt[None], step, sample_rate=sr)
            self._reference_logged = True
        logger.info("step %d: logged a %.2f s sample", step, wave.numel() / sr)
