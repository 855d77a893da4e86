"""Aligned probe: is speech learnable from frame-aligned phonemes within a small budget?

A learnability yardstick for a recipe's data and codec (``valle-bench aligned-probe``). A small
convolutional net is given, for every code frame, its *aligned* phoneme (from the aligner's
``cut.custom["durations"]``: frames per phoneme token, summing to the code frames), its position
inside that phoneme and a speaker vector, and predicts the frame's codes (all Q codebooks) and,
when the codec has a continuous latent, the latent itself. Test utterances are then decoded with
their own reference durations. No alignment has to be learned, so a low WER here says the
data and codec carry what a TTS model needs in the budget, and a high WER of the family
models on the same data points at learning the alignment / code mapping.

Pieces:

- :func:`aligned_utterance` / :func:`load_aligned`: cuts -> :class:`AlignedUtterance` tensors;
- :class:`AlignedProbeNet`: phoneme + position + speaker -> residual conv stack -> heads;
- :func:`train_probe`: AdamW on random crops for a wall-clock and/or step budget;
- :func:`probe_waves`: test utterances -> waves of the systems ``latent``, ``codes`` and
  ``ground truth codes``.

The speaker vector of an utterance is taken from *another* utterance of the same speaker (so
the net cannot copy the target through it): the per-dimension mean and standard deviation of
its latent ``(2F,)``, or, for a codec without a latent, the normalised histogram of its first
codebook's codes ``(K,)``.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from valle.modules.local_conv import LocalConvStack

logger = logging.getLogger(__name__)

__all__ = [
    "SYSTEMS",
    "AlignedProbeNet",
    "AlignedUtterance",
    "ProbeBatch",
    "ProbeLog",
    "aligned_utterance",
    "codec_has_latent",
    "load_aligned",
    "make_batch",
    "probe_loss",
    "probe_waves",
    "speaker_vector",
    "train_probe",
]

#: The systems :func:`probe_waves` makes, in order.
SYSTEMS: tuple[str, ...] = ("latent", "codes", "ground truth codes")

_NO_DURATIONS = (
    "run the recipe's alignment stage (`prepare.sh --align true`) or "
    "`python -m valle.bin.align durations` to write them"
)


# --------------------------------------------------------------------------- data
@dataclass
class AlignedUtterance:
    """One aligned utterance as frame tensors (T code frames, Q codebooks, F latent dims).

    Attributes:
        id, speaker, text: the cut's id and its first supervision's speaker and text.
        durations: ``(N,)`` long, frames per phoneme token, summing to T.
        phonemes: ``(T,)`` long, the symbol id of each frame's aligned phoneme.
        position: ``(T, 2)`` float, per frame: fraction of its phoneme already passed
            (``k / d`` for the k-th frame, k = 0..d-1) and ``1 / d``.
        codes: ``(T, Q)`` long.
        latent: ``(T, F)`` float, the codec's normalised latent of the codes, or ``None``.
    """

    id: str
    speaker: str
    text: str
    durations: Tensor
    phonemes: Tensor
    position: Tensor
    codes: Tensor
    latent: Tensor | None

    @property
    def num_frames(self) -> int:
        return int(self.codes.shape[0])


def codec_has_latent(codec: Any) -> bool:
    """Whether ``codec`` maps codes to a continuous latent it can vocode
    (``codes_to_normalized``, ``denormalize`` and ``vocoder``; the mel-RVQ codec has them)."""
    return all(hasattr(codec, a) for a in ("codes_to_normalized", "denormalize", "vocoder"))


def _frame_position(durations: Tensor) -> Tensor:
    """Durations ``(N,)`` -> per-frame ``(T, 2)``: [k / d, 1 / d] for the k-th frame of a
    phoneme of d frames (the first two features of
    :func:`~valle.ar.frame_alignment.frame_track`)."""
    from valle.ar.frame_alignment import frame_track

    d = durations.long()[None]  # (1, N)
    return frame_track(d, int(d.sum()))[1][0, :, :2]


def aligned_utterance(cut: Any, symbols: Any, codec: Any) -> AlignedUtterance:
    """Tensors of one aligned cut (see :class:`AlignedUtterance`).

    Args:
        cut: a lhotse cut with ``codes`` (the codec-token stage), phonemes on its
            supervisions (the text-token stage) and ``custom["durations"]`` (the aligner).
        symbols: the :class:`~valle.text.SymbolTable` of ``tokens.txt``.
        codec: the codec of the codes (gives Q, K and, if it has one, the latent).

    Raises:
        ValueError: the cut lacks durations (the message says how to make them), their number
            differs from the phoneme tokens, they do not sum to the code frames, or the codes
            do not fit the codec.
    """
    from valle.data.featurizers import Durations
    from valle.data.prompt import load_codes
    from valle.data.tokenize import cut_phonemes

    durations = Durations()(cut)  # (N,) long; a clear error without them
    ids = torch.tensor(symbols.encode(cut_phonemes(cut)), dtype=torch.long)
    codes = load_codes(cut)  # (T, Q)
    if durations.numel() != ids.numel():
        raise ValueError(
            f"cut {cut.id}: {durations.numel()} durations for {ids.numel()} phoneme tokens; "
            f"the durations belong to other phonemes; {_NO_DURATIONS} again"
        )
    if durations.numel() and int(durations.min()) < 0:
        raise ValueError(f"cut {cut.id}: negative durations {durations.tolist()}")
    if int(durations.sum()) != codes.shape[0]:
        raise ValueError(
            f"cut {cut.id}: durations sum to {int(durations.sum())} frames but the cut has "
            f"{codes.shape[0]} code frames; the durations belong to other codes; "
            f"{_NO_DURATIONS} again"
        )
    q, k = int(codec.num_codebooks), int(codec.codebook_size)
    if codes.shape[1] != q or (codes.numel() and int(codes.max()) >= k):
        raise ValueError(
            f"cut {cut.id}: codes {tuple(codes.shape)} (max {int(codes.max())}) do not fit the "
            f"codec ({q} codebooks of {k}); pass the codec the cuts were tokenized with"
        )
    latent = None
    if codec_has_latent(codec):
        with torch.no_grad():
            latent = codec.codes_to_normalized(codes).float().cpu()  # (T, F)
    sup = cut.supervisions[0]
    return AlignedUtterance(
        id=str(cut.id),
        speaker=str(sup.speaker),
        text=str(sup.text),
        durations=durations,
        phonemes=torch.repeat_interleave(ids, durations),
        position=_frame_position(durations),
        codes=codes,
        latent=latent,
    )


def load_aligned(
    cuts: Iterable[Any], symbols: Any, codec: Any, max_items: int | None = None
) -> list[AlignedUtterance]:
    """:func:`aligned_utterance` of each cut (the first ``max_items`` if given)."""
    out: list[AlignedUtterance] = []
    for cut in cuts:
        if max_items is not None and len(out) >= max_items:
            break
        out.append(aligned_utterance(cut, symbols, codec))
    return out


def speaker_vector(utt: AlignedUtterance, codebook_size: int) -> Tensor:
    """The speaker features an utterance gives: ``(2F,)`` mean and std of its latent over
    time, or ``(K,)`` the share of each code of its first codebook when it has no latent."""
    if utt.latent is not None:
        z = utt.latent
        std = z.std(0) if z.shape[0] > 1 else torch.zeros(z.shape[1])
        return torch.cat([z.mean(0), std])
    counts = torch.bincount(utt.codes[:, 0], minlength=codebook_size).float()
    return counts / counts.sum().clamp(min=1.0)


def _by_speaker(utts: Sequence[AlignedUtterance]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, u in enumerate(utts):
        out.setdefault(u.speaker, []).append(i)
    return out


# --------------------------------------------------------------------------- model
@dataclass
class ProbeOutput:
    """``latent``: ``(B, T, F)`` or ``None``; ``logits``: ``(B, T, Q, K)``."""

    latent: Tensor | None
    logits: Tensor


class AlignedProbeNet(nn.Module):
    """Frame-aligned phonemes -> codes (and latent).

    ``h = Embedding(phoneme) + Linear(position) + Linear(speaker)``, then ``num_blocks``
    pre-norm residual Conv1d blocks (GELU, ``kernel_size``), then a codes head
    (``num_codebooks x codebook_size`` logits per frame) and, if ``latent_dim`` is set, a latent
    head (``latent_dim`` values per frame).

    Args:
        num_phonemes: size of the phoneme vocabulary (``len(SymbolTable)``).
        num_codebooks, codebook_size: Q and K of the codec.
        speaker_dim: S, the length of :func:`speaker_vector`.
        latent_dim: F of the codec's latent, or ``None`` for no latent head.
        channels, num_blocks, kernel_size: the conv stack (kernel_size odd).

    The conv stack is :class:`~valle.modules.local_conv.LocalConvStack`.

    Shapes: ``forward(phonemes (B, T) long, position (B, T, 2), speaker (B, S), lens (B,)
    valid frames, default all)`` ->
    :class:`ProbeOutput` with ``logits (B, T, Q, K)`` and ``latent (B, T, F)`` or ``None``.
    """

    def __init__(
        self,
        num_phonemes: int,
        num_codebooks: int,
        codebook_size: int,
        speaker_dim: int,
        latent_dim: int | None = None,
        channels: int = 256,
        num_blocks: int = 6,
        kernel_size: int = 5,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (same-length conv), got {kernel_size}")
        self.num_codebooks, self.codebook_size = num_codebooks, codebook_size
        self.phoneme = nn.Embedding(num_phonemes, channels)
        self.position = nn.Linear(2, channels)
        self.speaker = nn.Linear(speaker_dim, channels)
        self.blocks = LocalConvStack(channels, num_blocks, kernel_size)
        self.norm = nn.LayerNorm(channels)
        self.codes_head = nn.Linear(channels, num_codebooks * codebook_size)
        self.latent_head = nn.Linear(channels, latent_dim) if latent_dim else None

    def forward(
        self, phonemes: Tensor, position: Tensor, speaker: Tensor, lens: Tensor | None = None
    ) -> ProbeOutput:
        h = self.phoneme(phonemes) + self.position(position) + self.speaker(speaker)[:, None]
        if lens is None:  # every frame valid
            lens = torch.full((h.shape[0],), h.shape[1], dtype=torch.long, device=h.device)
        h = self.norm(self.blocks(h, lens))  # (B, T, C); padding never reaches valid frames
        logits = self.codes_head(h).view(*h.shape[:2], self.num_codebooks, self.codebook_size)
        latent = self.latent_head(h) if self.latent_head is not None else None
        return ProbeOutput(latent=latent, logits=logits)


# --------------------------------------------------------------------------- training
@dataclass
class ProbeBatch:
    """Padded crops: ``phonemes (B, T)``, ``position (B, T, 2)``, ``speaker (B, S)``,
    ``codes (B, T, Q)`` (-100 on padding), ``latent (B, T, F)`` or ``None``, ``mask (B, T)``."""

    phonemes: Tensor
    position: Tensor
    speaker: Tensor
    codes: Tensor
    latent: Tensor | None
    mask: Tensor


def make_batch(
    crops: Sequence[tuple[AlignedUtterance, int, int]], speakers: Sequence[Tensor]
) -> ProbeBatch:
    """Pad the crops ``(utterance, start, end)`` (frames) with their speaker vectors."""
    length = max(e - s for _, s, e in crops)

    def pad(x: Tensor, value: float = 0) -> Tensor:
        extra = length - x.shape[0]
        return F.pad(x, (0, 0) * (x.dim() - 1) + (0, extra), value=value)

    has_latent = all(u.latent is not None for u, _, _ in crops)
    return ProbeBatch(
        phonemes=torch.stack([pad(u.phonemes[s:e]) for u, s, e in crops]),
        position=torch.stack([pad(u.position[s:e]) for u, s, e in crops]),
        speaker=torch.stack(list(speakers)).float(),
        codes=torch.stack([pad(u.codes[s:e], -100) for u, s, e in crops]),
        latent=torch.stack([pad(u.latent[s:e]) for u, s, e in crops]) if has_latent else None,  # type: ignore[index]
        mask=torch.stack([pad(torch.ones(e - s, dtype=torch.bool)) for _, s, e in crops]),
    )


def probe_loss(
    net: AlignedProbeNet, batch: ProbeBatch, latent_weight: float = 1.0
) -> tuple[Tensor, dict[str, float]]:
    """``CE`` over all codebooks of the valid frames, plus ``latent_weight * (L1 + L2)`` on
    the latent (means over valid frames and dims) when the net and batch have one and the
    weight is > 0. Returns the loss and ``{"ce", "latent"}`` (``latent`` absent without)."""
    out = net(batch.phonemes, batch.position, batch.speaker, batch.mask.sum(1))
    k = out.logits.shape[-1]
    ce = F.cross_entropy(out.logits.reshape(-1, k), batch.codes.reshape(-1), ignore_index=-100)
    metrics = {"ce": float(ce.detach())}
    loss = ce
    if latent_weight > 0 and out.latent is not None and batch.latent is not None:
        m = batch.mask[..., None].float()  # (B, T, 1)
        diff = (out.latent - batch.latent) * m
        denom = m.sum() * diff.shape[-1]
        lat = (diff.abs().sum() + diff.pow(2).sum()) / denom.clamp(min=1.0)
        metrics["latent"] = float(lat.detach())
        loss = loss + latent_weight * lat
    return loss, metrics


@dataclass
class ProbeLog:
    """What a :func:`train_probe` run did: ``steps``, ``seconds`` of training, ``final``
    (mean of the last steps' metrics), ``history`` (metrics every ``log_every`` steps)."""

    steps: int = 0
    seconds: float = 0.0
    final: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "seconds": round(self.seconds, 2), "final": self.final,
                "history": self.history}  # fmt: skip


