"""Learning diagnostics of a mel AR (MELLE): a model that ignores its text shows no text gap on
the regression loss, an overfit one a clear gap; the persistence baseline and the stop-flag
error count the right frames; free running, attention maps, report and the training logger."""

from __future__ import annotations

import pytest
import torch

from valle.data import batch as B_
from valle.eval.diagnose import (
    MelARDiagnostics,
    Utterance,
    ar_diagnostics_for,
    collate,
    diagnose,
    flat_scalars,
    format_report,
)
from valle.eval.mel_teacher_forcing import frame_regression, mel_teacher_forced
from valle.testing.model import tiny_model

F_ = 8  # tiny mel bins
NO_CODES = torch.zeros(0, 1, dtype=torch.long)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _corpus(n: int = 4, length: int = 6, seed: int = 1) -> list[Utterance]:
    """Utterances with distinct texts of one length whose mel frames are a function of the
    text: each token lasts two frames (one step at r = 2) of its own random spectrum."""
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(12, F_, generator=g)  # (V, F) a spectrum per token
    utts: list[Utterance] = []
    while len(utts) < n:
        text = torch.randint(1, 12, (length,), generator=g)
        if any(torch.equal(text, u.text) for u in utts):
            continue
        mel = table[text.repeat_interleave(2)]  # (T, F)
        utts.append(Utterance(f"u{len(utts)}", text, NO_CODES, mel=mel))
    return utts


def _model(seed: int = 0, **kwargs):
    overrides = ["ar.prenet.dropout=0", "ar.stop.threshold=0.9", *kwargs.pop("overrides", [])]
    return tiny_model(seed=seed, variant="melle", overrides=overrides, **kwargs)


def _train(model, utts, steps: int = 200) -> None:
    torch.manual_seed(0)
    batch = collate(utts)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    model.train()
    for _ in range(steps):
        loss, _ = model.loss(batch, step=0)  # KL off (warm-up)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def test_the_kind_is_chosen_by_the_model_s_ar() -> None:
    assert isinstance(ar_diagnostics_for(_model()), MelARDiagnostics)
    assert not isinstance(ar_diagnostics_for(tiny_model(seed=0)), MelARDiagnostics)


def test_model_that_ignores_its_text_shows_no_gap_overfit_model_a_clear_one() -> None:
    utts = _corpus()
    deaf = _model().eval()  # untrained, its text embedding zero: the text cannot reach the audio
    for p in deaf.ar.text_embedding.parameters():
        torch.nn.init.zeros_(p)
    ignore, _ = diagnose(deaf, utts, frame_rate=4.0, prompt_seconds=1.0, free_running=False)
    assert abs(ignore["mel"]["text_gap"]) < 1e-4, ignore["mel"]

    reader = _model()
    _train(reader, utts)
    read, _ = diagnose(reader, utts, frame_rate=4.0, prompt_seconds=1.0, free_running=False)
    m = read["mel"]
    assert m["frames"] == 4 * 12
    # the reading model beats "repeat the previous frame" and loses much with another text
    assert m["loss"] < 0.7 * m["persistence_loss"], m
    assert m["text_gap"] > 2.0 * m["loss"] and m["text_gap"] > 1.0, m


def test_persistence_baseline_equals_a_hand_computation() -> None:
    ar = _model(reduction=2).ar.eval()
    mel = torch.tensor([[9.0, 9.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0], [3.0, 0.0]])
    mel = torch.nn.functional.pad(mel, (0, F_ - 2))  # (T=5, F): bins 2.. are zero
    batch = collate([Utterance("a", torch.tensor([1, 2]), NO_CODES, mel=mel)])
    (item,) = mel_teacher_forced(ar, batch)
    # r = 2 drops the first frame (5 mod 2); scored frames 1..4, the baseline predicts 2..4
    # from 1..3: d = (1, 0), (0, -2), (2, 1); |d|_1 + |d|_2^2 = (1 + 1) + (2 + 4) + (3 + 5) = 16
    assert item.tally.count == 4 and item.tally.baseline_count == 3
    assert item.tally.baseline_loss == pytest.approx(16 / 3)
    assert float(frame_regression(mel[None, 1:4], mel[None, 2:5]).sum()) == pytest.approx(16)


