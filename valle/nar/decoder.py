"""The non-autoregressive decoder for codebooks 2..Q (VALL-E Sec 4.2.2).

Shape legend: B batch, S text tokens, P prompt frames, T target frames, Q codebooks,
D model width, V codebook size.

Input for stage j (0-based codebook index ``j`` in 1..Q-1, the paper's stage j+1):
``[phonemes (S) ; prompt (P) ; target (T)]`` where a prompt frame embeds the sum of all Q
codebooks' embeddings and a target frame the sum of codebooks ``< j``. Attention is full
(non-causal) over the valid positions. Text and audio have separate sinusoidal positional
encodings; the target's audio indices continue after the prompt's. The stage enters through
the stage conditioning (:mod:`valle.nar.stage`, AdaLN in VALL-E).

Weight sharing (Sec 4.2.2: "the weights of the j-th prediction layer are the same as the
(j+1)-th acoustic embedding layer"): there are Q-1 prediction layers and Q embedding layers;
``heads[i]`` (0-based, predicting codebook ``i + 1``) *is* ``audio_embeddings[i + 1]``'s
weight, the embedding of the codebook it predicts. Every head is tied and every embedding is
used (lifeiteng/vall-e reads the sentence with codebook-indexed heads and leaves the last one
untied).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn

from valle.ar.decoder import check_lengths
from valle.ar.generate import Sampler
from valle.config import TransformerConfig, VocabConfig
from valle.data import batch as B_
from valle.data.batch import SynthesisInputs
from valle.modules.embedding import SinusoidalPositionalEncoding, TokenEmbedding
from valle.modules.local_conv import LocalConvStack
from valle.modules.metrics import masked_token_loss
from valle.modules.positions import AUDIO, TEXT, SegmentPositions
from valle.modules.transformer import TransformerStack
from valle.nar.prompts import PromptPolicy
from valle.nar.stage import STAGE_CONDITIONINGS, StageConditioning
from valle.registry import choose_component

__all__ = ["NARDecoder", "NARSection"]


class NARSection(Protocol):
    """What :meth:`NARDecoder.from_config` reads of a NAR config section."""

    @property
    def backbone(self) -> TransformerConfig: ...

    @property
    def stage(self) -> str: ...

    @property
    def prompt(self) -> Any:  # settings with ``build() -> PromptPolicy``
        ...


class NARDecoder(nn.Module):
    """Predicts codebook j from phonemes, the acoustic prompt and codebooks < j."""

    def __init__(
        self,
        *,
        text_vocab_size: int,
        codebook_size: int,
        num_codebooks: int,
        backbone: TransformerStack,
        stage: StageConditioning,
        prompt: PromptPolicy,
        dropout: float = 0.0,
        text_conditioner: nn.Module | None = None,
        audio_conditioner: nn.Module | None = None,
        local_convs: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if num_codebooks < 2:
            raise ValueError(f"the NAR needs Q >= 2 codebooks, got {num_codebooks}; set nar: null")
        d = backbone.d_model
        self.codebook_size = codebook_size
        self.num_codebooks = num_codebooks
        self.text_embedding = TokenEmbedding(text_vocab_size, d)
        self.text_position = SinusoidalPositionalEncoding(d, dropout)
        self.audio_position = SinusoidalPositionalEncoding(d, dropout)
        self.audio_embeddings = nn.ModuleList(
            TokenEmbedding(codebook_size, d) for _ in range(num_codebooks)
        )
        self.heads = nn.ModuleList(
            nn.Linear(d, codebook_size, bias=False) for _ in range(num_codebooks - 1)
        )
        # Tied input/output weights (Vaswani et al. 3.4): small weights, inputs scaled by sqrt(D),
        # so both the input embeddings and the initial logits have unit scale.
        self.embed_scale = math.sqrt(d)
        for emb in self.audio_embeddings:
            nn.init.normal_(cast(nn.Embedding, emb).weight, std=d**-0.5)
        for i, head in enumerate(self.heads):
            head.weight = self.audio_embeddings[i + 1].weight  # tied (Sec 4.2.2)
        self.text_conditioner = text_conditioner
        # optional: maps (audio inputs (B, P + T, D), its ``audio_cond``) to new audio inputs
        # (VALL-E R adds each frame's aligned phoneme: valle.nar.aligned)
        self.audio_conditioner = audio_conditioner
        # optional: local context over the prompt's and the target's frames, each on its own
        # (valle.modules.local_conv), after the conditioner, before the positions
        self.local_convs = local_convs
        self.stage = stage
        self.backbone = backbone
        self.prompt = prompt

    @classmethod
    def from_config(cls, cfg: NARSection, vocab: VocabConfig, **parts: Any) -> NARDecoder:
        """The NAR a config section describes (:class:`~valle.config.NARConfig`, or another
        section with a backbone, a stage and prompt settings that ``build()`` the policy, e.g.
        :class:`valle.nar.condition.ConditionNARConfig`); keyword ``parts`` are passed on."""
        b = cfg.backbone
        stage_cls = choose_component(STAGE_CONDITIONINGS, cfg.stage, "NAR stage conditioning")
        convs = getattr(cfg, "local_convs", None)
        if convs is not None:
            parts.setdefault(
                "local_convs", LocalConvStack(b.d_model, convs.layers, convs.kernel_size)
            )
        return cls(
            text_vocab_size=vocab.text_vocab_size,
            codebook_size=vocab.codebook_size,
            num_codebooks=vocab.num_codebooks,
            backbone=TransformerStack.from_config(b, stage_cls.norm_factory),
            stage=stage_cls(vocab.num_codebooks, b.d_model),
            prompt=cfg.prompt.build(),
            dropout=b.dropout,
            **parts,
        )

    # ------------------------------------------------------------------ forward

    def embed_codes(self, codes: Tensor, num: int) -> Tensor:
        """Sum of the embeddings of codebooks ``0..num-1``: codes (B, T, >=num) -> (B, T, D)."""
        x = self.audio_embeddings[0](codes[..., 0])
        for k in range(1, num):
            x = x + self.audio_embeddings[k](codes[..., k])
        return x * self.embed_scale  # (B, T, D)

    def forward(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        prompt_codes: Tensor,
        prompt_lens: Tensor,
        target_codes: Tensor,
        target_lens: Tensor,
        stage: int,
        language: Tensor | None = None,
        audio_cond: Tensor | None = None,
    ) -> Tensor:
        """Logits (B, T, V) for codebook ``stage`` (0-based, 1..Q-1) of the target frames.

        ``target_codes`` (B, T, >= stage): only codebooks ``< stage`` are read.
        ``audio_cond``: per-frame input of the ``audio_conditioner`` over ``[prompt ; target]``
        (e.g. aligned phoneme ids (B, P + T)).
        """
        check_lengths(text_tokens, text_lens)
        Q = self.num_codebooks
        if not 1 <= stage < Q:
            raise ValueError(f"stage must be in 1..{Q - 1}, got {stage}")
        if prompt_codes.shape[1] and prompt_codes.shape[-1] < Q:
            raise ValueError(f"prompt_codes needs all {Q} codebooks, has {prompt_codes.shape[-1]}")
        S, P, T = text_tokens.shape[1], prompt_codes.shape[1], target_codes.shape[1]
        p_text = SegmentPositions.span(TEXT, text_lens, S)
        p_prompt = SegmentPositions.span(AUDIO, prompt_lens, P)
        p_target = SegmentPositions.span(AUDIO, target_lens, T, start=prompt_lens)
        x_text = self.text_embedding(text_tokens)  # (B, S, D)
        if self.text_conditioner is not None:
            x_text = self.text_conditioner(x_text, language)
        x_text = self.text_position(x_text, p_text.index)
        x_audio = torch.cat(
            [self.embed_codes(prompt_codes, Q), self.embed_codes(target_codes, stage)], dim=1
        )  # (B, P + T, D)
        if self.audio_conditioner is not None:
            x_audio = self.audio_conditioner(x_audio, audio_cond)  # (B, P + T, D)
        if self.local_convs is not None:
            x_audio = torch.cat(
                [
                    self.local_convs(x_audio[:, :P], prompt_lens),
                    self.local_convs(x_audio[:, P:], target_lens),
                ],
                dim=1,
            )  # (B, P + T, D)
        x_audio = self.audio_position(x_audio, torch.cat([p_prompt.index, p_target.index], 1))
        x = torch.cat([x_text, x_audio], dim=1)  # (B, S + P + T, D)
        pos = p_text.cat(p_prompt).cat(p_target)
        x, pos, cond = self.stage(x, pos, stage)
        mask = pos.valid[:, None, :].expand(-1, len(pos), -1)  # (B, L, L) full attention
        h = self.backbone(x, mask, cond=cond)
        return self.heads[stage - 1](h[:, h.shape[1] - T :])  # (B, T, V)

    def teacher_forcing_split(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> tuple[Any, Tensor | None]:
        """The prompt policy's split of a training ``batch`` and the ``audio_cond`` the
        ``audio_conditioner`` reads over ``[prompt ; target]`` (None here; a NAR whose
        conditioner reads per-frame inputs overrides this). Read by :meth:`loss` and by the
        teacher-forced diagnostics (``valle.eval.teacher_forcing``), so both see one split."""
        return self.prompt(batch, generator), None

    def loss(
        self,
        batch: Mapping[str, Any],
        generator: torch.Generator | None = None,
        stage: int | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """CE on the target frames' codebook j, j ~ U{1..Q-1} per step (0-based; Sec 4.2.2)."""
        split, cond = self.teacher_forcing_split(batch, generator)
        if stage is None:
            stage = int(torch.randint(1, self.num_codebooks, (1,), generator=generator))
        logits = self(
            batch[B_.TEXT_TOKENS],
            batch[B_.TEXT_LENS],
            split.prompt_codes,
            split.prompt_lens,
            split.target_codes,
            split.target_lens,
            stage,
            self.batch_language(batch),
            audio_cond=cond,
        )
        return masked_token_loss(logits, split.target_codes[..., stage], split.target_mask())

    def batch_language(self, batch: Mapping[str, Any]) -> Any:
        """What :meth:`forward` takes as ``language`` for a training batch (per utterance
        here; a subclass may read per-token ids instead)."""
        return batch.get(B_.LANGUAGE)

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def generate(
        self,
        inputs: SynthesisInputs,
        first_codes: Tensor,
        lens: Tensor,
        *,
        sampler: Sampler | None = None,
        generator: torch.Generator | None = None,
        audio_cond: Tensor | None = None,
    ) -> Tensor:
        """Fill codebooks 2..Q stage by stage (greedy unless a ``sampler`` is given).

        Args:
            inputs: the zero-shot inputs (text = prompt transcript + target text, prompt
                codes, languages). The prompt policy decides what of them the NAR reads
                (:meth:`valle.nar.prompts.PromptPolicyBase.inference_inputs`), so that
                generation sees what training saw.
            first_codes: (B, T) first-codebook codes from the AR, right-padded.
            lens: (B,) valid frames per row.
            audio_cond: the ``audio_conditioner``'s input over the prompt the NAR reads
                (after its prompt policy) and the T frames, or None.
        Returns:
            (B, T, Q) long codes, zero beyond each row's length.
        """
        x = self.prompt.inference_inputs(inputs)
        B, T = first_codes.shape
        codes = torch.zeros(B, T, self.num_codebooks, dtype=torch.long, device=first_codes.device)
        valid = torch.arange(T, device=lens.device) < lens[:, None]  # (B, T)
        codes[..., 0] = first_codes * valid
        if T == 0:
            return codes
        for stage in range(1, self.num_codebooks):
            logits = self(
                x.text_tokens,
                x.text_lens,
                x.prompt_codes,
                x.prompt_lens,
                codes,
                lens,
                stage,
                x.language,
                audio_cond,
            )  # (B, T, V)
            if sampler is None:
                ids = logits.argmax(-1)
            else:
                flat = logits.reshape(B * T, -1)  # (B*T, V)
                empty = torch.zeros(B * T, 0, dtype=torch.long, device=flat.device)
                ids = sampler(flat, empty, generator).reshape(B, T)
            codes[..., stage] = ids * valid
        return codes
