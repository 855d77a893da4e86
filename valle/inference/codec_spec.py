"""Turning a recorded codec description back into a :class:`~valle.codec.base.Codec`.

A checkpoint (key ``"codec"``) or a data directory (``codec.json``, written by the tokenize
stage) records the codec as :class:`~valle.data.codec_info.CodecInfo` facts plus the path it
was loaded from; :func:`codec_from_spec` rebuilds it. :func:`codec_from_dir` also accepts the
codec's own directory: a fitted mel-RVQ codec (``config.json`` + ``codebooks.pt``) or an
EnCodec ``save_pretrained`` directory.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from valle.codec.base import Codec
from valle.data.codec_info import CODEC_NAMES, CodecInfo, load_codec

logger = logging.getLogger(__name__)

__all__ = ["codec_from_dir", "codec_from_spec", "codec_spec", "CodecSpecError"]

CODEC_JSON = "codec.json"


class CodecSpecError(ValueError):
    """A codec description that cannot be turned into a codec; the message says what to pass."""


def codec_spec(codec: Codec, name: str, path: str | os.PathLike[str], **options: Any) -> dict:
    """The plain dict to store under a checkpoint's ``"codec"`` key (``CodecInfo`` fields)."""
    return asdict(CodecInfo.from_codec(codec, name, Path(path), **options))


def codec_from_spec(spec: Mapping[str, Any], device: str = "cpu") -> Codec:
    """Rebuild a codec from ``CodecInfo`` fields (``name``, ``path``, ``options``, facts).

    The rebuilt codec's facts must equal the recorded ones.
    """
    known = {f.name for f in fields(CodecInfo)}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise CodecSpecError(f"codec spec has unknown keys {unknown}; expected {sorted(known)}")
    try:
        info = CodecInfo(**spec)
    except TypeError as e:
        raise CodecSpecError(f"codec spec {dict(spec)} is incomplete: {e}") from e
    if info.name not in CODEC_NAMES:
        raise CodecSpecError(f"unknown codec {info.name!r}; choose one of {list(CODEC_NAMES)}")
    if info.path is None:
        raise CodecSpecError(
            f"the {info.name} codec spec records no path; pass the codec explicitly "
            "(codec= / --codec-dir)"
        )
    if not Path(info.path).exists():
        raise CodecSpecError(
            f"the {info.name} codec recorded at {info.path!r} is not on this machine; pass the "
            "codec directory explicitly (codec= / --codec-dir)"
        )
    recorded = getattr(info, "fingerprint", None)
    if recorded is not None:
        from valle.data.codec_info import fingerprint_path

        now = fingerprint_path(info.path)
        if now is not None and now != recorded:
            raise CodecSpecError(
                f"the {info.name} codec files at {info.path} changed since the codes were made "
                "(fingerprint mismatch, e.g. a refitted codec); pass the codec the model was "
                "trained with (codec= / --codec-dir)"
            )
    codec = load_codec(info.name, info.path, device=device, **info.options)
    _check_facts(codec, info, f"codec loaded from {info.path}")
    return codec


def _check_facts(codec: Codec, info: CodecInfo, what: str) -> None:
    got = (int(codec.num_codebooks), int(codec.codebook_size), int(codec.sample_rate))
    want = (info.num_codebooks, info.codebook_size, info.sample_rate)
    if got != want:
        raise CodecSpecError(
            f"{what} has (num_codebooks, codebook_size, sample_rate) = {got} but the spec "
            f"records {want}; the file at that path changed since the codes were made"
        )


def codec_from_dir(path: str | os.PathLike[str], device: str = "cpu") -> Codec:
    """Load a codec from a directory (or ``codec.json`` file).

    Accepted: a directory holding ``codec.json`` (the tokenize stage's data directory), a
    ``codec.json`` file, a mel-RVQ codec directory, an EnCodec ``save_pretrained`` directory
    (loaded at the bandwidth giving its largest number of codebooks; use a ``codec.json`` to
    choose another).
    """
    p = Path(path)
    if p.is_file() and p.name.endswith(".json") and p.name != "config.json":
        return codec_from_spec(asdict(CodecInfo.from_file(p)), device)
    if not p.is_dir():
        raise CodecSpecError(f"codec directory {p} does not exist")
    if (p / CODEC_JSON).is_file():
        return codec_from_spec(asdict(CodecInfo.from_file(p / CODEC_JSON)), device)
    config = p / "config.json"
    if config.is_file():
        try:
            meta = json.loads(config.read_text())
        except json.JSONDecodeError as e:
            raise CodecSpecError(f"{config} is not valid JSON: {e}") from e
        if meta.get("codec") == "mel_rvq":
            return load_codec("mel_rvq", p, device=device)
        if meta.get("model_type") == "encodec":
            bandwidths = meta.get("target_bandwidths") or [6.0]
            return load_codec("encodec", p, device=device, bandwidth=float(max(bandwidths)))
    raise CodecSpecError(
        f"{p} holds no codec: expected {CODEC_JSON} (from the tokenize stage), a mel-RVQ codec "
        "directory (config.json + codebooks.pt) or an EnCodec save_pretrained directory"
    )
