"""Ceiling of a codec language model: how good could the output be if the AR were perfect?

Shape legend: B batch, S text tokens, P prompt frames, T target frames, Q codebooks, N samples.

For each item of a protocol list (``valle-bench protocol``; the mini recipe's stage 7 writes
``<exp>/decode/lists/cross_en.jsonl``) the ground-truth target speech is encoded once with the
model's codec, and two kinds of "systems" are made from its codes (T, Q):

- ``codec_q<Q'>``: the first Q' codebooks decoded (the rest dropped), for each Q' of the
  prefixes (default 1, 2, 4 and all): how much each codebook adds to intelligibility, and the
  codec's own ceiling (all codebooks, the "codec" row of a results table);
- ``gt_q1+nar``: the ground-truth first codebook completed by the model's own NAR
  (``model.nar.generate``, greedy unless a sampler is given) with the same inputs the model
  gets when it decodes that item (:meth:`valle.inference.synthesizer.Synthesizer.prepare`:
  prompt transcript + target text, the trimmed prompt's codes, languages): the WER the model
  would reach with a perfect AR. A model without a NAR, or whose NAR needs more inputs than
  these (VALL-E R's phoneme-aligned NAR needs each frame's phoneme), is refused for this row
  with the reason (the codec rows are still made).

Each system's waves are scored with an ASR backend (:mod:`valle.eval.asr`) and
:func:`valle.eval.wer.score_corpus` against the items' ``target_text``; a system directory
gets ``<id>.wav``, ``wer_rows.csv`` and a ``wer_summary.json`` like ``valle-bench wer``'s (so
``valle-bench report`` can merge them). The target speech is the whole target utterance for
cross-sentence items and the part after the prompt for continuation items.

Figures measured with this command on the mini corpus, and the command that reproduces them:
``egs/mini/EXPERIMENTS.md``, experiment e10.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from valle.data.batch import SynthesisInputs

logger = logging.getLogger(__name__)

__all__ = [
    "CeilingSystem",
    "parse_prefixes",
    "target_wave",
    "ceiling_waves",
    "score_systems",
    "format_table",
    "NAR_SYSTEM",
]

NAR_SYSTEM = "gt_q1+nar"


@dataclass
class CeilingSystem:
    """One row of the table: its name, where its waves are, its WER (None: not made) and why
    it was not made."""

    name: str
    directory: Path
    ids: list[str] = field(default_factory=list)
    wer: float | None = None
    refused: str | None = None

    def as_row(self) -> dict[str, Any]:
        return {"system": self.name, "wer": self.wer, "items": len(self.ids),
                "refused": self.refused}  # fmt: skip


def parse_prefixes(spec: str | Sequence[str | int], num_codebooks: int) -> list[int]:
    """``"1,2,4,all"`` -> ``[1, 2, 4, Q]`` (sorted, unique); each in 1..Q."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    out: set[int] = set()
    for p in parts:
        p = str(p).strip()
        if not p:
            continue
        q = num_codebooks if p == "all" else int(p)
        if not 1 <= q <= num_codebooks:
            raise ValueError(f"codebook prefix {p!r} is not in 1..{num_codebooks} (or 'all')")
        out.add(q)
    if not out:
        raise ValueError(f"no codebook prefix in {spec!r}")
    return sorted(out)


def target_wave(item: Any, cuts: Any) -> tuple[np.ndarray, int]:
    """The ground-truth speech of ``item`` -> ``(wave (N,), sr)``: the whole target cut
    (cross-sentence), or its part after the prompt (continuation)."""
    from valle.eval.protocols import normalize_setting

    cut = cuts[item.id]
    if normalize_setting(item.setting) == "cont":
        offset = max(0.0, item.prompt_start + item.prompt_duration - cut.start)
        cut = cut.truncate(offset=offset)
    return cut.load_audio()[0], int(cut.sampling_rate)


def _fit(wave: Tensor, n: int) -> np.ndarray:
    """A decoded wave (N',) trimmed or zero-padded to ``n`` samples, float32."""
    w = wave.detach().float().cpu().numpy().reshape(-1)[:n]
    return np.pad(w, (0, n - len(w))).astype(np.float32)


def _nar_refusal(model: Any) -> str | None:
    nar = getattr(model, "nar", None)
    if nar is None:
        return f"{type(model).__name__} has no NAR"
    return None


def _nar_inputs(synth: Any, item: Any, cuts: Any) -> SynthesisInputs:
    """The inputs (batch of one) the model gets when it decodes ``item``."""
    from valle.eval.protocols import load_prompt_audio
    from valle.inference import SynthesisJob

    wave, sr = load_prompt_audio(item, cuts)
    job = SynthesisJob(text=item.target_text, prompt_wav=wave, prompt_text=item.prompt_text,
                       language=item.language or "en", prompt_sample_rate=sr, id=item.id)  # fmt: skip
    rows = synth.prepare(job).rows
    if len(rows) != 1:
        raise ValueError(f"item {item.id}: its text is spoken in {len(rows)} chunks; need one")
    return synth.synthesis_inputs(rows)  # (1, S) text, (1, P, Q) prompt


