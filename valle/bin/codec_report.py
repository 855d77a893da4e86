"""Measure a fitted ``MelRVQCodec``: mel reconstruction error per codebook count, ASR WER of the
original audio vs the codec resynthesis, encode/decode speed; optionally fit the codec first.

Examples::

    # fit 8 x 1024 codebooks on a directory of wavs, then measure on held-out wav + txt pairs
    python -m valle.bin.codec_report exp/mel_rvq --fit-on data/train_wavs --data data/test_wavs

    # measure an existing codec on a lhotse cuts manifest (transcripts from the supervisions)
    python -m valle.bin.codec_report exp/mel_rvq --data data/manifests/cuts_test.jsonl.gz

Error is measured on the codec's normalised log-mel (per-bin mean/std of the fit corpus), so
1.0 MSE is the error of predicting the mean frame. WER uses ``valle.eval`` (faster-whisper, int8
on CPU; text normalised by ``valle.eval.normalize``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger("valle.bin.codec_report")

AUDIO_EXTS = (".wav", ".flac")


@dataclass
class Utterance:
    id: str
    wave: torch.Tensor  # (N,) at the codec's sample rate
    text: str | None


def _resample(wave: torch.Tensor, sr: int, target: int) -> torch.Tensor:
    if sr == target:
        return wave
    import soxr

    return torch.from_numpy(soxr.resample(wave.numpy(), sr, target)).float()


def load_utterances(path: Path, sample_rate: int, limit: int | None = None) -> list[Utterance]:
    """Waves (and transcripts, when there are any) from a directory of audio + ``.txt`` files or
    a lhotse manifest (cuts: text from the supervisions; recordings: no text)."""
    utts: list[Utterance] = []
    if path.is_dir():
        import soundfile as sf

        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTS)
        if not files:
            raise SystemExit(f"error: no {'/'.join(AUDIO_EXTS)} files under {path}")
        for f in files[:limit]:
            data, sr = sf.read(f, dtype="float32", always_2d=True)
            wave = _resample(torch.from_numpy(data.mean(1)), sr, sample_rate)
            txt = f.with_suffix(".txt")
            utts.append(Utterance(f.stem, wave, txt.read_text().strip() if txt.is_file() else None))
        return utts
    if not path.is_file():
        raise SystemExit(f"error: {path} is neither a directory of wavs nor a lhotse manifest")
    from lhotse import load_manifest

    manifest = load_manifest(path)
    for i, item in enumerate(manifest):
        if limit is not None and i >= limit:
            break
        if item.sampling_rate != sample_rate:
            item = item.resample(sample_rate)
        wave = torch.as_tensor(item.load_audio(), dtype=torch.float32)  # (C, N)
        text = None
        sups = getattr(item, "supervisions", None)
        if sups:
            text = " ".join(s.text for s in sups if s.text) or None
        utts.append(Utterance(item.id, wave.mean(0), text))
    if not utts:
        raise SystemExit(f"error: manifest {path} is empty")
    return utts


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "| " + " | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    body = [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join([line, sep, *body])


def reconstruction_errors(codec, utts: list[Utterance]) -> tuple[list[dict], float, float]:
    """Per Q' = 1..Q: mean L1 / MSE on normalised log-mel and L1 on log-mel, frame-weighted.
    Also returns (encode seconds, audio seconds)."""
    q_all = codec.num_codebooks
    sums = torch.zeros(q_all, 3, dtype=torch.float64)
    n_values = 0
    enc_s = 0.0
    audio_s = 0.0
    for u in utts:
        t0 = time.perf_counter()
        mel = codec.wave_to_mel(u.wave)  # (T, F)
        z = codec.normalize(mel)
        codes, _ = codec.quantize(z)  # (T, Q)
        enc_s += time.perf_counter() - t0
        audio_s += u.wave.shape[0] / codec.sample_rate
        for q in range(1, q_all + 1):
            zq = codec.codes_to_normalized(codes[:, :q])  # (T, F)
            diff = zq - z
            sums[q - 1, 0] += float(diff.abs().sum())
            sums[q - 1, 1] += float(diff.pow(2).sum())
            sums[q - 1, 2] += float((codec.denormalize(zq) - mel).abs().sum())
        n_values += z.numel()
    rows = [
        {
            "q": q,
            "l1": float(sums[q - 1, 0] / n_values),
            "mse": float(sums[q - 1, 1] / n_values),
            "logmel_l1": float(sums[q - 1, 2] / n_values),
        }
        for q in range(1, q_all + 1)
    ]
    return rows, enc_s, audio_s


def _read_as_cuts_or_waves(path: Path, sample_rate: int):
    if path.is_dir():
        return [u.wave for u in load_utterances(path, sample_rate)]
    from lhotse import load_manifest

    return load_manifest(path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m valle.bin.codec_report",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    p.add_argument(
        "codec_dir", type=Path, help="fitted MelRVQCodec directory (written with --fit-on)"
    )
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="evaluation audio: a directory of wav/flac + same-stem .txt, or a lhotse "
        "cuts/recordings manifest",
    )
    p.add_argument("--max-utts", type=int, default=None, help="use at most this many utterances")
    p.add_argument(
        "--fit-on",
        type=Path,
        default=None,
        help="fit a new codec on this wav directory / lhotse manifest and save it to "
        "codec_dir first (refuses to overwrite an existing codec)",
    )
    p.add_argument("--num-codebooks", type=int, default=8, help="Q for --fit-on")
    p.add_argument("--codebook-size", type=int, default=1024, help="K for --fit-on")
    p.add_argument("--kmeans-iters", type=int, default=20, help="Lloyd iterations per stage")
    p.add_argument("--max-fit-frames", type=int, default=100_000, help="frame sample cap for fit")
    p.add_argument("--n-mels", type=int, default=None, help="mel bins for --fit-on (default 128)")
    p.add_argument("--seed", type=int, default=0, help="fit seed")
    p.add_argument(
        "--griffin-lim-iters",
        type=int,
        default=None,
        help="override the codec's Griffin-Lim iterations for decoding",
    )
    p.add_argument("--no-wer", action="store_true", help="skip ASR (only reconstruction error)")
    p.add_argument(
        "--wer-codebooks",
        type=int,
        nargs="*",
        default=None,
        help="codebook counts Q' to resynthesise for WER (default: all Q)",
    )
    p.add_argument(
        "--asr-path",
        default="/work/shared/models/faster-whisper-base",
        help="faster-whisper (CTranslate2) model directory",
    )
    p.add_argument("--language", default="en", help="ISO 639-1 language of the transcripts")
    p.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="write report.json, per-utterance WER CSVs and resynthesised wavs here",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # one line per utterance
    from valle.codec.mel_rvq import MelRVQCodec, MelRVQConfig, default_mel_config
    from valle.codec.vocoder import GriffinLimVocoder

    report: dict[str, Any] = {}
    if args.fit_on is not None:
        if (args.codec_dir / "config.json").exists():
            raise SystemExit(
                f"error: {args.codec_dir} already holds a codec; remove it or drop --fit-on"
            )
        mel = default_mel_config()
        if args.n_mels is not None:
            from dataclasses import replace

            mel = replace(mel, n_mels=args.n_mels)
        config = MelRVQConfig(
            mel=mel,
            num_codebooks=args.num_codebooks,
            codebook_size=args.codebook_size,
            kmeans_iters=args.kmeans_iters,
            max_fit_frames=args.max_fit_frames,
            seed=args.seed,
        )
        data = _read_as_cuts_or_waves(args.fit_on, mel.sample_rate)
        codec = MelRVQCodec.fit(data, config)
        codec.save(args.codec_dir)
        print(
            f"fitted {config.num_codebooks} x {config.codebook_size} codebooks on "
            f"{codec.fit_info['audio_seconds']:.1f} s of audio "
            f"({codec.fit_info['frames_used']} frames) in {codec.fit_info['fit_seconds']:.1f} s "
            f"-> {args.codec_dir}"
        )
    vocoder = None
    codec = MelRVQCodec.load(args.codec_dir)
    if args.griffin_lim_iters is not None:
        c = codec.config
        vocoder = GriffinLimVocoder(
            codec.logmel,
            n_iter=args.griffin_lim_iters,
            momentum=c.griffin_lim_momentum,
            sharpen=c.griffin_lim_sharpen,
        )
        codec = MelRVQCodec.load(args.codec_dir, vocoder=vocoder)
    report["codec"] = {
        "dir": str(args.codec_dir),
        "config": codec.config.to_dict(),
        "fit_info": codec.fit_info,
    }

    utts = load_utterances(args.data, codec.sample_rate, args.max_utts)
    audio_total = sum(u.wave.shape[0] for u in utts) / codec.sample_rate
    print(f"\n{len(utts)} utterances, {audio_total:.1f} s of audio from {args.data}")
    print(
        f"codec: Q={codec.num_codebooks} x K={codec.codebook_size}, {codec.frame_rate:g} Hz frames, "
        f"{codec.config.mel.n_mels} mel bins, fit info {codec.fit_info}"
    )

    rows, enc_s, audio_s = reconstruction_errors(codec, utts)
    report["reconstruction"] = rows
    print("\n(a) reconstruction error on normalised log-mel (frame-weighted means)\n")
    print(
        _table(
            ["Q'", "L1", "MSE", "L1 log-mel (nats)"],
            [
                [str(r["q"]), f"{r['l1']:.4f}", f"{r['mse']:.4f}", f"{r['logmel_l1']:.4f}"]
                for r in rows
            ],
        )
    )
    speed = {"encode_audio_s_per_s": audio_s / max(enc_s, 1e-9)}
    print(f"\nencode speed: {speed['encode_audio_s_per_s']:.1f} s audio / s")

    out_dir = args.out_dir
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    if not args.no_wer:
        missing = [u.id for u in utts if not u.text]
        if missing:
            raise SystemExit(
                f"error: {len(missing)} utterances have no transcript (e.g. {missing[:3]}); give "
                "wav + .txt pairs or a cuts manifest with supervision text, or pass --no-wer"
            )
        from valle.eval.asr import FasterWhisperASR
        from valle.eval.wer import score_corpus

        asr = FasterWhisperASR(args.asr_path)
        ids = [u.id for u in utts]
        refs = [u.text or "" for u in utts]
        wer_rows: list[dict[str, Any]] = []

        def score(name: str, waves: list[torch.Tensor]) -> None:
            t0 = time.perf_counter()
            hyps = asr.transcribe(
                [w.numpy() for w in waves], codec.sample_rate, language=args.language
            )
            result = score_corpus(ids, refs, hyps, language=args.language)
            wer_rows.append(
                {
                    "audio": name,
                    "wer": result.error_rate,
                    "errors": result.errors,
                    "ref_words": result.ref_len,
                    "asr_s": time.perf_counter() - t0,
                }
            )
            if out_dir is not None:
                result.write_csv(out_dir / f"wer_{name}.csv")

        score("original", [u.wave for u in utts])
        for q in args.wer_codebooks or [codec.num_codebooks]:
            if not 1 <= q <= codec.num_codebooks:
                raise SystemExit(f"error: --wer-codebooks {q} outside 1..{codec.num_codebooks}")
            t0 = time.perf_counter()
            codes = codec.encode([u.wave for u in utts])
            resynth = codec.decode([c[:, :q] for c in codes])
            dt = time.perf_counter() - t0
            speed[f"encode_decode_q{q}_audio_s_per_s"] = audio_s / max(dt, 1e-9)
            score(f"resynth_q{q}", resynth)
            if out_dir is not None:
                import soundfile as sf

                wav_dir = out_dir / f"resynth_q{q}"
                wav_dir.mkdir(exist_ok=True)
                for u, w in zip(utts, resynth, strict=True):
                    sf.write(wav_dir / f"{u.id}.wav", w.numpy(), codec.sample_rate)
        # the reference words are the same for every row
        report["wer"] = wer_rows
        print(f"\n(b) WER of faster-whisper ({Path(args.asr_path).name}, int8, cpu)\n")
        print(
            _table(
                ["audio", "WER %", "errors", "ref words"],
                [
                    [r["audio"], f"{100 * r['wer']:.2f}", str(r["errors"]), str(r["ref_words"])]
                    for r in wer_rows
                ],
            )
        )
        for k, v in speed.items():
            if k.startswith("encode_decode"):
                print(f"{k}: {v:.2f}")
    report["speed"] = speed
    if out_dir is not None:
        from valle.eval.files import write_json

        write_json(out_dir / "report.json", report)
        print(f"\nwrote {out_dir / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
