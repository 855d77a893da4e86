"""Training dataset, collate and DDP-aware sampler over tokenized cuts.

Shape legend: B batch, S text tokens, T code frames, P prompt frames, Q codebooks.

A lhotse sampler yields a ``CutSet`` per batch (bucketed by duration, so the padding is small);
:class:`SpeechTokenDataset` turns it into the batch dict of :mod:`valle.data.batch`:

- ``text_tokens`` (B, S) long, ``text_lens`` (B,): phoneme ids, padded with ``PAD_ID``
- ``language`` (B,) long: ``valle.text.LANGUAGES`` id
- ``audio_codes`` (B, T, Q) long, ``audio_lens`` (B,)
- ``prompt_codes`` (B, P, Q) long, ``prompt_lens`` (B,), ``prompt_start`` (B,): only with a
  prompt provider, which the training setup gives only to a model that asks for a second
  utterance (``valle.data.featurizers.DataRequest``); otherwise no other cut is read
- ``cut_ids``, ``speakers``: list[str] (B)
- one key per featurizer the model asked for (``valle.data.featurizers``), padded
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
from valle.data.featurizers import Featurizer
from valle.data.prompt import PromptProvider, load_codes
from valle.data.tokenize import cut_phonemes, supervision_language

logger = logging.getLogger(__name__)

__all__ = [
    "SpeechTokenDataset",
    "pad_sequences",
    "collate_items",
    "collate_rows",
    "make_sampler",
    "make_dataloader",
]


def pad_sequences(seqs: Sequence[torch.Tensor], pad_value: float = B.PAD_ID) -> torch.Tensor:
    """Right-pad tensors ``(L_b, ...)`` to ``(B, max L, ...)``."""
    if not seqs:
        raise ValueError("cannot pad an empty list of sequences")
    longest = max(s.shape[0] for s in seqs)
    out = seqs[0].new_full((len(seqs), longest, *seqs[0].shape[1:]), pad_value)  # (B, L, ...)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
    return out


_LEGACY_ITEM_KEYS = {
    "text": B.TEXT_TOKENS,
    "codes": B.AUDIO_CODES,
    "prompt": B.PROMPT_CODES,
    "cut_id": B.CUT_IDS,
    "speaker": B.SPEAKERS,
}  # item keys before items carried batch keys; still accepted


def collate_items(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Collate per-utterance items into the batch dict of :mod:`valle.data.batch`.

    Items carry batch keys, one row each (e.g. ``text_tokens`` (S_b,) long, ``language`` int,
    ``audio_codes`` (T_b, Q) long, ``cut_ids`` str). Whatever keys they carry are collated:

    - a tensor with a first (length) dimension: right-padded with
      :func:`valle.data.batch.pad_value` of its key (or ``pad_values[key]``), its lengths
      under :func:`valle.data.batch.lens_key`;
    - an int, float, bool or 0-d tensor: a (B,) tensor;
    - anything else (strings): a list.

    Every item must carry the same keys. The older item keys (``text``, ``codes``,
    ``prompt``, ``cut_id``, ``speaker``) are still read as their batch keys.
    """
    return collate_rows(items)


def collate_rows(
    items: Sequence[dict[str, Any]], pad_values: dict[str, float] | None = None
) -> dict[str, Any]:
    """:func:`collate_items` with pad values overriding :data:`valle.data.batch.PAD_VALUES`."""
    if not items:
        raise ValueError("cannot collate an empty list of items")
    if any(k in _LEGACY_ITEM_KEYS for k in items[0]):
        items = [{_LEGACY_ITEM_KEYS.get(k, k): v for k, v in it.items()} for it in items]
    keys = list(items[0])
    for it in items[1:]:
        if set(it) != set(keys):
            raise ValueError(
                f"items carry different keys: {sorted(keys)} vs {sorted(it)}; every item of a "
                "batch must have the same fields"
            )
    pads = pad_values or {}
    batch: dict[str, Any] = {}
    for key in keys:
        values = [it[key] for it in items]
        first = values[0]
        if isinstance(first, torch.Tensor) and first.dim() >= 1:
            pad = pads.get(key, B.pad_value(key))
            batch[key] = pad_sequences(values, pad)  # (B, L, ...)
            batch[B.lens_key(key)] = torch.tensor([v.shape[0] for v in values], dtype=torch.long)
        elif isinstance(first, torch.Tensor | bool | int | float):
            batch[key] = torch.tensor(
                [v.item() if isinstance(v, torch.Tensor) else v for v in values]
            )
        else:
            batch[key] = values
    return batch


class SpeechTokenDataset(Dataset):
    """Map-style dataset indexed by a lhotse sampler's ``CutSet`` (one batch per index).

    Args:
        symbols: phoneme table (``valle.text.SymbolTable``, from ``data/tokens.txt``).
        prompt: acoustic prompt provider, or ``None`` for batches without ``prompt_codes``
            (then no other cut is read); give one only to a model that asks for it
            (``DataRequest.other_utterance_prompt``).
        default_language: language code for supervisions without a language.
        featurizers: the extra per-item fields the model asked for
            (``DataRequest.featurizers``), each under its name.
    """

    def __init__(
        self,
        symbols: Any,
        prompt: PromptProvider | None = None,
        default_language: str | None = None,
        featurizers: Sequence[Featurizer] = (),
    ) -> None:
        self.symbols = symbols
        self.prompt = prompt
        self.default_language = default_language
        self.featurizers = tuple(featurizers)
        core = {B.TEXT_TOKENS, B.LANGUAGE, B.AUDIO_CODES, B.CUT_IDS, B.SPEAKERS}
        core |= {B.PROMPT_CODES, B.PROMPT_START}
        taken = sorted(core & {f.name for f in self.featurizers})
        if taken:
            raise ValueError(f"featurizer names {taken} clash with the core batch keys")
        self._pads = {f.name: f.pad_value for f in self.featurizers}

    def set_epoch(self, epoch: int) -> None:
        if self.prompt is not None:
            self.prompt.set_epoch(epoch)

    def item(self, cut: Cut) -> dict[str, Any]:
        """One utterance's fields under their batch keys (see :func:`collate_items`)."""
        from valle.text import language_id

        codes = load_codes(cut)  # (T, Q)
        sup = cut.supervisions[0]
        lang = supervision_language(sup.language, self.default_language)
        it: dict[str, Any] = {
            B.TEXT_TOKENS: torch.tensor(self.symbols.encode(cut_phonemes(cut)), dtype=torch.long),
            B.LANGUAGE: language_id(lang),
            B.AUDIO_CODES: codes,
            B.CUT_IDS: cut.id,
            B.SPEAKERS: sup.speaker,
        }
        if self.prompt is not None:
            it[B.PROMPT_CODES] = self.prompt(cut, codes)  # (P, Q)
            it[B.PROMPT_START] = self.prompt.start(cut)
        for f in self.featurizers:
            it[f.name] = f(cut)
        return it

    def __getitem__(self, cuts: CutSet) -> dict[str, Any]:
        if not isinstance(cuts, CutSet):
            raise TypeError(
                "SpeechTokenDataset is indexed by a CutSet from a lhotse sampler; use "
                "make_dataloader(...) or DataLoader(dataset, sampler=..., batch_size=None)"
            )
        return collate_rows([self.item(c) for c in cuts], self._pads)

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