@torch.inference_mode()
def _complete_with_nar(
    nar: Any, inputs: SynthesisInputs, first: Tensor, generator: torch.Generator
) -> Tensor:
    """A ground-truth first codebook (T,) completed by ``nar`` -> codes (T, Q)."""
    dev = inputs.text_tokens.device
    lens = torch.tensor([first.shape[0]], dtype=torch.long, device=dev)
    full = nar.generate(inputs, first[None].to(dev), lens, generator=generator)  # (1, T, Q)
    return full[0, : first.shape[0]]


def ceiling_waves(
    synth: Any,
    items: Sequence[Any],
    cuts: Any,
    out_dir: str | os.PathLike[str],
    prefixes: Sequence[int],
    *,
    seed: int = 0,
) -> list[CeilingSystem]:
    """Write every system's waves ``<out_dir>/<system>/<id>.wav`` (see the module docstring).

    ``synth``: a :class:`~valle.inference.synthesizer.Synthesizer` (its model, codec and
    symbol table; built with ``max_text_tokens=None`` so an item is one row). Waves are at the
    codec's rate, as long as the resampled ground truth. Returns the systems, codec prefixes
    first; the NAR system carries ``refused`` when the model cannot make it.
    """
    from tqdm.auto import tqdm

    from valle.eval.audio import resample, write_wave

    codec = synth.codec
    if getattr(codec, "continuous", False):  # frames, not codes (a mel model's wave maker)
        raise ValueError(
            f"the ceiling needs a codec model (discrete codes); {type(synth.model).__name__} "
            "makes mel frames"
        )
    out = Path(out_dir)
    systems = [CeilingSystem(f"codec_q{q}", out / f"codec_q{q}") for q in prefixes]
    nar = CeilingSystem(NAR_SYSTEM, out / NAR_SYSTEM, refused=_nar_refusal(synth.model))
    systems.append(nar)
    generator = torch.Generator(device=synth.device).manual_seed(seed)
    for item in tqdm(items, desc="ceiling", unit="utt"):
        wave, sr = target_wave(item, cuts)
        prepared = torch.from_numpy(resample(wave, sr, codec.sample_rate))  # (N,)
        n = int(prepared.shape[0])
        (codes,) = codec.encode([prepared])  # (T, Q)
        codes = codes.long()
        for system, q in zip(systems, prefixes, strict=False):
            (w,) = codec.decode([codes[:, :q]])  # (N',): the first q codebooks only
            write_wave(system.directory / f"{item.id}.wav", _fit(w, n), codec.sample_rate)
            system.ids.append(item.id)
        if nar.refused is None:
            inputs = _nar_inputs(synth, item, cuts)  # an item the model cannot say: an error
            try:
                full = _complete_with_nar(synth.model.nar, inputs, codes[:, 0], generator)
            except (ValueError, TypeError) as err:  # a NAR that needs more inputs
                nar.refused = f"{type(synth.model.nar).__name__}: {err}"
                logger.warning("ceiling: the NAR system is refused (%s)", nar.refused)
                continue
            (w,) = codec.decode([full.cpu()])
            write_wave(nar.directory / f"{item.id}.wav", _fit(w, n), codec.sample_rate)
            nar.ids.append(item.id)
    if nar.refused is not None:
        nar.ids = []
    return systems


def score_systems(
    systems: Sequence[CeilingSystem],
    items: Sequence[Any],
    asr: Any,
    language: str,
    asr_name: str = "",
) -> None:
    """Transcribe each made system's waves with ``asr`` and set its WER against the items'
    ``target_text``; writes ``wer_rows.csv`` and ``wer_summary.json`` in its directory."""
    from valle.eval.audio import load_wave
    from valle.eval.files import write_json
    from valle.eval.wer import score_corpus

    refs = {i.id: i.target_text for i in items}
    for system in systems:
        if system.refused is not None or not system.ids:
            continue
        hyps = []
        for start in range(0, len(system.ids), 8):
            chunk = system.ids[start : start + 8]
            loaded = [load_wave(system.directory / f"{i}.wav") for i in chunk]
            hyps += asr.transcribe([w for w, _ in loaded], loaded[0][1], language)
        errors = score_corpus(system.ids, [refs[i] for i in system.ids], hyps, language)
        errors.write_csv(system.directory / "wer_rows.csv")
        system.wer = errors.error_rate
        summary = {"system": system.name, **errors.summary(), "wer": errors.error_rate,
                   "asr": asr_name, "language": language, "references": "protocol"}  # fmt: skip
        write_json(system.directory / "wer_summary.json", summary)


def format_table(systems: Sequence[CeilingSystem]) -> str:
    """A markdown table: system, WER (%), items (or why the system was refused)."""
    lines = ["| system | WER | items |", "|---|---|---|"]
    for s in systems:
        if s.refused is not None:
            lines.append(f"| {s.name} | - | refused: {s.refused} |")
        else:
            wer = "-" if s.wer is None else f"{100 * s.wer:.1f}%"
            lines.append(f"| {s.name} | {wer} | {len(s.ids)} |")
    return "\n".join(lines)
