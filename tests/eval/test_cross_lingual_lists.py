"""Cross-lingual test lists: prompt fields from one language, target text from another."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from valle.eval.cross_lingual import main, pair_items, write_jobs
from valle.eval.protocols import TestItem, read_protocol, write_protocol


def _item(k: int, lang: str, cut: str = "c0") -> TestItem:
    return TestItem(
        id=f"{lang}{k}", setting="cross", speaker=f"spk-{lang}", language=lang,
        text=f"text {lang} {k}", target_text=f"target {lang} {k}", recording_id=f"r-{lang}{k}",
        target_start=0.0, target_duration=3.0, prompt_cut_id=cut, prompt_recording_id=cut,
        prompt_start=0.5, prompt_duration=1.0, prompt_text=f"prompt {lang} {k}",
        prompt_text_source="alignment",
    )  # fmt: skip


def test_pairs_carry_the_prompt_of_one_language_and_the_text_of_the_other() -> None:
    prompts = [_item(k, "zh") for k in range(2)]
    targets = [_item(k, "en") for k in range(5)]
    items, src = pair_items(prompts, targets, seed=1)
    assert src == "zh" and len(items) == 5
    for item, target in zip(items, targets, strict=True):
        assert item.language == "en" and item.text == item.target_text == target.target_text
        assert item.speaker == "spk-zh" and item.prompt_text.startswith("prompt zh")
        assert item.id.startswith("xl-zh-en-")
    assert {i.prompt_text for i in items} == {p.prompt_text for p in prompts}  # cycled
    assert len(pair_items(prompts, targets, max_items=3)[0]) == 3
    with pytest.raises(ValueError, match="not cross-lingual"):
        pair_items(prompts, [_item(0, "zh")])


def test_jobs_and_prompt_wavs_for_valle_infer(tmp_path: Path) -> None:
    from lhotse import CutSet, Recording

    wav = tmp_path / "rec.wav"
    sf.write(wav, np.random.default_rng(0).standard_normal(32000) * 0.1, 16000)
    cut = Recording.from_file(wav, recording_id="c0").to_cut()
    cuts = CutSet.from_cuts([cut])
    write_protocol([_item(0, "zh", cut.id)], tmp_path / "zh.jsonl")
    write_protocol([_item(0, "en"), _item(1, "en")], tmp_path / "en.jsonl")
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    out = tmp_path / "xl"
    rc = main(["--prompts", str(tmp_path / "zh.jsonl"), "--targets", str(tmp_path / "en.jsonl"),
               "--cuts", str(tmp_path / "cuts.jsonl.gz"), "--out-dir", str(out)])  # fmt: skip
    assert rc == 0
    jobs = [json.loads(line) for line in (out / "jobs.jsonl").read_text().splitlines()]
    assert [j["language"] for j in jobs] == ["en", "en"]
    assert {j["prompt_language"] for j in jobs} == {"zh"}
    assert sf.info(jobs[0]["prompt_wav"]).duration == pytest.approx(1.0, abs=0.01)
    assert len(read_protocol(out / "list.jsonl")) == 2
    assert write_jobs(read_protocol(out / "list.jsonl"), "zh", cuts, out) == out / "jobs.jsonl"
