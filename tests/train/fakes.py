"""Small stand-ins for the training tests: a speech LM with the model contract, lhotse cuts,
a dataset turning cut batches into batch dicts, a codec and an experiment config.

Shape legend: B batch, S text tokens, T frames, Q codebooks, D width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from lhotse import CutSet
from lhotse.testing.dummies import dummy_cut
from torch import Tensor, nn

from valle.data import batch as B
from valle.data.dataset import collate_items

V = 16  # codebook size of the fake data
Q = 2  # codebooks
TEXT_V = 12


class FakeSpeechLM(nn.Module):
    """A bigram 'AR' over codebook 1 and a frame-wise 'NAR' for codebook 2, with dropout.

    ``loss(batch, stages)`` follows the model contract: (scalar loss, named metrics).
    """

    def __init__(self, d: int = 32, dropout: float = 0.1) -> None:
        super().__init__()
        self.text = nn.Embedding(TEXT_V, d)
        self.prev = nn.Embedding(V, d)
        self.ar_out = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(d, d), nn.ReLU(), nn.Linear(d, V)
        )
        self.nar_in = nn.Embedding(V, d)
        self.nar_out = nn.Sequential(nn.Dropout(dropout), nn.Linear(d, V))
        self.norm = nn.LayerNorm(d)

    def loss(self, batch: dict[str, Any], stages: tuple[str, ...] = ("ar", "nar")):
        codes = batch[B.AUDIO_CODES]  # (B, T, Q)
        lens = batch[B.AUDIO_LENS]
        t = codes.shape[1]
        mask = torch.arange(t)[None, :] < lens[:, None]  # (B, T)
        text = self.text(batch[B.TEXT_TOKENS]).mean(1, keepdim=True)  # (B, 1, D)
        total = torch.zeros(())
        metrics: dict[str, Tensor] = {}
        if "ar" in stages:
            prev = torch.nn.functional.pad(codes[:, :-1, 0], (1, 0))  # (B, T)
            h = self.norm(self.prev(prev) + text)  # (B, T, D)
            logits = self.ar_out(h)  # (B, T, V)
            ce = nn.functional.cross_entropy(logits[mask].float(), codes[..., 0][mask])
            acc = (logits[mask].argmax(-1) == codes[..., 0][mask]).float().mean()
            metrics.update({"ar/loss": ce.detach(), "ar/acc": acc})
            total = total + ce
        if "nar" in stages:
            logits = self.nar_out(self.norm(self.nar_in(codes[..., 0]) + text))  # (B, T, V)
            ce = nn.functional.cross_entropy(logits[mask].float(), codes[..., 1][mask])
            metrics["nar/loss"] = ce.detach()
            total = total + ce
        metrics["loss"] = total.detach()
        return total, metrics

    @torch.no_grad()
    def generate(
        self,
        text_tokens,
        text_lens,
        prompt_codes,
        prompt_lens,
        *,
        language=None,
        generator=None,
        **kwargs,
    ):
        """Greedy bigram continuation of the prompt's last code, 20 frames."""
        text = self.text(text_tokens).mean(1, keepdim=True)  # (B, 1, D)
        last = prompt_codes[:, -1, 0]  # (B,)
        out = []
        for _ in range(20):
            h = self.norm(self.prev(last)[:, None] + text)  # (B, 1, D)
            last = self.ar_out(h)[:, 0].argmax(-1)  # (B,)
            out.append(last)
        first = torch.stack(out, 1)  # (B, T)
        second = self.nar_out(self.norm(self.nar_in(first) + text)).argmax(-1)  # (B, T)
        codes = torch.stack([first, second], -1)  # (B, T, Q)
        return [c for c in codes]


def make_cuts(n: int = 24, seed: int = 0) -> CutSet:
    """``n`` dummy cuts of 0.6-2.0 s (ids ``dummy-mono-cut-XXXX``)."""
    gen = torch.Generator().manual_seed(seed)
    durs = (0.6 + 1.4 * torch.rand(n, generator=gen)).tolist()
    return CutSet.from_cuts(
        dummy_cut(i, duration=round(d, 2), recording_duration=round(d, 2))
        for i, d in enumerate(durs)
    )


class FakeDataset:
    """Cuts -> batch dicts: learnable codes from the cut index, plus one random draw
    from the global torch RNG per utterance (to check that batches are reseeded)."""

    frame_rate = 10.0

    def __init__(self) -> None:
        self.epochs_seen: set[int] = set()

    def set_epoch(self, epoch: int) -> None:
        self.epochs_seen.add(epoch)

    def item(self, cut) -> dict[str, Any]:
        idx = int(cut.id.split("-")[-1])
        t = max(2, int(cut.duration * self.frame_rate))
        step = 1 + idx % 3
        first = (torch.arange(t) * step + idx) % V  # (T,)
        jitter = int(torch.randint(0, 2, ()).item())  # global RNG: must be reproducible
        first = (first + jitter) % V
        codes = torch.stack([first, (first * 3 + 1) % V], -1)  # (T, Q)
        text = torch.tensor([1 + idx % (TEXT_V - 1), 1 + step, 1 + jitter])
        return {"text": text, "language": 0, "codes": codes, "cut_id": cut.id, "speaker": "s"}

    def __getitem__(self, cuts: CutSet) -> dict[str, Any]:
        return collate_items([self.item(c) for c in cuts])


def dummy_batch(n: int = 4, seed: int = 0) -> dict[str, Any]:
    torch.manual_seed(seed)
    return FakeDataset()[make_cuts(n, seed)]


class FakeCodec:
    """Codes (T, Q) -> a sine per frame whose pitch follows codebook 1 (8 kHz, 10 Hz frames)."""

    sample_rate = 8000
    frame_rate = 10.0
    num_codebooks = Q
    codebook_size = V

    def encode(self, wavs):  # pragma: no cover - not used by training
        raise NotImplementedError

    def decode(self, codes):
        hop = int(self.sample_rate / self.frame_rate)
        out = []
        for c in codes:
            f = 100.0 + 20.0 * c[:, 0].float().repeat_interleave(hop)  # (N,)
            t = torch.arange(f.numel()) / self.sample_rate
            out.append(0.3 * torch.sin(2 * torch.pi * f * t))
        return out


@dataclass(frozen=True)
class FakeModelConfig:
    """Stands in for a variant config inside an ExperimentConfig."""

    d: int = 32
    dropout: float = 0.1
