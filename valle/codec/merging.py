"""Codec merging for VALL-E R (Han et al., 2024, "VALL-E R: Robust and Efficient Zero-Shot
Text-to-Speech Synthesis via Monotonic Alignment", Sec. 3.2, codec-merging approach).

Shape legend: B batch, N samples, T frames, W windows (``ceil(T / m)``), Q codebooks,
D latent dim.

A trained residual-VQ codec is reused without retraining; only its residual vector
quantisation changes. Before the VQ of layer ``i`` the current residual is average-pooled over
windows of ``m_i`` frames and each window's mean is repeated back over its frames; that is
quantised, and the quantised (repeated) vectors are subtracted from the residual as in plain
RVQ. Layer ``i``'s codes are then constant within each window of ``m_i`` frames, so an AR model
over layer 1 can run at ``frame_rate / m_1`` (VALL-E R uses ``m_1 = 2``, the other layers 1).

Any codec that exposes its RVQ input and layers (:class:`ResidualVQCodec`) can be merged:
EnCodec (the encoder output and its ``EncodecVectorQuantization`` layers) and the offline
mel-RVQ codec (normalised log-mel frames and its k-means codebooks). Both are registered as
codecs, ``encodec_merged`` and ``mel_rvq_merged`` (option ``merge_rates``, one ``m_i`` per
codebook), so ``codec.json`` and checkpoints record merged codes as such.

Last window: when ``m_i`` does not divide an item's frame count ``T_b``, the last window is
padded to ``m_i`` frames but its mean is taken over its real frames only (the padding neither
counts nor pulls the mean toward zero); its code is repeated over those real frames. Windows
start at frame 0 of every item, so batching does not change an item's windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from valle.codec.encodec import _check_waves
from valle.codec.registry import get_codec_loader, register_codec

__all__ = [
    "MergedRVQCodec",
    "ResidualVQCodec",
    "check_merge_rates",
    "encode_merged",
    "merge_residual",
]


@runtime_checkable
class ResidualVQCodec(Protocol):
    """What merging needs of a codec besides the ``Codec`` protocol.

    ``latents(wavs)``: the RVQ input, batch by batch, as a list of
    ``(indices into wavs, latent (b, D, T), valid frames per item)``.
    ``quantizer_layers``: the first Q layers, each with ``encode((b, D, T)) -> (b, T)`` long
    and ``decode((b, T)) -> (b, D, T)``; plain RVQ is ``encode``/``decode``/subtract per layer.
    """

    @property
    def num_codebooks(self) -> int: ...

    @property
    def quantizer_layers(self) -> Sequence[Any]: ...

    def latents(
        self, wavs: list[torch.Tensor]
    ) -> list[tuple[list[int], torch.Tensor, list[int]]]: ...

    def decode(self, codes: list[torch.Tensor]) -> list[torch.Tensor]: ...


def check_merge_rates(merge_rates: Sequence[int], num_codebooks: int) -> tuple[int, ...]:
    """Validate per-layer merge rates: ``num_codebooks`` integers, each >= 1."""
    if isinstance(merge_rates, (str, bytes)) or not isinstance(merge_rates, Sequence):
        raise ValueError(
            f"merge_rates must be a sequence of {num_codebooks} integers (one per codebook), "
            f"e.g. {[2] + [1] * (num_codebooks - 1)}; got {merge_rates!r}."
        )
    rates = tuple(merge_rates)
    if len(rates) != num_codebooks:
        raise ValueError(
            f"merge_rates has {len(rates)} entries but the codec has {num_codebooks} codebooks; "
            f"give one rate per codebook, e.g. {[2] + [1] * (num_codebooks - 1)}."
        )
    for i, m in enumerate(rates):
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(
                f"merge rate {m!r} for codebook {i} is invalid; rates are integers >= 1 "
                "(1 = no merging, m = one code per m frames)."
            )
    return rates


def merge_residual(residual: torch.Tensor, rate: int, frames: Sequence[int]) -> torch.Tensor:
    """Average-pool a residual over windows of ``rate`` frames, per item.

    Args:
        residual: ``(B, D, T)`` padded batch.
        rate: window length m >= 1.
        frames: valid frames ``T_b`` per item; frames past them are ignored.
    Returns:
        window means ``(B, D, W)``, ``W = ceil(T / rate)``; a last partial window is the mean
        of its valid frames; windows with no valid frame are 0.
    """
    batch, dim, total = residual.shape
    windows = -(-total // rate)
    valid = (
        torch.arange(total, device=residual.device)[None, :]
        < torch.tensor(list(frames), device=residual.device)[:, None]
    )  # (B, T)
    valid = valid.to(residual.dtype).unsqueeze(1)  # (B, 1, T)
    pad = windows * rate - total
    sums = torch.nn.functional.pad(residual * valid, (0, pad))  # (B, D, W * m)
    sums = sums.view(batch, dim, windows, rate).sum(-1)  # (B, D, W)
    counts = (
        torch.nn.functional.pad(valid, (0, pad)).view(batch, 1, windows, rate).sum(-1)
    )  # (B, 1, W)
    return sums / counts.clamp_min(1)


def merged_rvq(
    layers: Sequence[Any], latent: torch.Tensor, frames: Sequence[int], rates: Sequence[int]
) -> torch.Tensor:
    """Residual VQ with per-layer merging. latent ``(B, D, T)`` -> codes ``(B, Q, T)``.

    A layer of rate 1 runs exactly as plain RVQ (``encode`` then ``decode`` on the residual).
    """
    total = latent.shape[-1]
    residual = latent
    codes = []
    for layer, rate in zip(layers, rates, strict=True):
        if rate == 1:
            indices = layer.encode(residual)  # (B, T)
            quantized = layer.decode(indices)  # (B, D, T)
        else:
            pooled = merge_residual(residual, rate, frames)  # (B, D, W)
            window_codes = layer.encode(pooled)  # (B, W)
            indices = window_codes.repeat_interleave(rate, dim=-1)[:, :total]  # (B, T)
            quantized = layer.decode(window_codes).repeat_interleave(rate, dim=-1)[
                ..., :total
            ]  # (B, D, T)
        residual = residual - quantized
        codes.append(indices)
    return torch.stack(codes, dim=1)  # (B, Q, T)


def _check_base(codec: Any) -> None:
    if not isinstance(codec, ResidualVQCodec):
        raise TypeError(
            f"{type(codec).__name__} cannot be merged: merging needs a residual-VQ codec with "
            "latents(wavs) and quantizer_layers (EncodecCodec, MelRVQCodec)."
        )


def encode_merged(
    codec: ResidualVQCodec, wavs: list[torch.Tensor], merge_rates: Sequence[int]
) -> list[torch.Tensor]:
    """Encode mono waves with merged RVQ layers (VALL-E R, Sec. 3.2).

    Args:
        codec: the base codec (EnCodec at any bandwidth, or mel-RVQ;
            ``len(merge_rates) == codec.num_codebooks``).
        wavs: list of B float tensors ``(N_b,)`` at ``codec.sample_rate``.
        merge_rates: m_i per codebook, integers >= 1.
    Returns:
        list of B long tensors ``(T_b, Q)`` on the first wave's device, the same frame counts
        as ``codec.encode``; layer ``i`` is constant on frames ``[k * m_i, (k + 1) * m_i)``.
        All rates 1 gives exactly ``codec.encode(wavs)``.
    """
    _check_base(codec)
    rates = check_merge_rates(merge_rates, codec.num_codebooks)
    _check_waves(wavs)
    layers = codec.quantizer_layers
    out: list[torch.Tensor | None] = [None] * len(wavs)
    with torch.inference_mode():
        for group, latent, frames in codec.latents(wavs):
            codes = merged_rvq(layers, latent, frames, rates)  # (b, Q, T)
            for j, i in enumerate(group):
                out[i] = codes[j, :, : frames[j]].transpose(0, 1)  # (T_b, Q)
    # Clone outside inference mode: inference tensors cannot be saved for backward.
    return [c.to(wavs[0].device).clone() for c in out if c is not None]


class MergedRVQCodec:
    """A ``Codec`` whose encoder merges RVQ layers (VALL-E R, Sec. 3.2); decodes as the base.

    Codec facts (sample rate, frame rate, Q, codebook size) are the base codec's: merged codes
    keep the full frame rate, with layer ``i`` repeated over windows of ``merge_rates[i]``.

    Args:
        base: the residual-VQ codec to merge (``EncodecCodec`` or ``MelRVQCodec``).
        merge_rates: m_i per codebook (length Q, integers >= 1), e.g. ``[2, 1, 1, 1, 1, 1, 1, 1]``.
    """

    def __init__(self, base: ResidualVQCodec, merge_rates: Sequence[int]) -> None:
        _check_base(base)
        self._base = base
        self._rates = check_merge_rates(merge_rates, base.num_codebooks)

    @property
    def base(self) -> Any:
        """The codec whose RVQ is merged."""
        return self._base

    @property
    def merge_rates(self) -> tuple[int, ...]:
        """m_i per codebook."""
        return self._rates

    @property
    def options(self) -> dict[str, Any]:
        """The loader options this codec was made with (``{"merge_rates": [m_i, ...]}``), as
        a ``CodecInfo`` records them: readers of the merge rates ask for ``options`` alike."""
        return {"merge_rates": list(self._rates)}

    @property
    def sample_rate(self) -> int:
        return int(self._base.sample_rate)  # type: ignore[attr-defined]

    @property
    def frame_rate(self) -> float:
        return float(self._base.frame_rate)  # type: ignore[attr-defined]

    @property
    def num_codebooks(self) -> int:
        return self._base.num_codebooks

    @property
    def codebook_size(self) -> int:
        return int(self._base.codebook_size)  # type: ignore[attr-defined]

    def num_frames(self, num_samples: int) -> int:
        """Frames ``encode`` returns for a wave of ``num_samples`` samples (the base's)."""
        return int(self._base.num_frames(num_samples))  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"MergedRVQCodec({self._base!r}, merge_rates={list(self._rates)})"

    def encode(self, wavs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Encode with merging; see ``encode_merged``."""
        return encode_merged(self._base, wavs, self._rates)

    def decode(self, codes: list[torch.Tensor]) -> list[torch.Tensor]:
        """Decode as the base codec (merged codes are ordinary codes)."""
        return self._base.decode(codes)


# ------------------------------------------------------------------ registry entries


class _MergedLoader:
    """Registry entry of a merged codec: the base codec's files and options, plus
    ``merge_rates`` (m_i per codebook). A bare directory is the base codec's, so ``recognize``
    leaves it to the base; checkpoints embed the merged codec when they embed the base."""

    name: str
    base_name: str
    embeddable: bool

    @property
    def _base(self) -> Any:
        return get_codec_loader(self.base_name)

    def load(
        self,
        path: str,
        device: str = "cpu",
        merge_rates: Sequence[int] | None = None,
        **options: Any,
    ) -> MergedRVQCodec:
        if merge_rates is None:
            raise ValueError(
                f"codec {self.name!r} needs the option merge_rates: one integer >= 1 per "
                "codebook, e.g. [2, 1, 1, 1, 1, 1, 1, 1] (VALL-E R merges codebook 1 at m_1 = 2); "
                f"without merging use the codec {self.base_name!r}."
            )
        base = self._base.load(path, device=device, **options)
        return MergedRVQCodec(base, merge_rates)

    def is_remote(self, path: str) -> bool:
        return bool(self._base.is_remote(path))

    def recognize(self, directory: Any) -> dict[str, Any] | None:
        return None  # the files are the base codec's: loading them bare gives the base

    def embed(self, codec: Any) -> dict[str, Any] | None:
        if not isinstance(codec, MergedRVQCodec):
            return None
        payload = self._base.embed(codec.base)
        if payload is None:
            return None
        return {"base": payload, "merge_rates": list(codec.merge_rates)}

    def from_embedded(self, payload: Mapping[str, Any], device: str = "cpu") -> MergedRVQCodec:
        if (
            not isinstance(payload, Mapping)
            or "base" not in payload
            or "merge_rates" not in payload
        ):
            raise ValueError(
                f"not an embedded {self.name} codec: expected {{'base': ..., 'merge_rates': [...]}}"
            )
        base = self._base.from_embedded(payload["base"], device=device)
        return MergedRVQCodec(base, list(payload["merge_rates"]))


@register_codec("encodec_merged")
class MergedEncodecLoader(_MergedLoader):
    """EnCodec (hub id or ``save_pretrained`` directory, option ``bandwidth``) with merged RVQ
    layers (option ``merge_rates``); kept by path in checkpoints, as EnCodec."""

    base_name = "encodec"
    embeddable = False


@register_codec("mel_rvq_merged")
class MergedMelRVQLoader(_MergedLoader):
    """The offline mel-RVQ codec (a fitted directory) with merged RVQ layers (option
    ``merge_rates``); small, so checkpoints embed it."""

    base_name = "mel_rvq"
    embeddable = True
