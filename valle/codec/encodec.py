"""EnCodec (Défossez et al., 2022) as a valle ``Codec``, built on ``transformers.EncodecModel``.

Shape legend: B batch, N samples, T frames, Q codebooks, D latent dim (codebook_dim).

VALL-E (Wang et al., 2023, Sec. 3, speech quantization) tokenizes 24 kHz speech with EnCodec at 6 kbps:
8 residual codebooks of 1024 entries at 75 frames per second. Here the bandwidth picks Q and
every codec fact is read from the model config, so other EnCodec checkpoints work unchanged.

Batching. The 24 kHz EnCodec is fully causal (causal convolutions, one-directional LSTM) and
has no chunking, so frame ``t`` depends only on samples before ``(t + 1) * hop_length``. Each
wave is zero-padded to a whole number of frames, ``T_b = ceil(N_b / hop_length)``, before it
is batched; the batch is then zero-padded to the longest item and the padding mask is passed
to the model. With every item a whole number of frames long, no convolution reads past an
item's own end, so an item's codes do not depend on what else is in the batch. Decoding is
causal as well: the decoded batch is trimmed to ``T_b * hop_length`` samples per item.
The first frames are the exception: EnCodec's causal convolutions pad on the left by
reflection, so frame 0 reads a few frames ahead; items shorter than ``min_batch_frames`` (7 for
the 24 kHz model, worked out from the layers) therefore run alone. Non-causal models (e.g. the
48 kHz one) are encoded one item at a time. In float64 batched and single runs agree bit for
bit; in float32 the convolution kernels for different batch shapes round differently (~1e-7),
which can flip a code where two codewords are almost equally near (see
``valle.testing.codec.non_tie_mismatches``). Callers choose the batch size: one call is one
padded batch.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from valle.codec.registry import register_codec

if TYPE_CHECKING:  # transformers is imported lazily: it is slow to import.
    from transformers import EncodecModel

    from valle.codec.base import Codec

logger = logging.getLogger(__name__)

__all__ = ["EncodecCodec", "encodec_throughput"]


def _check_model(model: Any) -> None:
    """Reject EnCodec setups whose codes cannot be decoded from codes alone."""
    config = getattr(model, "config", None)
    needed = ("sampling_rate", "upsampling_ratios", "codebook_size", "target_bandwidths")
    if config is None or not all(hasattr(config, name) for name in needed):
        raise TypeError(
            f"EncodecCodec needs a transformers.EncodecModel; got {type(model).__name__}. "
            "Build one with EncodecCodec.from_pretrained(...) or transformers.EncodecModel(config)."
        )
    if config.audio_channels != 1:
        raise ValueError(
            f"EncodecCodec handles mono models only; this model has audio_channels="
            f"{config.audio_channels}. Use a mono checkpoint such as facebook/encodec_24khz."
        )
    if config.normalize or config.chunk_length_s is not None:
        raise ValueError(
            "EncodecCodec needs an EnCodec model without input normalisation and chunking "
            f"(got normalize={config.normalize}, chunk_length_s={config.chunk_length_s}): such "
            "models need per-chunk scales to decode, which codes alone do not carry. "
            "Use facebook/encodec_24khz."
        )


class EncodecCodec:
    """EnCodec wrapped in the valle ``Codec`` protocol (``valle.codec.base.Codec``).

    Args:
        model: a ``transformers.EncodecModel`` (mono, no chunking, no normalisation).
        bandwidth: target bandwidth in kbps, one of ``model.config.target_bandwidths``;
            it fixes Q. For the 24 kHz model 1.5/3/6/12/24 kbps give 2/4/8/16/32 codebooks.
    """

    def __init__(self, model: EncodecModel, bandwidth: float = 6.0) -> None:
        _check_model(model)
        self._model = model.eval()
        self._model.float()
        config = model.config
        allowed = [float(b) for b in config.target_bandwidths]
        matches = [b for b in allowed if math.isclose(b, float(bandwidth), abs_tol=1e-6)]
        if not matches:
            table = ", ".join(f"{b:g} kbps -> {self._quantizers_for(b)} codebooks" for b in allowed)
            raise ValueError(
                f"bandwidth {bandwidth!r} kbps is not supported by this EnCodec model; "
                f"choose one of: {table}."
            )
        # Keep the config's own float: EncodecModel.encode compares bandwidths exactly.
        self._bandwidth = next(b for b in config.target_bandwidths if float(b) == matches[0])
        self._num_codebooks = self._quantizers_for(self._bandwidth)
        self._hop_length = int(math.prod(config.upsampling_ratios))
        self._min_batch_frames = _min_batch_frames(model) if config.use_causal_conv else None
        logger.debug(
            "EnCodec: %d Hz, hop %d, %d codebooks x %d at %g kbps",
            self.sample_rate,
            self._hop_length,
            self._num_codebooks,
            self.codebook_size,
            self._bandwidth,
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] = "facebook/encodec_24khz",
        bandwidth: float = 6.0,
        device: str | torch.device = "cpu",
    ) -> EncodecCodec:
        """Load pretrained EnCodec weights from a hub id or a local directory.

        A local directory (``save_pretrained`` layout: config.json + weights) is read without
        touching the network; a hub id needs network access or the local hub cache.
        """
        from transformers import EncodecModel

        path = os.fspath(name_or_path)
        local = os.path.isdir(path)
        if not local and (path.startswith((os.sep, ".", "~")) or os.path.exists(path)):
            raise FileNotFoundError(
                f"{path!r} is not a model directory; pass a directory with config.json and "
                "weights (EncodecModel.save_pretrained) or a hub id like facebook/encodec_24khz."
            )
        try:
            model = EncodecModel.from_pretrained(path, local_files_only=local)
        except OSError as err:
            raise OSError(
                f"could not load EnCodec weights from {path!r} ({err}). Pass a local directory "
                "made with EncodecModel.save_pretrained, or a hub id with network access."
            ) from err
        torch.nn.Module.to(model, torch.device(device))  # the constructor casts to float32
        return cls(model, bandwidth=bandwidth)

    # ------------------------------------------------------------------ codec facts

    @property
    def model(self) -> EncodecModel:
        """The wrapped ``transformers.EncodecModel``."""
        return self._model

    @property
    def device(self) -> torch.device:
        return next(self._model.parameters()).device

    @property
    def bandwidth(self) -> float:
        """Target bandwidth in kbps."""
        return float(self._bandwidth)

    @property
    def sample_rate(self) -> int:
        return int(self._model.config.sampling_rate)

    @property
    def hop_length(self) -> int:
        """Samples per code frame."""
        return self._hop_length

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self._hop_length

    @property
    def num_codebooks(self) -> int:
        return self._num_codebooks

    @property
    def codebook_size(self) -> int:
        return int(self._model.config.codebook_size)

    @property
    def quantizer_layers(self) -> Sequence[Any]:
        """The first Q RVQ layers (``EncodecVectorQuantization``), with ``encode``/``decode``."""
        return list(self._model.quantizer.layers[: self._num_codebooks])

    @property
    def min_batch_frames(self) -> int | None:
        """Items shorter than this (in frames) are encoded/decoded alone, not in the batch:
        the reflect padding of EnCodec's first outputs reads a few frames ahead (7 frames for
        the 24 kHz model). None: every item runs alone (non-causal model)."""
        return self._min_batch_frames

    def num_frames(self, num_samples: int) -> int:
        """Frames ``encode`` returns for a wave of ``num_samples`` samples."""
        return -(-int(num_samples) // self._hop_length)

    def _quantizers_for(self, bandwidth: float) -> int:
        return int(self._model.quantizer.get_num_quantizers_for_bandwidth(bandwidth))

    def __repr__(self) -> str:
        return (
            f"EncodecCodec(sample_rate={self.sample_rate}, frame_rate={self.frame_rate:g}, "
            f"bandwidth={self.bandwidth:g}, num_codebooks={self.num_codebooks}, "
            f"codebook_size={self.codebook_size})"
        )

    # ------------------------------------------------------------------ batching

    def _groups(self, frames: Sequence[int]) -> Iterator[list[int]]:
        """Indices to run together: one batch for causal models, except items shorter than
        ``min_batch_frames`` (and every item of a non-causal model), which run alone."""
        limit = self._min_batch_frames
        batched = [i for i, t in enumerate(frames) if limit is not None and t >= limit]
        if batched:
            yield batched
        for i, t in enumerate(frames):
            if limit is None or t < limit:
                yield [i]

    def _pad_waves(
        self, wavs: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Zero-pad each wave to whole frames, then the batch to its longest item.

        Returns:
            input_values ``(B, 1, N)``, padding_mask ``(B, 1, N)`` bool, frames per item.
        """
        frames = [self.num_frames(w.shape[-1]) for w in wavs]
        total = max(frames) * self._hop_length
        weight = next(self._model.parameters())
        device, dtype = weight.device, weight.dtype  # float32 unless a test cast the model
        input_values = torch.zeros(len(wavs), 1, total, device=device, dtype=dtype)  # (B, 1, N)
        padding_mask = torch.zeros(len(wavs), 1, total, dtype=torch.bool, device=device)
        for b, wav in enumerate(wavs):
            input_values[b, 0, : wav.shape[-1]] = wav.to(device=device, dtype=dtype)
            padding_mask[b, 0, : wav.shape[-1]] = True
        return input_values, padding_mask, frames

    def latents(self, wavs: list[torch.Tensor]) -> list[tuple[list[int], torch.Tensor, list[int]]]:
        """Encoder outputs before quantisation, batch by batch (as ``encode`` batches them).

        Returns:
            list of (indices into ``wavs``, latents ``(b, D, T)``, valid frames per item);
            frames past an item's own count hold whatever the padding produced.
        """
        _check_waves(wavs)
        out = []
        with torch.inference_mode():
            lengths = [self.num_frames(w.shape[-1]) for w in wavs]
            for group in self._groups(lengths):
                input_values, padding_mask, frames = self._pad_waves([wavs[i] for i in group])
                latent = self._model.encoder(input_values * padding_mask)  # (b, D, T)
                out.append((group, latent, frames))
        return out

    # ------------------------------------------------------------------ Codec protocol

    def encode(self, wavs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Encode mono waves ``(N_b,)`` to codes ``(T_b, Q)``, ``T_b = ceil(N_b / hop_length)``.

        Codes come back as long tensors on the device of the first wave.
        """
        _check_waves(wavs)
        out: list[torch.Tensor | None] = [None] * len(wavs)
        with torch.inference_mode():
            lengths = [self.num_frames(w.shape[-1]) for w in wavs]
            for group in self._groups(lengths):
                input_values, padding_mask, frames = self._pad_waves([wavs[i] for i in group])
                encoded = self._model.encode(
                    input_values, padding_mask, bandwidth=self._bandwidth, return_dict=True
                )
                codes = encoded.audio_codes[0]  # (b, Q, T): one chunk for unchunked models
                for j, i in enumerate(group):
                    out[i] = codes[j, :, : frames[j]].transpose(0, 1)  # (T_b, Q)
        # Clone outside inference mode: inference tensors cannot be saved for backward.
        return [c.to(wavs[0].device).clone() for c in out if c is not None]

    def decode(self, codes: list[torch.Tensor]) -> list[torch.Tensor]:
        """Decode codes ``(T_b, Q')`` (the first ``Q' <= Q`` codebooks) to waves ``(T_b * hop,)``."""
        _check_codes(codes, self._num_codebooks, self.codebook_size)
        out: list[torch.Tensor | None] = [None] * len(codes)
        with torch.inference_mode():
            for group in self._groups([c.shape[0] for c in codes]):
                items = [codes[i] for i in group]
                longest = max(c.shape[0] for c in items)
                q = items[0].shape[1]
                batch = torch.zeros(len(items), q, longest, dtype=torch.long, device=self.device)
                for j, c in enumerate(items):
                    batch[j, :, : c.shape[0]] = c.transpose(0, 1)  # (Q', T_b)
                decoded = self._model.decode(batch.unsqueeze(0), [None], return_dict=True)
                audio = decoded.audio_values[:, 0]  # (b, N)
                for j, i in enumerate(group):
                    n = items[j].shape[0] * self._hop_length
                    out[i] = audio[j, :n].float()
        return [w.to(codes[0].device).clone() for w in out if w is not None]


def _reach(modules: Iterable[Any], index: int) -> int | None:
    """Largest input index that outputs ``0..index`` of ``modules`` (run in order) read.

    Causal EnCodec convolutions pad on the left by reflection, so their first outputs read
    ``padding_total`` future positions. Returns None for a module it cannot analyse.
    """
    from transformers.models.encodec import modeling_encodec as me

    for module in reversed(list(modules)):
        if isinstance(module, me.EncodecConv1d):
            conv = module.conv
            span = (conv.kernel_size[0] - 1) * conv.dilation[0] + 1
            stride = conv.stride[0]
            index = max((index + 1) * stride - 1, span - stride)
        elif isinstance(module, me.EncodecConvTranspose1d):
            tconv = module.conv
            stride = tconv.stride[0]
            pad = tconv.kernel_size[0] - stride
            left = pad - math.ceil(pad * module.trim_right_ratio)
            index = (index + left) // stride
        elif isinstance(module, me.EncodecResnetBlock):
            branch = _reach(module.block, index)
            shortcut = _reach([module.shortcut], index)
            if branch is None or shortcut is None:
                return None
            index = max(branch, shortcut)
        elif isinstance(module, (me.EncodecLSTM, torch.nn.ELU, torch.nn.Identity)):
            pass  # one-directional LSTM and pointwise maps: output t reads input t and before
        else:
            return None
    return index


def _min_batch_frames(model: Any, horizon: int = 4096) -> int | None:
    """Fewest frames an item needs for its codes and decoded samples not to read past its own
    end (so batching with longer items changes nothing); None if it cannot be worked out."""
    hop = int(math.prod(model.config.upsampling_ratios))
    # Both reaches are max(constant, linear in t), so the first safe t stays safe after.
    for t in range(1, horizon + 1):
        enc = _reach(model.encoder.layers, t - 1)  # sample index frames 0..t-1 read
        dec = _reach(model.decoder.layers, t * hop - 1)  # frame index samples 0..t*hop-1 read
        if enc is None or dec is None:
            logger.warning("unknown EnCodec layer type: encoding items one at a time")
            return None
        if enc <= t * hop - 1 and dec <= t - 1:
            return t
    return None


def _check_waves(wavs: Sequence[torch.Tensor]) -> None:
    if isinstance(wavs, torch.Tensor) or len(wavs) == 0:
        raise ValueError(
            "encode takes a non-empty list of mono waves (1-D tensors); "
            "for a single wave pass [wave], for a padded batch pass list(batch[b, :n_b])."
        )
    for b, wav in enumerate(wavs):
        if not isinstance(wav, torch.Tensor) or wav.dim() != 1:
            shape = tuple(wav.shape) if isinstance(wav, torch.Tensor) else type(wav).__name__
            raise ValueError(
                f"wave {b} must be a 1-D tensor (N,), got {shape}; downmix multi-channel audio "
                "with wav.mean(0) and resample to the codec's sample_rate first."
            )
        if wav.numel() == 0:
            raise ValueError(f"wave {b} is empty; drop empty recordings before encoding.")
        if not wav.is_floating_point():
            raise ValueError(f"wave {b} has dtype {wav.dtype}; pass float samples in [-1, 1].")


def _check_codes(codes: Sequence[torch.Tensor], max_q: int, codebook_size: int) -> None:
    if isinstance(codes, torch.Tensor) or len(codes) == 0:
        raise ValueError("decode takes a non-empty list of (T_b, Q) long tensors.")
    q = None
    for b, c in enumerate(codes):
        if not isinstance(c, torch.Tensor) or c.dim() != 2 or c.shape[0] == 0:
            shape = tuple(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__
            raise ValueError(f"codes {b} must be a non-empty (T, Q) tensor, got {shape}.")
        if c.is_floating_point():
            raise ValueError(f"codes {b} has dtype {c.dtype}; codes are integer indices.")
        if q is None:
            q = c.shape[1]
        if c.shape[1] != q or not 1 <= q <= max_q:
            raise ValueError(
                f"codes {b} has {c.shape[1]} codebooks; all items need the same Q' "
                f"with 1 <= Q' <= {max_q} (the codec's num_codebooks)."
            )
        if int(c.min()) < 0 or int(c.max()) >= codebook_size:
            raise ValueError(
                f"codes {b} has values outside [0, {codebook_size}); "
                "were they made by a codec with a different codebook_size?"
            )


def encodec_throughput(
    codec: Codec,
    seconds: float = 10.0,
    batch: int = 1,
    repeats: int = 3,
    decode: bool = True,
    seed: int = 0,
) -> dict[str, float]:
    """Measure tokenization (and decoding) speed on the current device.

    Encodes ``repeats`` batches of ``batch`` noise-plus-tone waves of ``seconds`` each (after
    one untimed warm-up batch) and reports seconds of audio processed per wall-clock second.
    Works for any ``Codec``; meant for EnCodec at 6 kbps.

    Returns:
        dict with ``audio_seconds``, ``encode_wall_s``, ``encode_audio_s_per_s``,
        ``encode_rtf`` (wall / audio) and, when ``decode``, the same ``decode_*`` keys, plus
        ``threads`` (torch intra-op threads).
    """
    if seconds <= 0 or batch < 1 or repeats < 1:
        raise ValueError("seconds must be > 0, batch and repeats >= 1.")
    gen = torch.Generator().manual_seed(seed)
    n = int(round(seconds * codec.sample_rate))
    t = torch.arange(n) / codec.sample_rate
    wavs = [
        0.3 * torch.sin(2 * math.pi * (120 + 40 * b) * t) + 0.05 * torch.randn(n, generator=gen)
        for b in range(batch)
    ]
    codes = codec.encode(wavs)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        codes = codec.encode(wavs)
    enc_wall = time.perf_counter() - start
    audio = seconds * batch * repeats
    result = {
        "audio_seconds": audio,
        "encode_wall_s": enc_wall,
        "encode_audio_s_per_s": audio / enc_wall,
        "encode_rtf": enc_wall / audio,
        "threads": float(torch.get_num_threads()),
    }
    if decode:
        codec.decode(codes)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            codec.decode(codes)
        dec_wall = time.perf_counter() - start
        result.update(
            decode_wall_s=dec_wall,
            decode_audio_s_per_s=audio / dec_wall,
            decode_rtf=dec_wall / audio,
        )
    return result


@register_codec("encodec")
class EncodecLoader:
    """Registry entry of EnCodec (``transformers``): a hub id or a ``save_pretrained``
    directory. Hundreds of MB, so checkpoints keep its path instead of embedding it."""

    name = "encodec"
    embeddable = False

    def load(self, path: str, device: str = "cpu", **options: Any) -> EncodecCodec:
        return EncodecCodec.from_pretrained(path, device=device, **options)

    def is_remote(self, path: str) -> bool:
        """A hub id ``owner/name`` (fetched by transformers), not a local path."""
        import re

        return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", path) is not None

    def recognize(self, directory: Path) -> dict[str, Any] | None:
        import json

        config = directory / "config.json"
        if not config.is_file():
            return None
        try:
            meta = json.loads(config.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        if not isinstance(meta, dict) or meta.get("model_type") != "encodec":
            return None
        bandwidths = meta.get("target_bandwidths") or [6.0]  # the most codebooks it offers
        return {"bandwidth": float(max(bandwidths))}

    def embed(self, codec: Any) -> dict[str, Any] | None:
        return None

    def from_embedded(self, payload: Any, device: str = "cpu") -> EncodecCodec:
        raise ValueError("EnCodec is never embedded in a checkpoint; pass its directory")