def _other_speaker_vector(
    utts: Sequence[AlignedUtterance],
    by_speaker: Mapping[str, list[int]],
    i: int,
    rng: random.Random,
    codebook_size: int,
) -> Tensor:
    others = [j for j in by_speaker[utts[i].speaker] if j != i] or [i]
    return speaker_vector(utts[rng.choice(others)], codebook_size)


def train_probe(
    train: Sequence[AlignedUtterance],
    num_phonemes: int,
    codebook_size: int,
    *,
    minutes: float | None = None,
    max_steps: int | None = None,
    batch_size: int = 16,
    crop_frames: int = 300,
    lr: float = 2e-3,
    latent_weight: float = 1.0,
    seed: int = 0,
    channels: int = 256,
    num_blocks: int = 6,
    kernel_size: int = 5,
    log_every: int = 50,
) -> tuple[AlignedProbeNet, ProbeLog]:
    """Train an :class:`AlignedProbeNet` on random crops of ``train`` until ``minutes`` of
    wall-clock or ``max_steps`` steps (whichever comes first; at least one must be given).

    Each step draws ``batch_size`` utterances, a random crop of at most ``crop_frames`` frames
    of each, and the speaker vector of another utterance of the same speaker (the utterance
    itself for a speaker with one). AdamW at ``lr``, gradients clipped at norm 1. The latent
    head exists only when the utterances carry a latent and ``latent_weight > 0``.
    Deterministic for a ``seed`` and a step budget (a time budget stops where it stops).
    """
    if not train:
        raise ValueError("no training utterances (check --cuts-train and --language)")
    if minutes is None and max_steps is None:
        raise ValueError("give a budget: minutes and/or max_steps")
    if batch_size < 1 or crop_frames < 1:
        raise ValueError(
            f"batch_size and crop_frames must be >= 1, got {batch_size}, {crop_frames}"
        )
    torch.manual_seed(seed)
    rng = random.Random(seed)
    first = train[0]
    q = int(first.codes.shape[1])
    latent_dim = None
    if first.latent is not None and latent_weight > 0:
        latent_dim = int(first.latent.shape[1])
    speaker_dim = int(speaker_vector(first, codebook_size).shape[0])
    net = AlignedProbeNet(num_phonemes, q, codebook_size, speaker_dim, latent_dim,
                          channels=channels, num_blocks=num_blocks, kernel_size=kernel_size)  # fmt: skip
    by_speaker = _by_speaker(train)
    lonely = sum(1 for v in by_speaker.values() if len(v) == 1)
    if lonely:
        logger.info(
            "%d training speaker(s) with one utterance use their own speaker vector", lonely
        )
    opt = torch.optim.AdamW(net.parameters(), lr=lr)
    log = ProbeLog()
    recent: list[dict[str, float]] = []
    budget_s = math.inf if minutes is None else 60.0 * minutes
    steps_cap = math.inf if max_steps is None else max_steps
    net.train()
    t0 = time.monotonic()
    while log.steps < steps_cap and time.monotonic() - t0 < budget_s:
        crops, speakers = [], []
        for _ in range(batch_size):
            i = rng.randrange(len(train))
            u = train[i]
            start = rng.randint(0, max(0, u.num_frames - crop_frames))
            crops.append((u, start, min(u.num_frames, start + crop_frames)))
            speakers.append(_other_speaker_vector(train, by_speaker, i, rng, codebook_size))
        loss, metrics = probe_loss(net, make_batch(crops, speakers), latent_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        recent = (recent + [metrics])[-20:]
        if log.steps % log_every == 0:
            log.history.append({"step": log.steps, **metrics})
            logger.info("step %d %.0fs %s", log.steps, time.monotonic() - t0,
                        " ".join(f"{k} {v:.3f}" for k, v in metrics.items()))  # fmt: skip
        log.steps += 1
    log.seconds = time.monotonic() - t0
    if recent:
        log.final = {k: sum(m[k] for m in recent) / len(recent) for k in recent[0]}
    net.eval()
    return net, log


# --------------------------------------------------------------------------- decoding
@torch.no_grad()
def probe_waves(
    net: AlignedProbeNet,
    items: Sequence[AlignedUtterance],
    codec: Any,
    speaker_pool: Sequence[AlignedUtterance] | None = None,
    seed: int = 0,
) -> dict[str, list[Tensor]]:
    """Decode each item with its own reference durations.

    The speaker vector of an item comes from another utterance of its speaker in
    ``speaker_pool`` (default ``items``), chosen by ``seed`` and the item id (so the choice does
    not depend on the order or number of items).

    Returns ``{system: [wave (T_i * hop,) float, ...]}`` in item order for the systems of
    :data:`SYSTEMS`: ``latent`` (the predicted latent, denormalised and vocoded; only when the
    net has a latent head and the codec a latent), ``codes`` (argmax codes through
    ``codec.decode``) and ``ground truth codes`` (the items' codes through ``codec.decode``).

    Raises:
        ValueError: an item's speaker has no other utterance in the pool.
    """
    pool = list(speaker_pool) if speaker_pool is not None else list(items)
    by_speaker = _by_speaker(pool)
    k = int(codec.codebook_size)
    latent = net.latent_head is not None and codec_has_latent(codec)
    out: dict[str, list[Tensor]] = {name: [] for name in SYSTEMS if latent or name != "latent"}
    net.eval()
    for u in items:
        others = [pool[j] for j in by_speaker.get(u.speaker, []) if pool[j].id != u.id]
        if not others:
            raise ValueError(
                f"speaker {u.speaker!r} of {u.id} has no other utterance to take a speaker "
                "vector from; the probe needs at least two cuts per test speaker"
            )
        other = random.Random(f"{seed}:{u.id}").choice(sorted(others, key=lambda o: o.id))
        spk = speaker_vector(other, k)[None]
        pred = net(u.phonemes[None], u.position[None], spk)
        if latent:
            mel = codec.denormalize(pred.latent[0])  # type: ignore[index]  # (T, F)
            out["latent"].append(codec.vocoder(mel[None])[0].float().cpu())
        codes = pred.logits[0].argmax(-1)  # (T, Q)
        out["codes"].append(codec.decode([codes])[0].float().cpu())
        out["ground truth codes"].append(codec.decode([u.codes])[0].float().cpu())
    return out
