"""valle.bin.align on a tiny corpus made on the spot: train a few steps, durations, evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from lhotse import CutSet

from valle.align.durations import Aligner, align_cuts, cut_durations
from valle.align.model import load_aligner
from valle.bin.align import main
from valle.data.prompt import load_codes
from valle.data.tokenize import cut_phonemes


@pytest.fixture(scope="module")
def aligned(tiny_corpus, tmp_path_factory):
    cuts_path, tokens = tiny_corpus
    out = tmp_path_factory.mktemp("align_out")
    torch.set_num_threads(1)
    rc = main(["train", "--cuts", str(cuts_path), "--tokens", str(tokens), "--out-dir",
               str(out), "--steps", "3", "--max-frames", "400", "--channels", "16"])  # fmt: skip
    assert rc == 0
    rc = main(["durations", "--model", str(out / "aligner.pt"), "--cuts", str(cuts_path),
               "--out", str(out / "cuts.jsonl.gz"), "--chunk-size", "4"])  # fmt: skip
    assert rc == 0
    return out, CutSet.from_file(out / "cuts.jsonl.gz")


def test_durations_cover_every_token_and_frame(aligned, tiny_corpus):
    _, cuts = aligned
    assert len(cuts) == len(CutSet.from_file(tiny_corpus[0]))
    for cut in cuts:
        d = cut_durations(cut)
        assert len(d) == len(cut_phonemes(cut))
        assert min(d) >= 1
        assert sum(d) == load_codes(cut).shape[0]


def test_checkpoint_carries_what_durations_need(aligned):
    out, _ = aligned
    model, features, symbols, obj = load_aligner(out / "aligner.pt")
    assert features.frame_rate == 50.0
    assert model.num_classes == len(symbols) + 1
    assert obj["train"]["steps"] == 3


def test_rerun_reuses_finished_chunks(aligned, tiny_corpus, tmp_path):
    out, first = aligned
    chunks = sorted((out / "cuts.chunks").glob("cuts.*.json"))
    assert len(chunks) == 2  # 6 cuts in chunks of 4
    meta = json.loads(chunks[0].read_text())
    assert len(meta["cut_ids"]) == 4

    class Refusing(Aligner):
        def __call__(self, cuts):
            raise AssertionError("a finished chunk was aligned again")

    again = align_cuts(
        CutSet.from_file(tiny_corpus[0]),
        Refusing(out / "aligner.pt"),
        out / "cuts.jsonl.gz",
        chunk_size=4,
        progress=False,
    )
    assert [cut_durations(c) for c in again] == [cut_durations(c) for c in first]


def test_other_alignment_settings_realign_finished_chunks(aligned, tiny_corpus, tmp_path):
    """A chunk aligned with other scores (``--set``) is not reused: the fingerprint holds the
    alignment settings beside the checkpoint."""
    out, _ = aligned
    old = Aligner(out / "aligner.pt", settings=["separator_cost=0", "phone_weight=0"])
    assert old.config.separator_cost == 0.0 and old.config.silence_weight == 0.5
    assert old.fingerprint != Aligner(out / "aligner.pt").fingerprint

    class Counting(Aligner):
        calls = 0

        def __call__(self, cuts):
            Counting.calls += 1
            return super().__call__(cuts)

    align_cuts(
        CutSet.from_file(tiny_corpus[0]),
        Counting(out / "aligner.pt", settings=["separator_cost=0"]),
        out / "cuts.jsonl.gz",
        chunk_size=4,
        progress=False,
    )
    assert Counting.calls == 2  # both chunks aligned again


def test_settings_that_shape_the_weights_are_refused(aligned):
    out, _ = aligned
    with pytest.raises(ValueError, match=r"\['channels'\]: only the alignment settings"):
        Aligner(out / "aligner.pt", settings=["channels=8"])
    with pytest.raises(ValueError, match="did you mean 'separator_cost'"):
        Aligner(out / "aligner.pt", settings=["separator_cost=1", "separatr_cost=1"])


def test_aligning_is_independent_of_the_other_cuts(aligned, tiny_corpus):
    """Each cut is scored alone (the model's GroupNorm would see a batch's padding)."""
    out, _ = aligned
    cuts = list(CutSet.from_file(tiny_corpus[0]))
    aligner = Aligner(out / "aligner.pt")
    together = aligner(cuts)
    for cut, d in zip(cuts, together, strict=True):
        assert aligner([cut])[0].tolist() == d.tolist()


def test_cut_with_more_tokens_than_frames_is_named(aligned, tiny_corpus, tmp_path):
    out, _ = aligned
    cut = next(iter(CutSet.from_file(tiny_corpus[0])))
    sup = cut.supervisions[0]
    long = sup.with_custom("phonemes", ["h"] * (load_codes(cut).shape[0] + 1))
    bad = cut.with_custom("codes", cut.custom["codes"])
    bad.supervisions = [long]
    with pytest.raises(ValueError, match=f"cut {cut.id} has .* tokens but only"):
        Aligner(out / "aligner.pt")([bad])


def test_evaluate_prints_a_table_without_truth(aligned, capsys, tmp_path):
    out, _ = aligned
    png = tmp_path / "ali.png"
    rc = main(["evaluate", "--cuts", str(out / "cuts.jsonl.gz"), "--plot", str(png),
               "--num-plots", "2"])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "| engine |" in text and "| all |" in text
    assert png.stat().st_size > 1000


def test_boundary_errors_against_known_truth():
    """Word boundaries are compared through the phone-class matching: a durations list that
    reproduces the engine's timing exactly has zero error."""
    from lhotse import SupervisionSegment
    from lhotse.supervision import AlignmentItem

    from valle.align.evaluate import cut_boundary_errors

    tokens = ["h", "ə", "l", "ˈoʊ", ",", "_", "w", "ˈɜː", "l", "d", "."]
    phones = [("pau", 0.0, 0.2), ("hh", 0.2, 0.1), ("ax", 0.3, 0.1), ("l", 0.4, 0.1),
              ("ow", 0.5, 0.2), ("pau", 0.7, 0.2), ("w", 0.9, 0.1), ("er", 1.0, 0.2),
              ("l", 1.2, 0.1), ("d", 1.3, 0.1), ("pau", 1.4, 0.2)]  # fmt: skip
    frame_rate = 10.0
    # frames: h=0-3 (silence + h), ə, l, oʊ=2, ","=1, _=1, w, ɜː=2, l, d, "."=2
    durations = [3, 1, 1, 2, 1, 1, 1, 2, 1, 1, 2]
    sup = SupervisionSegment(
        id="u", recording_id="u", start=0.0, duration=1.6, text="hello, world.",
        custom={"phonemes": tokens, "phone_set": "cmu", "engine": "flite"},
        alignment={"phone": [AlignmentItem(s, st, du) for s, st, du in phones]},
    )  # fmt: skip

    class _Cut:
        supervisions = [sup]
        start = 0.0
        id = "u"

    errs = cut_boundary_errors(_Cut(), durations, frame_rate)  # type: ignore[arg-type]
    assert errs is not None and len(errs) == 3  # hello end, world start, world end
    assert np.allclose(errs, 0.0)
