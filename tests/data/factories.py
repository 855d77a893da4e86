"""Tiny factories for the data tests: a corpus of tones made on the spot, a fake codec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet


class FakeCodec:
    """A deterministic stand-in codec: frame energy / zero crossings quantized into codes.

    Follows valle.codec.base.Codec; counts the waves it encoded (``calls``).
    """

    def __init__(
        self,
        sample_rate: int = 8000,
        frame_rate: float = 50.0,
        num_codebooks: int = 2,
        codebook_size: int = 16,
        fail_after: int | None = None,
    ) -> None:
        self._sr, self._fr, self._q, self._k = sample_rate, frame_rate, num_codebooks, codebook_size
        self.hop = int(round(sample_rate / frame_rate))
        self.encoded: list[int] = []  # lengths of the waves encoded, in call order
        self.batch_sizes: list[int] = []
        self.fail_after = fail_after  # raise once this many waves have been encoded

    sample_rate = property(lambda self: self._sr)
    frame_rate = property(lambda self: self._fr)
    num_codebooks = property(lambda self: self._q)
    codebook_size = property(lambda self: self._k)

    def encode(self, wavs):
        if self.fail_after is not None and len(self.encoded) + len(wavs) > self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.batch_sizes.append(len(wavs))
        out = []
        for w in wavs:
            self.encoded.append(int(w.shape[0]))
            t = -(-w.shape[0] // self.hop)
            x = torch.nn.functional.pad(w, (0, t * self.hop - w.shape[0])).view(t, self.hop)
            energy = (x.abs().mean(dim=1) * 40).long()
            q = [(energy + 3 * j) % self._k for j in range(self._q)]
            out.append(torch.stack(q, dim=1))  # (T, Q)
        return out

    def decode(self, codes):
        return [torch.zeros(c.shape[0] * self.hop) for c in codes]


def write_tone(path: Path, seconds: float, sr: int, freq: float, channels: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t))
    x = x + 0.01 * rng.standard_normal(x.shape)
    if channels > 1:
        x = np.stack([x * (1 - 0.2 * c) for c in range(channels)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x.astype(np.float32), sr)
    return path


def make_cuts(root: Path, speakers: int = 3, utts: int = 3, sr: int = 16000) -> CutSet:
    """A small CutSet over real wav files: ``speakers`` x ``utts`` tones of 0.6-2.2 s."""
    recs, sups = [], []
    for s in range(speakers):
        for u in range(utts):
            rid = f"spk{s}_utt{u}"
            dur = 0.6 + 0.4 * ((s * utts + u) % 5)
            p = write_tone(root / f"{rid}.wav", dur, sr, 180 + 40 * s + 7 * u, seed=s * 10 + u)
            rec = Recording.from_file(p, recording_id=rid)
            recs.append(rec)
            sups.append(
                SupervisionSegment(
                    id=rid,
                    recording_id=rid,
                    start=0.0,
                    duration=rec.duration,
                    channel=0,
                    text=f"hello number {u} from {s}",
                    language="English",
                    speaker=f"spk{s}",
                )
            )
    return CutSet.from_manifests(
        recordings=RecordingSet.from_recordings(recs),
        supervisions=SupervisionSet.from_segments(sups),
    ).to_eager()


def fake_frontend_for(lang: str):
    """A G2P stand-in: letters of each word as tokens."""
    assert lang == "en"
    return lambda text: [ch for ch in text.lower() if ch.isalpha()]
