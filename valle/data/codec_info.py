"""The codec facts recorded beside tokenized manifests, and loading a codec back from them.

Codec facts (sample rate, frame rate, codebooks) come from the codec object (DESIGN.md sec. 2);
tokenization writes them to ``codec.json`` so training and inference read the same facts and can
rebuild the codec that made the codes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from valle.codec.base import Codec
from valle.codec.registry import registered_codecs
from valle.data.manifests import write_json_atomic

logger = logging.getLogger(__name__)

__all__ = ["CODEC_NAMES", "CodecInfo", "fingerprint_path", "load_codec"]

CODEC_NAMES = registered_codecs()  # names of valle.codec.registry


def fingerprint_path(path: str | Path) -> str | None:
    """sha1 over the names and bytes of the files of a local codec directory (or file).

    Tells apart two codecs saved at the same path (e.g. a refitted MelRVQ), so stale codes are
    never mixed with new ones. ``None`` for a hub name (not a local path).
    """
    p = Path(path)
    if not p.exists():
        return None
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    h = hashlib.sha1()
    for f in files:
        if f.name.startswith("."):  # markers (.done), temp files
            continue
        h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class CodecInfo:
    """Facts about the codec that produced a set of codes."""

    name: str  # one of CODEC_NAMES
    sample_rate: int  # Hz of the waves the codec encodes
    frame_rate: float  # code frames per second
    num_codebooks: int  # Q
    codebook_size: int  # codes lie in [0, codebook_size)
    path: str | None = None  # model name or local directory the codec was loaded from
    options: dict[str, Any] = field(default_factory=dict)  # e.g. {"bandwidth": 6.0} (kbps)
    fingerprint: str | None = None  # sha1 of the codec files when ``path`` is a local directory

    @classmethod
    def from_codec(
        cls, codec: Codec, name: str, path: str | Path | None = None, **options: Any
    ) -> CodecInfo:
        """Read the facts from a codec object."""
        return cls(
            name=name,
            sample_rate=int(codec.sample_rate),
            frame_rate=float(codec.frame_rate),
            num_codebooks=int(codec.num_codebooks),
            codebook_size=int(codec.codebook_size),
            path=None if path is None else str(path),
            options=dict(options),
            fingerprint=None if path is None else fingerprint_path(path),
        )

    def to_file(self, path: str | Path) -> Path:
        return write_json_atomic(asdict(self), path)

    @classmethod
    def from_file(cls, path: str | Path) -> CodecInfo:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"codec facts {path} not found; it is written by the codec-token stage (stage 2)"
            )
        d = json.loads(path.read_text())
        try:
            return cls(**d)
        except TypeError as e:
            raise ValueError(f"{path} is not a valid codec.json: {e}") from e

    def load_codec(self, device: str = "cpu") -> Codec:
        """Rebuild the codec these facts describe."""
        if self.path is None:
            raise ValueError(f"codec.json for {self.name!r} records no path; cannot reload it")
        return load_codec(self.name, self.path, device=device, **self.options)


def load_codec(name: str, path: str | Path, device: str = "cpu", **options: Any) -> Codec:
    """Build a codec by its registered name (:mod:`valle.codec.registry`).

    Args:
        name: ``"encodec"`` (``EncodecCodec.from_pretrained(path, bandwidth=...)``, EnCodec
            24 kHz, VALL-E sec. 5.1 uses 6 kbps = 8 codebooks) or ``"mel_rvq"``
            (``MelRVQCodec.load(path)``, the offline codec fitted on the mini corpus).
        path: hub name or local directory.
        device: where the codec runs ("cpu", "cuda").
        options: codec-specific options (``bandwidth`` for EnCodec, kbps).
    """
    from valle.codec.registry import load_codec as load_registered

    return load_registered(name, path, device=device, **options)