def test_model_loss_is_melle_s_regression_term_and_the_stop_error_counts_frames() -> None:
    from valle.ar.latent import regression_loss

    model = _model(reduction=2, overrides=["ar.prenet.inference_dropout=0.5"]).eval()
    utts = _corpus(2)
    batch = collate(utts)
    items = mel_teacher_forced(model.ar, batch)
    again = mel_teacher_forced(model.ar, batch)  # no pre-net dropout, mean latent: deterministic
    assert [i.tally for i in items] == [i.tally for i in again]
    assert model.ar.audio_embedding.inference_dropout == 0.5  # restored
    # the per-frame mean equals Melle's reg_pre with the latent noise switched off
    tf = model.layout.teacher_forcing(batch[B_.MEL], batch[B_.lens_key(B_.MEL)])
    model.ar.audio_embedding.inference_dropout = 0.0
    with torch.no_grad():
        out = model.ar(batch[B_.TEXT_TOKENS], batch[B_.TEXT_LENS], tf.inputs, tf.lens)
        parts = model.head.split(out)
        y1 = model.layout.from_steps(model.head.frames(parts.mu))
        mask = tf.mask[..., 0].repeat_interleave(2, 1)
        expected = regression_loss(y1, model.layout.from_steps(tf.targets), mask)
    total = sum(i.tally.loss_sum for i in items) / sum(i.tally.count for i in items)
    assert total == pytest.approx(float(expected), rel=1e-5)
    # stop flag: 6 steps per utterance; raised at step 2 -> 3 steps early = -6 frames
    out = torch.zeros(1, 6, 2 * 2 * F_ + 1)
    out[0, :, -1] = -9.0
    out[0, 2:, -1] = 9.0
    one = collate(utts[:1])
    (item,) = mel_teacher_forced(model.ar, one, out)
    assert item.stop_error_frames == -6 and not item.stop_missed
    out[0, :, -1] = -9.0  # never raised: one step past the end
    (item,) = mel_teacher_forced(model.ar, one, out)
    assert item.stop_missed and item.stop_error_frames == 2


def test_full_diagnostics_of_a_mel_model_report_and_scalars() -> None:
    model = _model().eval()
    utts = _corpus(3)
    summary, acc = diagnose(model, utts, frame_rate=4.0, prompt_seconds=1.0, keep_maps=2)
    assert {"mel", "stop", "attention", "free_running"} <= set(summary) and "ar" not in summary
    assert len(acc.maps) == 2 and acc.maps[0][1].shape == (2, 6, 6)  # (layers, N steps, S)
    rows = summary["free_running"]["rows"]
    assert [r["reference"] for r in rows] == [8, 8, 8]  # 12 frames - a 4-frame prompt
    assert all(0 <= r["generated"] <= 4 * 6 for r in rows)  # max_len_ratio 4 per token
    again, _ = diagnose(model, utts, frame_rate=4.0, prompt_seconds=1.0, keep_maps=2)
    assert again == summary  # deterministic
    scalars = flat_scalars(summary)
    for key in ("diag/mel/text_gap", "diag/mel/persistence_loss", "diag/stop/flag_exact",
                "diag/attention/best_diagonal_focus", "diag/free_running/length_ratio_mean"):  # fmt: skip
        assert key in scalars, key
    text = format_report(summary)
    assert "mel loss" in text and "stop flag (p > 0.9)" in text and "skipped" not in text


