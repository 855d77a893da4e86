"""Turning a recorded codec description back into a :class:`~valle.codec.base.Codec`.

A checkpoint (key ``"codec"``) or a data directory (``codec.json``, written by the tokenize
stage) records the codec as :class:`~valle.data.codec_info.CodecInfo` facts plus the path it
was loaded from; :func:`codec_from_spec` rebuilds it through the codec registry
(:mod:`valle.codec.registry`). A small codec (mel-RVQ) also travels inside the checkpoint
(key ``"codec_embedded"``, :func:`codec_from_embedded_entry`), so the checkpoint synthesizes
anywhere. :func:`codec_from_dir` also accepts the codec's own directory (any directory a
registered codec recognizes: a fitted mel-RVQ codec, an EnCodec ``save_pretrained`` directory).

Recorded paths are usually relative to the recipe directory the run was made in
(``data/codec/mel_rvq``). They are looked up as given (from the current directory), then
relative to the checkpoint's directory and each of its parents (``egs/mini/exp/valle/model.pt``
finds ``egs/mini/data/codec/mel_rvq``); a recorded fingerprint must match.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from valle.codec.base import Codec
from valle.codec.registry import (
    UnknownCodecError,
    codec_from_embedded,
    get_codec_loader,
    recognize_codec_dir,
    registered_codecs,
)
from valle.data.codec_info import CodecInfo, fingerprint_path

logger = logging.getLogger(__name__)

__all__ = [
    "CodecSpecError",
    "codec_from_dir",
    "codec_from_embedded_entry",
    "codec_from_spec",
    "codec_spec",
    "resolve_codec_path",
]

CODEC_JSON = "codec.json"


class CodecSpecError(ValueError):
    """A codec description that cannot be turned into a codec; the message says what to pass."""


def codec_spec(codec: Codec, name: str, path: str | os.PathLike[str], **options: Any) -> dict:
    """The plain dict to store under a checkpoint's ``"codec"`` key (``CodecInfo`` fields)."""
    return asdict(CodecInfo.from_codec(codec, name, Path(path), **options))


def _search_roots(near: str | os.PathLike[str] | None) -> list[Path]:
    """The current directory, then the checkpoint's directory and all its parents."""
    roots = [Path.cwd()]
    if near is not None:
        start = Path(near).resolve()
        start = start if start.is_dir() else start.parent
        roots += [start, *start.parents]
    out: list[Path] = []
    for r in roots:
        if r not in out:
            out.append(r)
    return out


def resolve_codec_path(
    path: str | os.PathLike[str],
    near: str | os.PathLike[str] | None = None,
    fingerprint: str | None = None,
) -> tuple[Path | None, list[Path]]:
    """Find a recorded codec path on this machine.

    Returns:
        ``(found or None, the candidates that exist but whose files differ from the recorded
        fingerprint)``. An absolute path is only looked up as is.
    """
    p = Path(path).expanduser()
    candidates = [p] if p.is_absolute() else [root / p for root in _search_roots(near)]
    changed: list[Path] = []
    for c in candidates:
        if not c.exists():
            continue
        if fingerprint is not None:
            now = fingerprint_path(c)
            if now is not None and now != fingerprint:
                changed.append(c)
                continue
        return c, changed
    return None, changed


def _info_from(spec: Mapping[str, Any]) -> CodecInfo:
    known = {f.name for f in fields(CodecInfo)}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise CodecSpecError(f"codec spec has unknown keys {unknown}; expected {sorted(known)}")
    try:
        info = CodecInfo(**spec)
    except TypeError as e:
        raise CodecSpecError(f"codec spec {dict(spec)} is incomplete: {e}") from e
    try:
        get_codec_loader(info.name)
    except UnknownCodecError:
        raise CodecSpecError(
            f"unknown codec {info.name!r}; choose one of {list(registered_codecs())}"
        ) from None
    return info


