"""Training dataset, collate and DDP-aware sampler over tokenized cuts.

Shape legend: B batch, S text tokens, T code frames, P prompt frames, Q codebooks.

A lhotse sampler yields a ``CutSet`` per batch (bucketed by duration, so the padding is small);
:class:`SpeechTokenDataset` turns it into the batch dict of :mod:`valle.data.batch`:

- ``text_tokens`` (B, S) long, ``text_lens`` (B,): phoneme ids, padded with ``PAD_ID``
- ``language`` (B,) long: ``valle.text.LANGUAGES`` id
- ``audio_codes`` (B, T, Q) long, ``audio_lens`` (B,)
- ``prompt_codes`` (B, P, Q) long, ``prompt_lens`` (B,): only with a prompt provider
- ``cut_ids``, ``speakers``: list[str] (B)
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.dataset import DynamicBucketingSampler
from torch.utils.data import DataLoader, Dataset

from valle.data import batch as B
from valle.data.prompt import PromptProvider, load_codes
from valle.data.tokenize import cut_phonemes, supervision_language

logger = logging.getLogger(__name__)

__all__ = [
    "SpeechTokenDataset",
    "pad_sequences",
    "collate_items",
    "make_sampler",
    "make_dataloader",
]


def pad_sequences(seqs: Sequence[torch.Tensor], pad_value: int = B.PAD_ID) -> torch.Tensor:
    """Right-pad tensors ``(L_b, ...)`` to ``(B, max L, ...)``."""
    if not seqs:
        raise ValueError("cannot pad an empty list of sequences")
    longest = max(s.shape[0] for s in seqs)
    out = seqs[0].new_full((len(seqs), longest, *seqs[0].shape[1:]), pad_value)  # (B, L, ...)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
    return out


def collate_items(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Collate per-utterance items into the batch dict of :mod:`valle.data.batch`.

    Each item has ``text`` (S_b,) long, ``language`` int, ``codes`` (T_b, Q) long, ``cut_id``,
    ``speaker`` and optionally ``prompt`` (P_b, Q) long.
    """
    batch: dict[str, Any] = {
        B.TEXT_TOKENS: pad_sequences([it["text"] for it in items]),  # (B, S)
        B.TEXT_LENS: torch.tensor([len(it["text"]) for it in items], dtype=torch.long),
        B.LANGUAGE: torch.tensor([it["language"] for it in items], dtype=torch.long),
        B.AUDIO_CODES: pad_sequences([it["codes"] for it in items]),  # (B, T, Q)
        B.AUDIO_LENS: torch.tensor([it["codes"].shape[0] for it in items], dtype=torch.long),
        B.CUT_IDS: [it["cut_id"] for it in items],
        B.SPEAKERS: [it["speaker"] for it in items],
    }
    if "prompt" in items[0]:
        batch[B.PROMPT_CODES] = pad_sequences([it["prompt"] for it in items])  # (B, P, Q)
        batch[B.PROMPT_LENS] = torch.tensor(
            [it["prompt"].shape[0] for it in items], dtype=torch.long
        )
    return batch


class SpeechTokenDataset(Dataset):
    """Map-style dataset indexed by a lhotse sampler's ``CutSet`` (one batch per index).

    Args:
        symbols: phoneme table (``valle.text.SymbolTable``, from ``data/tokens.txt``).
        prompt: acoustic prompt provider, or ``None`` for batches without ``prompt_codes``.
        default_language: language code for supervisions without a language.
    """

    def __init__(
        self,
        symbols: Any,
        prompt: PromptProvider | None = None,
        default_language: str | None = None,
    ) -> None:
        self.symbols = symbols
        self.prompt = prompt
        self.default_language = default_language

    def set_epoch(self, epoch: int) -> None:
        if self.prompt is not None:
            self.prompt.set_epoch(epoch)

    def item(self, cut: Cut) -> dict[str, Any]:
        """One utterance's tensors (see :func:`collate_items`)."""
        from valle.text import language_id

        codes = load_codes(cut)  # (T, Q)
        sup = cut.supervisions[0]
        lang = supervision_language(sup.language, self.default_language)
        it: dict[str, Any] = {
            "text": torch.tensor(self.symbols.encode(cut_phonemes(cut)), dtype=torch.long),
            "language": language_id(lang),
            "codes": codes,
            "cut_id": cut.id,
            "speaker": sup.speaker,
        }
        if self.prompt is not None:
            it["prompt"] = self.prompt(cut, codes)  # (P, Q)
        return it

    def __getitem__(self, cuts: CutSet) -> dict[str, Any]:
        if not isinstance(cuts, CutSet):
            raise TypeError(
                "SpeechTokenDataset is indexed by a CutSet from a lhotse sampler; use "
                "make_dataloader(...) or DataLoader(dataset, sampler=..., batch_size=None)"
            )
        return collate_items([self.item(c) for c in cuts])

    def __len__(self) -> int:  # pragma: no cover - the sampler defines the epoch
        raise TypeError("SpeechTokenDataset has no length; the sampler decides the batches")


def make_sampler(
    cuts: CutSet,
    max_duration: float,
    num_buckets: int = 10,
    shuffle: bool = True,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
) -> DynamicBucketingSampler:
    """lhotse ``DynamicBucketingSampler`` by duration, with the DDP rank given explicitly.

    Args:
        cuts: the split to sample from.
        max_duration: seconds of target audio per batch (per rank).
        num_buckets: duration buckets (clamped to the number of cuts).
        shuffle, seed: order of the cuts (change per epoch with ``sampler.set_epoch``).
        rank, world_size: this process's DDP rank and the number of ranks; every rank must
            build its sampler with the same ``seed`` so they split one shuffled stream.
        drop_last: drop the last partial batches (keeps ranks in step exactly).
    """
    if max_duration <= 0:
        raise ValueError(f"max_duration must be > 0 seconds, got {max_duration}")
    if not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    longest = max((c.duration for c in cuts), default=0.0)
    if longest > max_duration:
        raise ValueError(
            f"a cut lasts {longest:.1f} s > max_duration {max_duration} s; raise --max-duration "
            "or filter long cuts"
        )
    n = len(cuts)
    with warnings.catch_warnings():
        # eager cut sets are what the prompt providers index; lhotse's advice to read lazily
        # is about memory on huge corpora and does not change the batches
        warnings.filterwarnings("ignore", message=".*eagerly read CutSet.*")
        return DynamicBucketingSampler(
            cuts,
            max_duration=max_duration,
            num_buckets=max(1, min(num_buckets, n)),
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            rank=rank,
            world_size=world_size,
        )


def make_dataloader(
    cuts: CutSet,
    dataset: SpeechTokenDataset,
    max_duration: float,
    num_buckets: int = 10,
    shuffle: bool = True,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    """A ``DataLoader`` whose batches are ``dataset[cutset]`` dicts from :func:`make_sampler`."""
    sampler = make_sampler(
        cuts,
        max_duration=max_duration,
        num_buckets=num_buckets,
        shuffle=shuffle,
        seed=seed,
        rank=rank,
        world_size=world_size,
        drop_last=drop_last,
    )
    return DataLoader(
        dataset,
        sampler=sampler,
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
