"""Output lengths against the references: continuation items are measured against the part
after the prompt, cross-sentence items against the whole target; empty and missing outputs are
counted, not averaged."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from valle.eval.output_lengths import output_lengths
from valle.eval.protocols import TestItem, write_protocol


def _item(id_: str, setting: str, target: float) -> TestItem:
    return TestItem(id=id_, setting=setting, speaker="s", language="en", text="a b c",
                    target_text="b c", recording_id=id_, target_start=0.0,
                    target_duration=target, prompt_cut_id=id_, prompt_recording_id=id_,
                    prompt_start=0.0, prompt_duration=3.0, prompt_text="a",
                    prompt_text_source="durations")  # fmt: skip


def _wav(path, seconds: float, sr: int = 1000) -> None:
    sf.write(str(path), np.zeros(int(seconds * sr), dtype=np.float32), sr)


def test_continuation_is_measured_after_the_prompt(tmp_path) -> None:
    # references: 8 - 3 = 5 s of continuation each
    write_protocol([_item(f"u{k}", "cont", 8.0) for k in range(4)], tmp_path / "cont_en.jsonl")
    for k, seconds in enumerate((5.0, 6.2, 3.5, 0.0)):  # 1.0, 1.24, 0.7, empty
        _wav(tmp_path / f"u{k}.wav", seconds)
    got = output_lengths(tmp_path / "cont_en.jsonl", tmp_path)
    assert (got.items, got.within, got.empty, got.missing) == (4, 2, 1, 0)
    assert got.mean_ratio == pytest.approx((1.0 + 1.24 + 0.7) / 3)
    assert (got.min_ratio, got.max_ratio) == pytest.approx((0.7, 1.24))
    assert got.describe().startswith("2/4 within 25% of the reference length")


def test_cross_sentence_is_measured_against_the_whole_target(tmp_path) -> None:
    write_protocol([_item("a", "cross", 8.0), _item("b", "cross", 4.0)], tmp_path / "l.jsonl")
    _wav(tmp_path / "a.wav", 8.0)  # ratio 1.0; 5 s would be "within" only against 5 s
    got = output_lengths(tmp_path / "l.jsonl", tmp_path)
    assert (got.items, got.within, got.missing) == (1, 1, 1) and "1 missing" in got.describe()
    with pytest.raises(ValueError, match="no output"):
        output_lengths(tmp_path / "l.jsonl", tmp_path / "nowhere")
