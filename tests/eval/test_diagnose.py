"""Learning diagnostics: a model that ignores its text shows no text gap, an overfit one a large
gap; persistence baselines, EOS errors, NAR figures and free-running lengths are counted right."""

from __future__ import annotations

import pytest
import torch

from valle.eval.diagnose import (
    Utterance,
    collate,
    diagnose,
    flat_scalars,
    format_report,
    free_running_lengths,
    pair_by_text_length,
    with_texts,
)
from valle.eval.teacher_forcing import ar_targets, ar_teacher_forced, nar_teacher_forced
from valle.testing.model import tiny_model

V = 16


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _corpus(n: int = 4, length: int = 6, seed: int = 1) -> list[Utterance]:
    """Utterances whose codes are a function of their (distinct) texts: each token lasts two
    frames, codebook 1 = token, codebook 2 = 3 * token (mod V)."""
    g = torch.Generator().manual_seed(seed)
    utts = []
    while len(utts) < n:
        text = torch.randint(1, 12, (length,), generator=g)
        if any(torch.equal(text, u.text) for u in utts):
            continue
        frames = text.repeat_interleave(2)
        codes = torch.stack([frames % V, (3 * frames) % V], dim=1)  # (T, 2)
        utts.append(Utterance(f"u{len(utts)}", text, codes))
    return utts


def _train(model, utts, steps: int = 150) -> None:
    torch.manual_seed(0)
    batch = collate(utts)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=3e-3)
    model.train()
    for _ in range(steps):
        loss, _ = model.ar.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def _ar_model(seed: int = 0):
    return tiny_model(seed=seed, num_codebooks=2, overrides=["nar=null"])


def test_pairing_is_deterministic_closest_length_and_another_text() -> None:
    t = [torch.full((n,), i + 1) for i, n in enumerate((5, 9, 6, 5, 12))]
    assert pair_by_text_length(t) == [3, 2, 0, 0, 1]
    # an identical text is never the partner while another exists
    same = [torch.tensor([1, 2, 3]), torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6, 7, 8])]
    assert pair_by_text_length(same) == [2, 2, 0]
    # the same language is preferred
    assert pair_by_text_length(t, [0, 1, 1, 0, 1]) == [3, 2, 1, 0, 1]
    with pytest.raises(ValueError, match="two"):
        pair_by_text_length(t[:1])


def test_model_that_ignores_its_text_shows_no_gap_overfit_model_a_large_one() -> None:
    utts = _corpus()
    reader = _ar_model()
    _train(reader, utts)
    deaf = _ar_model()  # the same model and training, but its text embedding is zero
    for p in deaf.ar.text_embedding.parameters():
        torch.nn.init.zeros_(p)
        p.requires_grad_(False)
    _train(deaf, utts)

    read, _ = diagnose(reader, utts, frame_rate=4.0, prompt_seconds=1.0, free_running=False)
    ignore, _ = diagnose(deaf, utts, frame_rate=4.0, prompt_seconds=1.0, free_running=False)
    assert read["ar"]["acc"] > 0.95
    assert read["ar"]["text_gap"] > 1.0, read["ar"]
    assert read["ar"]["acc_other_text"] < read["ar"]["acc"] - 0.2
    assert abs(ignore["ar"]["text_gap"]) < 1e-4, ignore["ar"]
    # every token lasts two frames: repeating the previous code is right at least 6 times in 13
    assert 6 / 13 <= read["ar"]["persistence_acc"] < read["ar"]["acc"] - 0.3


def test_persistence_baseline_and_eos_error_count_the_right_positions() -> None:
    ar = _ar_model().ar.eval()
    codes = torch.tensor([3, 3, 5, 5, 5])[:, None].repeat(1, 2)  # (T, Q)
    batch = collate([Utterance("a", torch.tensor([1, 2]), codes)])
    (item,) = ar_teacher_forced(ar, batch)
    # targets [3, 3, 5, 5, 5, EOS] vs previous codes [-, 3, 3, 5, 5, 5]: hits at 1, 3, 4
    assert item.tally.count == 6 and item.tally.baseline_correct == 3
    audio_in, _, targets, _ = ar_targets(ar, batch)
    logits = torch.zeros(1, 6, V + 1)
    logits[0, torch.arange(6), targets[0]] = 5.0  # right everywhere ...
    logits[0, 3, ar.eos_id] = 9.0  # ... but stops two frames early
    (item,) = ar_teacher_forced(ar, batch, logits)
    assert item.eos_error_frames == -2 and not item.eos_missed
    assert item.tally.correct == 5
    logits[0, :, ar.eos_id] = -9.0  # never stops
    (item,) = ar_teacher_forced(ar, batch, logits)
    assert item.eos_missed and item.eos_error_frames == 1


