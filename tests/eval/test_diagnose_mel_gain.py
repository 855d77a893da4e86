"""The NAR's mel gain in the learning diagnostics (a mel-RVQ codec's codes are vectors: does the
NAR's code bring the frame closer?), and VALL-E R's phoneme-aligned NAR and pointer AR measured
with the frame phoneme ids their own losses build."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from valle.eval.diagnose import (
    Utterance,
    collate,
    diagnose,
    flat_scalars,
    format_report,
    mel_gain_codec,
)
from valle.eval.teacher_forcing import MEL_ERRORS, nar_teacher_forced
from valle.testing.codec import tiny_mel_rvq_codec
from valle.testing.model import tiny_model

Q, V = 4, 16  # the tiny models' codebooks x codes


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _codec():
    """A random mel-RVQ codec whose stage k vectors are scaled by 0.1^k, so that a stage's
    vector outweighs all later ones together: then adding the true code always brings the
    frame closer to the full reconstruction (random RVQ codebooks do not promise that)."""
    codec = tiny_mel_rvq_codec(num_codebooks=Q, codebook_size=V)
    with torch.no_grad():
        codec.codebooks.mul_((0.1 ** torch.arange(Q, dtype=torch.float32))[:, None, None] * 2)
    return codec


def _utts(n: int = 3, seed: int = 0) -> list[Utterance]:
    """Random texts and codes, each token lasting 3 frames (durations given)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        S = 4 + i
        text = torch.randint(1, 10, (S,), generator=g)
        codes = torch.randint(0, V, (3 * S, Q), generator=g)
        out.append(Utterance(f"u{i}", text, codes, extra={"durations": torch.full((S,), 3)}))
    return out


def _run(model, utts, codec):
    return diagnose(model, utts, frame_rate=4.0, prompt_seconds=1.0, free_running=False,
                    codec=codec)[0]  # fmt: skip


def test_mel_errors_are_finite_ordered_and_chain_from_stage_to_stage() -> None:
    # no prompt: every stage scores the same frames (a prompt policy draws its split per stage)
    model = tiny_model(seed=0, num_codebooks=Q, overrides=["nar.prompt.kind=none"]).eval()
    summary = _run(model, _utts(), _codec())
    stages = summary["nar"]
    assert set(stages) == {f"stage_{j}" for j in range(1, Q)}
    for j in range(1, Q):
        mse = stages[f"stage_{j}"]["mel_mse"]
        assert set(mse) == set(MEL_ERRORS)
        assert all(math.isfinite(x) for x in mse.values())
        assert mse["truth"] <= mse["prefix"]
        assert stages[f"stage_{j}"]["mel_gain"] == pytest.approx(mse["argmax"] - mse["prefix"])
        if j + 1 < Q:  # the next stage's prefix is this stage's truth
            assert stages[f"stage_{j + 1}"]["mel_mse"]["prefix"] == pytest.approx(mse["truth"])
    assert stages[f"stage_{Q - 1}"]["mel_mse"]["truth"] == pytest.approx(0.0, abs=1e-9)
    scalars = flat_scalars(summary)
    assert "diag/nar/stage_2_mel_gain" in scalars
    assert "diag/nar/stage_2_mel_mse_expected" in scalars
    assert "mel gain" in format_report(summary)


def test_a_nar_that_outputs_the_true_code_has_argmax_error_equal_to_truth() -> None:
    model = tiny_model(seed=0, num_codebooks=Q).eval()

    def oracle(text, text_lens, prompt_codes, prompt_lens, target_codes, target_lens, stage,
               language=None, audio_cond=None):  # fmt: skip
        return F.one_hot(target_codes[..., stage].clamp(0, V - 1), V).float() * 30.0  # (B, T, V)

    model.nar.forward = oracle
    summary = _run(model, _utts(), _codec())
    for j in range(1, Q):
        s = summary["nar"][f"stage_{j}"]
        assert s["acc"] == 1.0
        mse = s["mel_mse"]
        assert mse["argmax"] == pytest.approx(mse["truth"], abs=1e-9)
        assert mse["expected"] == pytest.approx(mse["truth"], abs=1e-6)
        assert s["mel_gain"] < 0  # the true code helps