def codec_from_spec(
    spec: Mapping[str, Any], device: str = "cpu", near: str | os.PathLike[str] | None = None
) -> Codec:
    """Rebuild a codec from ``CodecInfo`` fields (``name``, ``path``, ``options``, facts).

    Args:
        spec: the fields.
        device: where the codec runs.
        near: the checkpoint (or ``codec.json``) the spec comes from: a relative recorded path
            is also looked up relative to its directory and that directory's parents.

    The rebuilt codec's facts must equal the recorded ones.
    """
    info = _info_from(spec)
    if info.path is None:
        raise CodecSpecError(
            f"the {info.name} codec spec records no path; pass the codec explicitly "
            "(codec= / --codec-dir)"
        )
    found, changed = resolve_codec_path(info.path, near, info.fingerprint)
    if found is None and changed:
        raise CodecSpecError(
            f"the {info.name} codec files at {changed[0]} changed since the codes were made "
            "(fingerprint mismatch, e.g. a refitted codec); pass the codec the model was "
            "trained with (codec= / --codec-dir)"
        )
    if found is None:
        if get_codec_loader(info.name).is_remote(info.path):  # e.g. an EnCodec hub id
            location = info.path
        else:
            roots = ", ".join(str(r) for r in _search_roots(near))
            raise CodecSpecError(
                f"the {info.name} codec recorded at {info.path!r} is not on this machine "
                f"(looked from: {roots}); pass the codec directory explicitly "
                "(codec= / --codec-dir)"
            )
    else:
        location = str(found)
        if str(found) != info.path:
            logger.info("codec %r recorded as %s found at %s", info.name, info.path, found)
    codec = get_codec_loader(info.name).load(location, device=device, **info.options)
    _check_facts(codec, info, f"codec loaded from {location}")
    return codec


def codec_from_embedded_entry(
    entry: Mapping[str, Any], spec: Mapping[str, Any] | None = None, device: str = "cpu"
) -> Codec:
    """The codec a checkpoint carries (``"codec_embedded"``), checked against its facts."""
    try:
        codec = codec_from_embedded(entry, device=device)
    except (KeyError, TypeError, ValueError) as err:
        raise CodecSpecError(
            f"the codec embedded in the checkpoint cannot be rebuilt: {err}"
        ) from err
    if spec is not None:
        _check_facts(codec, _info_from(spec), "the codec embedded in the checkpoint")
    return codec


def _check_facts(codec: Codec, info: CodecInfo, what: str) -> None:
    got = (int(codec.num_codebooks), int(codec.codebook_size), int(codec.sample_rate))
    want = (info.num_codebooks, info.codebook_size, info.sample_rate)
    if got != want:
        raise CodecSpecError(
            f"{what} has (num_codebooks, codebook_size, sample_rate) = {got} but the spec "
            f"records {want}; the file at that path changed since the codes were made"
        )


def codec_from_dir(
    path: str | os.PathLike[str], device: str = "cpu", near: str | os.PathLike[str] | None = None
) -> Codec:
    """Load a codec from a directory (or ``codec.json`` file).

    Accepted: a directory holding ``codec.json`` (the tokenize stage's data directory), a
    ``codec.json`` file, or a directory that a registered codec recognizes (a mel-RVQ codec
    directory; an EnCodec ``save_pretrained`` directory, loaded at the bandwidth giving its
    largest number of codebooks; use a ``codec.json`` to choose another). A relative ``path``
    that is not found from the current directory is looked up relative to ``near``.
    """
    given = Path(path)
    found, _ = resolve_codec_path(given, near)
    p = found if found is not None else given
    if p.is_file() and p.name.endswith(".json") and p.name != "config.json":
        return codec_from_spec(asdict(CodecInfo.from_file(p)), device, near=p)
    if not p.is_dir():
        raise CodecSpecError(f"codec directory {given} does not exist")
    if (p / CODEC_JSON).is_file():
        return codec_from_spec(asdict(CodecInfo.from_file(p / CODEC_JSON)), device, near=p)
    recognized = recognize_codec_dir(p)
    if recognized is not None:
        name, options = recognized
        return get_codec_loader(name).load(str(p), device=device, **options)
    raise CodecSpecError(
        f"{p} holds no codec: expected {CODEC_JSON} (from the tokenize stage) or the files of "
        f"a registered codec ({', '.join(registered_codecs())}): a mel-RVQ codec directory "
        "(config.json + codebooks.pt) or an EnCodec save_pretrained directory"
    )
