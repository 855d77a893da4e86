"""Codec resynthesis written to files: the "codec" row's waves and the prompts for SIM-r.

Shape legend: none (waves are 1-D float arrays at their own rate).

A job is ``(out path, wave, sample rate)``: :func:`protocol_jobs` gives a protocol list's
targets (``<out>/<id>.wav``) and prompts (``<out>/prompts/<id>.wav``), :func:`cut_jobs` every
cut of a manifest; :func:`write_resynthesized` passes each through the codec
(:func:`valle.eval.resynth.resynthesize`) and writes it at the codec's rate.

:class:`ResynthCache` keeps each written wave under a key of its input and the codec, so a
second decoding of the same test lists (another model, another seed) copies the codec row
instead of computing it again (the mini recipe's ``$data_dir/resynth_cache``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["ResynthCache", "codec_fingerprint", "cut_jobs", "protocol_jobs", "write_resynthesized"]

Job = tuple[Path, Any, int]


def protocol_jobs(items: Iterable[Any], cuts: Any, out_dir: Path) -> Iterator[Job]:
    """Each item's target and prompt audio (from ``cuts``, read when the job's turn comes)
    with its output path."""
    from valle.eval.protocols import load_prompt_audio, load_target_audio

    for item in items:
        yield (out_dir / f"{item.id}.wav", *load_target_audio(item, cuts))
        yield (out_dir / "prompts" / f"{item.id}.wav", *load_prompt_audio(item, cuts))


def cut_jobs(cuts: Iterable[Any], out_dir: Path) -> Iterator[Job]:
    """Every cut's recording with its output path ``<out_dir>/<cut id>.wav``."""
    for c in cuts:
        yield (out_dir / f"{c.id}.wav", c.load_audio()[0], int(c.sampling_rate))


PROBE_SECONDS = 0.5
"""Length of the fixed probe signal whose resynthesis identifies a codec (:func:`codec_fingerprint`)."""


def codec_fingerprint(codec: Any, num_codebooks: int | None = None) -> str:
    """A digest of what ``codec`` does: its class, rate, codebooks kept and the exact output of
    resynthesizing a fixed probe (a chirp plus seeded noise, :data:`PROBE_SECONDS` long).

    Any change of weights or settings that changes the probe's resynthesis changes the digest,
    whatever the codec (EnCodec, the mel-RVQ codec and its vocoder, a merged codec), so a cache
    keyed by it is never served by another codec. A different thread count or machine may round
    differently and so give another digest: that only costs a cache miss.
    """
    import hashlib

    import numpy as np

    from valle.eval.resynth import resynthesize

    sr = int(codec.sample_rate)
    t = np.arange(int(PROBE_SECONDS * sr), dtype=np.float64) / sr
    chirp = 0.3 * np.sin(2 * np.pi * (100.0 * t + 1500.0 * t**2))
    noise = 0.05 * np.random.default_rng(20261201).standard_normal(len(t))
    (out,) = resynthesize(codec, [(chirp + noise).astype(np.float32)], sr, num_codebooks)
    h = hashlib.sha256()
    h.update(f"{type(codec).__module__}.{type(codec).__qualname__}|{sr}|{num_codebooks}".encode())
    h.update(np.ascontiguousarray(out, dtype=np.float32).tobytes())
    return h.hexdigest()


class ResynthCache:
    """Resynthesized waves stored by content in ``root``: ``<key>.wav`` per input wave.

    The key covers the input samples, their rate and :func:`codec_fingerprint`, so a hit is the
    wave this codec would write for this input. Entries are written atomically (a reader never
    sees half a file) and copied out atomically.
    """

    VERSION = 1  # bump when what a resynthesized file holds changes

    def __init__(self, root: str | Path, codec: Any, num_codebooks: int | None = None) -> None:
        self.root = Path(root)
        self.codec_id = codec_fingerprint(codec, num_codebooks)
        self.hits = 0
        self.misses = 0

    def key(self, wave: Any, sample_rate: int) -> str:
        """The entry name of ``wave`` (1-D samples at ``sample_rate``) through this codec."""
        import hashlib

        import numpy as np

        h = hashlib.sha256(f"{self.VERSION}|{self.codec_id}|{int(sample_rate)}".encode())
        h.update(np.ascontiguousarray(wave, dtype=np.float32).tobytes())
        return h.hexdigest()[:40]

    def fetch(self, key: str, dest: Path) -> bool:
        """Copy entry ``key`` to ``dest``; False (a miss) when there is none."""
        import shutil

        from valle.io.atomic import atomic_path

        entry = self.root / f"{key}.wav"
        if not entry.is_file():
            self.misses += 1
            return False
        with atomic_path(dest, keep_suffix=True) as tmp:
            shutil.copyfile(entry, tmp)
        self.hits += 1
        return True

    def store(self, key: str, src: Path) -> None:
        """Keep the written wave ``src`` as entry ``key``."""
        import shutil

        from valle.io.atomic import atomic_path

        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.root / f"{key}.wav", keep_suffix=True) as tmp:
            shutil.copyfile(src, tmp)


def write_resynthesized(
    codec: Any,
    jobs: Iterable[Job],
    num_codebooks: int | None = None,
    total: int | None = None,
    progress: bool = True,
    cache: ResynthCache | None = None,
) -> int:
    """Encode and decode each job's wave with ``codec`` (the first ``num_codebooks`` only, None:
    all) and write it (atomically) at ``codec.sample_rate``; the number of waves written
    (``total``: how many to expect, for the progress bar). With ``cache`` (made for the same
    codec and ``num_codebooks``) a wave resynthesized before is copied from it instead."""
    from tqdm import tqdm

    from valle.eval.audio import write_wave
    from valle.eval.resynth import resynthesize

    n = 0
    for path, wave, sr in tqdm(jobs, total=total, desc="resynth", unit="wav",
                               disable=not progress):  # fmt: skip
        key = cache.key(wave, sr) if cache is not None else None
        if cache is None or not cache.fetch(key, path):
            (out,) = resynthesize(codec, [wave], sr, num_codebooks)
            write_wave(path, out, codec.sample_rate)
            if cache is not None:
                cache.store(key, path)
        n += 1
    return n
