"""``valle-bench speed --variant melle --set ar.reduction=r``: MELLE's continuous steps are
timed like code steps (mean latent fed back, the post-net in the NAR column); r frames per
step make the same speech in ceil(T / r) steps (tiny preset, CI-sized)."""

from __future__ import annotations

import csv
import json
import math

import torch

from valle.bin.bench import main


def _run(tmp_path, r: int, *extra: str) -> tuple[dict, dict]:
    out, summary = tmp_path / f"r{r}.csv", tmp_path / f"r{r}.json"
    argv = ["speed", "--variant", "melle", "--set", f"ar.reduction={r}", "--sizes", "tiny",
            "--batch-sizes", "1", "--seconds", "0.4", "--prompt-seconds", "0.2",
            "--phonemes", "12", "--threads", "1", "--nocache-points", "2",
            "--out", str(out), "--summary", str(summary), *extra]  # fmt: skip
    assert main(argv) == 0
    (row,) = list(csv.DictReader(out.open()))
    (s,) = json.loads(summary.read_text())
    return row, s


def test_melle_rows_at_r1_and_r4(tmp_path) -> None:
    torch.set_num_threads(1)
    one, s1 = _run(tmp_path, 1, "--train-steps", "0")
    four, s4 = _run(tmp_path, 4, "--train-steps", "1", "--train-warmup", "0",
                    "--train-batch", "2", "--train-seconds", "0.4")  # fmt: skip
    frames = round(0.4 * 16000 / 256)  # the model's own mel frame rate, 62.5 Hz
    assert (int(one["steps"]), int(one["frames_per_step"])) == (frames, 1)
    assert (int(four["steps"]), int(four["frames_per_step"])) == (math.ceil(frames / 4), 4)
    assert one["size"] == "melle/tiny" and s4["system"].startswith("melle/tiny B=1")
    for row in (one, four):
        assert float(row["ar_ms_step"]) > 0 and float(row["rtf"]) > 0
        assert float(row["nar_s"]) > 0  # the post-net pass
    assert float(four["train_ms_step"]) > 0


def test_frame_aligned_melle_is_timed_with_its_frame_track(tmp_path) -> None:
    """The frame-aligned MELLE's steps carry their frame track: the benchmark times the
    decoding of a call (``Melle.benchmark_decoding``; before it the AR step refused its
    bare frames and the mini recipe's tables lost their speed columns)."""
    torch.set_num_threads(1)
    out, summary = tmp_path / "a.csv", tmp_path / "a.json"
    argv = ["speed", "--variant", "melle_aligned", "--sizes", "tiny", "--batch-sizes", "2",
            "--seconds", "0.3", "--prompt-seconds", "0.2", "--phonemes", "10", "--threads", "1",
            "--nocache-points", "2", "--train-steps", "1", "--train-warmup", "0",
            "--train-batch", "2", "--train-seconds", "0.3", "--out", str(out),
            "--summary", str(summary)]  # fmt: skip
    assert main(argv) == 0
    (row,) = list(csv.DictReader(out.open()))
    assert int(row["steps"]) == round(0.3 * 22050 / 256) and int(row["frames_per_step"]) == 1
    assert float(row["ar_ms_step"]) > 0 and float(row["nocache_ms_step"]) > 0
    assert float(row["train_ms_step"]) > 0


def test_benchmark_decoding_covers_the_timed_frames() -> None:
    """The frame track of the benchmark's call reaches past the prompt, BOS and every timed
    frame of each row (a shorter track would condition the last steps on nothing); a plain
    MELLE decodes with ar.decoding (None)."""
    import dataclasses

    from valle.ar.frame_alignment import FrameTrackConfig
    from valle.ar.stops import DurationStopConfig
    from valle.testing.model import tiny_config, tiny_model

    text, text_lens, prompt_lens = (
        torch.ones(2, 9, dtype=torch.long),
        torch.tensor([9, 5]),
        torch.tensor([6, 3]),
    )
    plain = tiny_model(variant="melle")
    assert plain.benchmark_decoding(text, text_lens, prompt_lens, 11) is None
    cfg = tiny_config("melle", reduction=1)
    cfg = dataclasses.replace(
        cfg,
        ar=dataclasses.replace(cfg.ar, stop=DurationStopConfig()),
        alignment=FrameTrackConfig(lookahead_layers=1, lookahead_kernel=3),
    )
    dec = cfg.build().eval().benchmark_decoding(text, text_lens, prompt_lens, 11)
    assert dec is not None and dec.cond.shape[1] >= int(prompt_lens.max()) + 11 + 1