def test_training_diagnostics_measure_a_mel_model(tmp_path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from valle.testing.model import dummy_batch, tiny_config
    from valle.train.config import TrainConfig
    from valle.train.diagnostics import DiagnosticsLogger
    from valle.train.module import TrainingModule

    cfg = tiny_config("melle")
    batch = dummy_batch(cfg, batch_size=3, audio_len=(8, 12), seed=0)  # codes (B, T, 4) too
    module = TrainingModule(cfg.build(), TrainConfig(stages=("ar",)))
    summary = DiagnosticsLogger().log_diagnostics(SummaryWriter(str(tmp_path)), module, [batch], 1)
    assert summary is not None and "skipped" not in summary, summary
    assert {"mel", "stop", "attention"} <= set(summary) and "text_gap" in summary["mel"]


def test_diagnose_command_on_a_mel_checkpoint_reads_the_cuts_audio(tmp_path, capsys) -> None:
    """``valle-bench diagnose`` on MELLE: mel frames come from the cuts' audio (the model's
    MelFrames request), the frame rate is the mel's, attention images as for VALL-E."""
    import json

    import numpy as np
    import soundfile as sf
    from lhotse import CutSet, NumpyFilesWriter, Recording, SupervisionSegment

    from valle.bin import bench
    from valle.config import to_dict
    from valle.testing.codec import synthetic_waves
    from valle.text import SymbolTable
    from valle.train.checkpoint import save_inference_checkpoint

    phones = ["a", "b", "c", "d", "e"]
    symbols = SymbolTable(["<pad>", *phones])
    cuts = []
    waves = synthetic_waves([8000, 9600, 11200], 16000)
    with NumpyFilesWriter(str(tmp_path / "codes")) as writer:
        for i, wave in enumerate(waves):
            path = tmp_path / f"u{i}.wav"
            sf.write(path, wave.numpy(), 16000)
            cut = Recording.from_file(path, recording_id=f"u{i}").to_cut()
            codes = np.zeros((int(cut.duration * 50), 2), dtype=np.int64)
            arr = writer.store_array(cut.id, codes, frame_shift=0.02, temporal_dim=0)
            cut = cut.with_custom("codes", arr)
            cut.supervisions = [SupervisionSegment(
                id=cut.id, recording_id=cut.recording_id, start=0.0, duration=cut.duration,
                text="x", language="en", speaker="s",
                custom={"phonemes": [phones[(i + k) % 5] for k in range(4 + i)]},
            )]  # fmt: skip
            cuts.append(cut)
    cuts_path = tmp_path / "dev_cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(cuts_path)
    model = _model(text_vocab_size=len(symbols))
    ckpt = save_inference_checkpoint(
        tmp_path / "model.pt", model.state_dict(), {"model": to_dict(model.config)}, step=1,
        symbols=symbols.symbols,
    )  # fmt: skip
    out = tmp_path / "diag" / "diagnose.json"
    args = ["diagnose", "--checkpoint", str(ckpt), "--cuts", str(cuts_path), "--json", str(out),
            "--images", "1", "--prompt-seconds", "0.2"]  # fmt: skip
    assert bench.main(args) == 0
    assert "mel loss" in capsys.readouterr().out
    summary = json.loads(out.read_text())
    assert summary["utterances"] == 3 and "skipped" not in summary
    assert summary["mel"]["frames"] == sum(2 * ((1 + len(w) // 64) // 2) for w in waves)
    assert summary["free_running"]["items"] == 3  # a 50-frame prompt: 0.2 s at 250 frames/s
    assert len(summary["attention_images"]) == 1


def test_the_kind_is_read_from_the_layout_s_declared_continuous() -> None:
    """The diagnostics ask the layout whether its steps are continuous frames (its declared
    ``continuous``), not whether it is a MelFrameLayout: a frame layout of another class gets
    the mel diagnostics, and every code layout says it is not continuous."""
    from valle.ar.latent import MelFrameLayout
    from valle.ar.layouts import (
        FirstCodebookLayout,
        GroupedCodeLayout,
        MergedFirstCodebookLayout,
    )

    class OtherFrames:  # a continuous-frame layout that is no MelFrameLayout
        continuous = True

        def __init__(self, layout: MelFrameLayout) -> None:
            self.inner = layout

        def __getattr__(self, name: str):
            return getattr(self.inner, name)

    model = _model()
    model.ar.layout = OtherFrames(model.ar.layout)
    assert isinstance(ar_diagnostics_for(model), MelARDiagnostics)
    assert MelFrameLayout(F_).continuous
    for layout in (FirstCodebookLayout(8), GroupedCodeLayout(8, 2), MergedFirstCodebookLayout(8)):
        assert layout.continuous is False


def _aligned_model(seed: int = 0):
    import dataclasses

    from valle.ar.frame_alignment import FrameTrackConfig
    from valle.ar.stops import DurationStopConfig
    from valle.testing.model import tiny_config

    cfg = tiny_config("melle", reduction=1, overrides=["ar.prenet.dropout=0"])
    cfg = dataclasses.replace(
        cfg,
        ar=dataclasses.replace(cfg.ar, stop=DurationStopConfig()),
        alignment=FrameTrackConfig(lookahead_layers=1, lookahead_kernel=3),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cfg.build()


def test_a_frame_aligned_melle_is_diagnosed_with_its_track() -> None:
    """The frame-aligned MELLE's steps carry their frame track (from the durations): its
    diagnostics run (nothing skipped; the track was once missing there) and show the gap of a
    model that reads its phonemes; the other text keeps the true rhythm (positional
    durations)."""
    import dataclasses

    from valle.eval.diagnose import positional_durations

    utts = [  # two frames per token, as the corpus makes them
        dataclasses.replace(u, extra={B_.DURATIONS: torch.full((len(u.text),), 2)})
        for u in _corpus()
    ]
    model = _aligned_model()
    _train(model, utts)
    read, _ = diagnose(model, utts, frame_rate=4.0, prompt_seconds=1.0, free_running=False)
    assert "skipped" not in read, read.get("skipped")
    assert "stop" not in read  # its rows end after their durations: no stop flag to score
    m = read["mel"]
    assert m["frames"] == 4 * 12 and m["text_gap"] > 1.0, m
    d = torch.tensor([[3, 1, 2, 0], [2, 2, 0, 0]])
    got = positional_durations(d, torch.tensor([3, 4]))
    assert got.tolist() == [[3, 1, 2, 0], [2, 2, 2, 2]]