def test_without_a_vector_codec_there_are_no_mel_figures() -> None:
    model = tiny_model(seed=0, num_codebooks=Q).eval()

    class CodesOnly:  # EnCodec-like: codes, no codebook vectors
        num_codebooks = Q

    for codec in (None, CodesOnly()):
        summary = _run(model, _utts(), codec)
        assert all("mel_mse" not in s and "mel_gain" not in s for s in summary["nar"].values())
        assert not any("mel" in k for k in flat_scalars(summary))
        assert "mel gain" not in format_report(summary)
    # a codec whose codebooks do not fit the codes: the NAR figures stay, the mel gain says why
    small = tiny_mel_rvq_codec(num_codebooks=2, codebook_size=V)
    summary = _run(model, _utts(), small)
    assert "stage_3" in summary["nar"] and "mel_mse" not in summary["nar"]["stage_1"]
    assert "do not fit" in summary["skipped"]["nar_mel"]


def test_the_phoneme_aligned_nar_is_measured_as_its_loss_reads_it() -> None:
    model = tiny_model(seed=0, variant="vallr").eval()
    utts = _utts()
    summary = _run(model, utts, _codec())
    assert "nar" not in summary.get("skipped", {})
    assert set(summary["nar"]) == {f"stage_{j}" for j in range(1, Q)}
    assert all("mel_gain" in s for s in summary["nar"].values())
    # the same frame phoneme ids as the training loss: the same loss for the same draw
    batch = collate(utts, prompt_frames=4)
    assert batch["durations"].shape == (3, 6) and batch["durations_lens"].tolist() == [4, 5, 6]
    for stage in (1, 3):
        tally = nar_teacher_forced(model.nar, batch, stage, torch.Generator().manual_seed(3))
        with torch.no_grad():
            loss, _ = model.nar.loss(batch, torch.Generator().manual_seed(3), stage=stage)
        assert tally.loss == pytest.approx(float(loss), rel=1e-5)
    # without durations it says what is missing
    bare = [Utterance(u.id, u.text, u.codes) for u in utts]
    summary = _run(model, bare, None)
    assert "durations" in summary["skipped"]["nar"]


def test_mel_gain_codec_loads_a_mel_rvq_directory_only(tmp_path) -> None:
    codec = tiny_mel_rvq_codec(num_codebooks=Q, codebook_size=V)
    codec.save(tmp_path / "mel_rvq")

    class Trained:
        extras: dict = {}

    loaded = mel_gain_codec(Trained(), tmp_path / "mel_rvq")
    assert loaded is not None and torch.equal(loaded.codebooks, codec.codebooks)
    assert mel_gain_codec(Trained(), None) is None  # no codec anywhere: no mel gain
    assert mel_gain_codec(Trained(), tmp_path / "missing") is None


def test_the_pointer_ar_is_measured_by_its_own_teacher_forced_pass() -> None:
    model = tiny_model(seed=0, variant="vallr").eval()
    utts = _utts()
    summary, acc = diagnose(model, utts, frame_rate=4.0, prompt_seconds=1.0, keep_maps=1)
    assert "ar" not in summary["skipped"]
    ar = summary["ar"]
    assert ar["targets"] == sum(u.codes.shape[0] for u in utts)
    assert 0 <= ar["acc"] <= 1 and 0 <= ar["pointer_acc"] <= 1
    with torch.no_grad():
        _, metrics = model.ar.loss(collate(utts))
    assert ar["loss"] == pytest.approx(float(metrics["code_loss"]), rel=1e-5)
    assert ar["acc"] == pytest.approx(float(metrics["acc"]), abs=1e-6)
    assert ar["pointer_acc"] == pytest.approx(float(metrics["pointer_acc"]), abs=1e-6)
    # attention maps over its steps (no BOS row); free running says why it is left out
    uid, maps, _ = acc.maps[0]
    u = next(x for x in utts if x.id == uid)
    assert maps.shape[1:] == (u.codes.shape[0], u.text.shape[0])
    assert "free_running" in summary["skipped"] and "free_running" not in summary
    assert "pointer move acc" in format_report(summary)
