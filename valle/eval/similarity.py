"""Speaker similarity: speaker-verification embeddings and their cosine similarity.

Shape legend: B batch, N samples, D embedding size.

The VALL-E papers measure how well a system keeps the prompt speaker's voice by the cosine
similarity of speaker-verification embeddings (VALL-E §5.1: WavLM-TDNN; VALL-E 2 §4 and MELLE
report two figures). Three references are supported, each optional:

- ``SIM-o``: the synthesized utterance vs the *original* speech prompt (the prompt audio as cut
  from the corpus);
- ``SIM-r``: vs the *reconstructed* prompt, i.e. the prompt passed through the codec (encode then
  decode), which removes the codec's own loss from the comparison (VALL-E 2 §4);
- ``SIM-utt``: vs the original (ground-truth) recording of the target utterance itself.

Backends: :class:`ResemblyzerEncoder` (GE2E d-vector; its weights ship inside the ``resemblyzer``
wheel, so it is the offline default) and :class:`WavLMSVEncoder`
(``microsoft/wavlm-base-plus-sv``, transformers ``WavLMForXVector``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from valle.eval.audio import Wave, prepare_waves
from valle.eval.files import write_csv

logger = logging.getLogger(__name__)

WAVLM_SV_NAME = "microsoft/wavlm-base-plus-sv"


@runtime_checkable
class SpeakerEncoder(Protocol):
    """Speaker embedding model: waves in, one embedding per wave out."""

    @property
    def sample_rate(self) -> int:
        """Rate (Hz) the model runs at; inputs at other rates are resampled to it."""
        ...

    def embed(self, waves: Sequence[Wave], sample_rate: int) -> torch.Tensor:
        """Embed mono waves ``(N,)`` given at ``sample_rate``; returns float ``(B, D)``."""
        ...


class ResemblyzerEncoder:
    """GE2E speaker encoder from the ``resemblyzer`` package (weights ship in the wheel).

    Each wave is resampled to 16 kHz, then ``resemblyzer.preprocess_wav`` normalises its volume
    and trims long silences (webrtcvad) before ``embed_utterance``.
    """

    sample_rate = 16000

    def __init__(self, device: str = "cpu", encoder: Any | None = None) -> None:
        try:
            from resemblyzer import VoiceEncoder, preprocess_wav
        except ModuleNotFoundError as e:  # webrtcvad 2.0.10 imports the removed pkg_resources
            raise ImportError(
                f"resemblyzer could not be imported ({e}); install 'webrtcvad-wheels' "
                "(a drop-in webrtcvad without pkg_resources) or 'setuptools<81'"
            ) from e
        self._preprocess = preprocess_wav
        self.encoder = (
            encoder if encoder is not None else VoiceEncoder(device=device, verbose=False)
        )

    def embed(self, waves: Sequence[Wave], sample_rate: int) -> torch.Tensor:
        out: list[torch.Tensor | None] = []
        for i, wave in enumerate(prepare_waves(waves, sample_rate, self.sample_rate)):
            trimmed = self._preprocess(wave)
            if trimmed.size == 0:
                # No voiced frame: a system output of silence or noise (an untrained model, an
                # immediate stop). The benchmark scores it instead of failing: the whole wave is
                # embedded, and a wave under 0.1 s gets a zero embedding (similarity 0).
                logger.warning("wave %d has no speech after silence trimming", i)
                if len(wave) < self.sample_rate // 10:
                    out.append(None)
                    continue
                trimmed = np.asarray(wave, dtype=np.float32)
            out.append(torch.from_numpy(np.asarray(self.encoder.embed_utterance(trimmed))))
        dim = next((e.shape[-1] for e in out if e is not None), 256)  # (D,)
        return torch.stack([torch.zeros(dim) if e is None else e for e in out]).float()  # (B, D)


class WavLMSVEncoder:
    """WavLM x-vector speaker verification model (``microsoft/wavlm-base-plus-sv``).

    Waves are embedded one at a time, so padding never changes an embedding.
    """

    def __init__(
        self, model: torch.nn.Module, feature_extractor: Any, device: str | torch.device = "cpu"
    ) -> None:
        self.model = model.to(device).eval()
        self.feature_extractor = feature_extractor
        self.device = torch.device(device)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str = WAVLM_SV_NAME, device: str = "cpu"
    ) -> WavLMSVEncoder:
        from transformers import AutoFeatureExtractor, WavLMForXVector

        fe = AutoFeatureExtractor.from_pretrained(name_or_path)
        model = WavLMForXVector.from_pretrained(name_or_path)
        return cls(model, fe, device=device)

    @property
    def sample_rate(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    @torch.inference_mode()
    def embed(self, waves: Sequence[Wave], sample_rate: int) -> torch.Tensor:
        out = []
        for wave in prepare_waves(waves, sample_rate, self.sample_rate):
            inputs = self.feature_extractor(
                [wave], sampling_rate=self.sample_rate, return_tensors="pt"
            )
            values = inputs["input_values"].to(self.device)  # (1, N)
            out.append(self.model(input_values=values).embeddings[0].float().cpu())  # (D,)
        return torch.stack(out)  # (B, D)


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of ``(B, D)`` and ``(B, D)`` -> ``(B,)``."""
    if a.shape != b.shape:
        raise ValueError(f"embedding shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)


@dataclass(frozen=True)
class WaveBatch:
    """Waves of one kind (system outputs, prompts, ...) at one sample rate, in item order."""

    waves: Sequence[Wave]
    sample_rate: int


@dataclass(frozen=True)
class SimilarityRow:
    """Similarities of one item; ``None`` where that reference was not given."""

    id: str
    sim_o: float | None = None
    sim_r: float | None = None
    sim_utt: float | None = None


SIM_FIELDS = ("id", "sim_o", "sim_r", "sim_utt")


@dataclass(frozen=True)
class SimilarityResult:
    """Per-item rows and the mean of each similarity over the items."""

    rows: list[SimilarityRow] = field(default_factory=list)

    def mean(self, name: str) -> float | None:
        values = [getattr(r, name) for r in self.rows if getattr(r, name) is not None]
        return float(np.mean(values)) if values else None

    def summary(self) -> dict[str, object]:
        return {
            "utterances": len(self.rows),
            "sim_o": self.mean("sim_o"),
            "sim_r": self.mean("sim_r"),
            "sim_utt": self.mean("sim_utt"),
        }

    def write_csv(self, path: str | Path) -> Path:
        return write_csv(path, SIM_FIELDS, (asdict(r) for r in self.rows))


def score_similarity(
    encoder: SpeakerEncoder,
    ids: Sequence[str],
    system: WaveBatch,
    prompt: WaveBatch | None = None,
    prompt_resynth: WaveBatch | None = None,
    original: WaveBatch | None = None,
) -> SimilarityResult:
    """Cosine similarity of each system utterance to its prompt (SIM-o), codec-resynthesized
    prompt (SIM-r) and original target utterance (SIM-utt), for those references given."""
    n = len(ids)
    refs = {"sim_o": prompt, "sim_r": prompt_resynth, "sim_utt": original}
    for name, batch in [("system", system), *refs.items()]:
        if batch is not None and len(batch.waves) != n:
            raise ValueError(f"{name} has {len(batch.waves)} waves for {n} ids; give one per id")
    if all(b is None for b in refs.values()):
        raise ValueError("give at least one reference: prompt, prompt_resynth or original")
    # An empty system output (a model that stopped at once) is scored, not an error: its
    # similarity to every reference is 0.
    voiced = [k for k, w in enumerate(system.waves) if len(w) > 0]
    if len(voiced) < n:
        logger.warning("%d of %d system waves are empty: similarity 0", n - len(voiced), n)
    sys_emb = None
    if voiced:
        emb = encoder.embed([system.waves[k] for k in voiced], system.sample_rate)  # (B', D)
        sys_emb = emb.new_zeros(n, emb.shape[-1])  # (B, D)
        sys_emb[voiced] = emb
    sims: dict[str, list[float | None]] = {}
    for name, batch in refs.items():
        if batch is None:
            sims[name] = [None] * n
        elif sys_emb is None:
            sims[name] = [0.0] * n
        else:
            ref_emb = encoder.embed(batch.waves, batch.sample_rate)  # (B, D)
            sims[name] = [float(x) for x in cosine_similarity(sys_emb, ref_emb)]
    rows = [
        SimilarityRow(
            id=i, sim_o=sims["sim_o"][k], sim_r=sims["sim_r"][k], sim_utt=sims["sim_utt"][k]
        )
        for k, i in enumerate(ids)
    ]
    result = SimilarityResult(rows=rows)
    logger.info("similarity over %d utterances: %s", n, result.summary())
    return result


#: Encoder name -> factory ``(path or None, device) -> SpeakerEncoder``; used by ``valle-bench sim``.
SPEAKER_ENCODERS: dict[str, Callable[[str | None, str], SpeakerEncoder]] = {
    "resemblyzer": lambda path, device: ResemblyzerEncoder(device=device),
    "wavlm-sv": lambda path, device: WavLMSVEncoder.from_pretrained(path or WAVLM_SV_NAME, device),
}


def build_speaker_encoder(
    name: str, path: str | None = None, device: str = "cpu"
) -> SpeakerEncoder:
    """Build a speaker encoder by name (``resemblyzer``, ``wavlm-sv``)."""
    if name not in SPEAKER_ENCODERS:
        raise ValueError(
            f"unknown speaker encoder {name!r}; choose one of {sorted(SPEAKER_ENCODERS)}"
        )
    return SPEAKER_ENCODERS[name](path, device)