def test_nar_figures_and_previous_frame_baseline() -> None:
    model = tiny_model(seed=0, num_codebooks=3).eval()
    codes = torch.tensor([[1, 7, 7]] * 10)  # (T, Q): codebooks constant over time
    utts = [
        Utterance("a", torch.tensor([1, 2, 3]), codes),
        Utterance("b", torch.tensor([4]), codes[:6]),
    ]
    batch = collate(utts, prompt_frames=2)
    for stage in (1, 2):
        t = nar_teacher_forced(model.nar, batch, stage, torch.Generator().manual_seed(0))
        assert t.count > 0
        assert t.baseline_correct == t.count - 2  # all but each row's first target frame
        assert 0 <= t.correct <= t.count
    summary, _ = diagnose(model, utts, frame_rate=2.0, prompt_seconds=1.0, free_running=False)
    assert set(summary["nar"]) == {"stage_1", "stage_2"}
    again, _ = diagnose(model, utts, frame_rate=2.0, prompt_seconds=1.0, free_running=False)
    assert again == summary  # deterministic


def test_free_running_lengths_follow_the_continuation_protocol() -> None:
    model = tiny_model(seed=0, num_codebooks=2, overrides=["nar=null"], sampler="sample").eval()
    utts = _corpus(3, length=5)  # 10 frames each
    short = Utterance("short", torch.tensor([1, 2]), torch.zeros(3, 2, dtype=torch.long))
    rows = free_running_lengths(model.ar, [*utts, short], frame_rate=4.0, prompt_seconds=1.0)
    assert [r["id"] for r in rows] == ["u0", "u1", "u2"]  # too short for a 4-frame prompt: skipped
    assert all(r["reference"] == 6 for r in rows)
    # bounded by ceil(max_len_ratio * full text length) new frames
    assert all(0 <= r["generated"] <= 4 * 5 for r in rows)
    assert rows == free_running_lengths(model.ar, utts, frame_rate=4.0, prompt_seconds=1.0)


def test_report_and_scalars() -> None:
    utts = _corpus(3)
    model = tiny_model(seed=0, num_codebooks=2).eval()
    summary, acc = diagnose(model, utts, frame_rate=4.0, prompt_seconds=1.0, keep_maps=2)
    assert len(acc.maps) == 2 and acc.maps[0][1].shape == (2, 13, 6)  # (layers, N+1, S)
    scalars = flat_scalars(summary)
    for key in ("diag/ar/text_gap", "diag/ar/persistence_acc", "diag/attention/best_diagonal_focus",
                "diag/attention/layer1_monotonic", "diag/nar/stage_1_acc",
                "diag/free_running/length_ratio_mean", "diag/stop/eos_abs_error_frames_mean"):  # fmt: skip
        assert key in scalars, key
    text = format_report(summary)
    assert "text gap" in text and "persistence baseline" in text and "free running" in text


def test_with_texts_keeps_the_audio() -> None:
    utts = _corpus(2)
    batch = collate(utts)
    swapped = with_texts(batch, [utts[1].text, torch.tensor([5])])
    assert swapped["text_lens"].tolist() == [6, 1]
    assert torch.equal(swapped["audio_codes"], batch["audio_codes"])


def test_grouped_layout_counts_frames() -> None:
    """VALL-E 2's grouped AR (2 frames per step): the same figures, EOS error in frames."""
    model = tiny_model(
        seed=0, num_codebooks=2, overrides=["ar.layout.kind=grouped", "ar.layout.group=2"]
    ).eval()
    utts = _corpus(3)  # 12 frames = 6 steps each
    summary, acc = diagnose(model, utts, frame_rate=4.0, prompt_seconds=1.0)
    assert summary["ar"]["targets"] == 3 * 7 * 2  # (6 steps + EOS) x 2 elements
    assert summary["stop"]["eos_error_frames_mean"] % 2 == 0
    assert all(r["reference"] == 8 for r in summary["free_running"]["rows"])
    assert acc.maps[0][1].shape == (2, 7, 6)  # (layers, steps + 1, S)


def test_a_part_the_diagnostics_do_not_fit_is_skipped_with_the_reason() -> None:
    model = tiny_model(seed=0, num_codebooks=2).eval()

    def refuse(*args, **kwargs):
        raise ValueError("needs aligned phonemes")

    model.ar.forward = refuse
    summary, _ = diagnose(model, _corpus(3), frame_rate=4.0, prompt_seconds=1.0)
    assert "ar" not in summary and "free_running" not in summary and "nar" in summary
    assert "needs aligned phonemes" in summary["skipped"]["ar"]
    assert "ar: skipped" in format_report(summary)
