"""The listening page: one row per test item with every system's clip and figures, and it
loads in headless Chromium."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from lhotse import CutSet

from valle.eval.listening_page import build_listening_page, find_browser, screenshot
from valle.eval.protocols import build_protocol, write_protocol


def _scores(out: Path, system: str, ids: list[str], wer: float, sim: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "wer_summary.json").write_text(json.dumps({"system": system}))
    with open(out / "wer_rows.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["id", "hypothesis", "error_rate"])
        w.writeheader()
        for i in ids:
            w.writerow({"id": i, "hypothesis": f"heard {i}", "error_rate": wer})
    with open(out / "sim_rows.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["id", "sim_o", "sim_r", "sim_utt"])
        w.writeheader()
        for i in ids:
            w.writerow({"id": i, "sim_o": sim, "sim_r": sim, "sim_utt": sim})


@pytest.fixture()
def scored_run(tmp_path: Path, flite_corpus) -> tuple[Path, Path, Path]:
    """A decode and score folder as the mini recipe's stages 7-8 lay them out."""
    import soundfile as sf

    cuts_path, audio_dir = flite_corpus
    cuts = CutSet.from_file(cuts_path).to_eager()
    decode, score = tmp_path / "decode", tmp_path / "score"
    items = build_protocol(cuts, "cont", prompt_seconds=1.5, min_seconds=2.0, max_seconds=10.0)
    assert items
    write_protocol(items, decode / "lists" / "cont_en.jsonl")
    ids = [it.id for it in items]
    for k, name in enumerate(["ground truth", "codec resynthesis", "valle (tiny)"]):
        _scores(score / "cont" / "en" / f"system{k}", name, ids, 0.1 * k, 0.9 - 0.1 * k)
    for it in items:
        wave = np.zeros(1600, dtype=np.float32)
        (decode / "cont" / "resynth").mkdir(parents=True, exist_ok=True)
        sf.write(decode / "cont" / "resynth" / f"{it.id}.wav", wave, 16000)
        if it is not items[-1]:  # the model's last output is missing: shown as such
            sf.write(decode / "cont" / f"{it.id}.wav", wave, 16000)
    return decode, score, cuts_path


def test_page_has_a_row_per_item_with_every_clip_and_figure(tmp_path: Path, scored_run) -> None:
    decode, score, cuts = scored_run
    page = build_listening_page(decode, score, cuts, tmp_path / "results", title="mini")
    text = page.read_text()
    items = [
        json.loads(x)["id"]
        for x in (decode / "lists" / "cont_en.jsonl").read_text().split("\n")
        if x
    ]
    for i in items:
        assert text.count(f"audio/cont/{i}.") >= 3  # prompt, target, resynth (+ model)
        assert (tmp_path / "results" / "audio" / "cont" / f"{i}.prompt.wav").is_file()
        assert (tmp_path / "results" / "audio" / "cont" / f"{i}.target.wav").is_file()
    assert text.count("<tr>") == len(items) + 1
    assert "WER 20.0% · SIM-o 0.700" in text  # the model's per-item figures
    assert "valle (tiny)" in text and "missing" in text
    assert "Continuation, en" in text


@pytest.mark.skipif(
    find_browser() is None, reason="no headless Chromium (tools/setup.sh installs it)"
)
def test_page_loads_in_headless_chromium(tmp_path: Path, scored_run) -> None:
    from PIL import Image

    decode, score, cuts = scored_run
    page = build_listening_page(decode, score, cuts, tmp_path / "results", title="mini")
    png = screenshot(page, tmp_path / "page.png", width=1000, height=700)
    img = np.asarray(Image.open(png).convert("L"), dtype=np.float32)
    assert img.shape == (700, 1000)
    # a rendered table: not a blank page (dark text and lines on white)
    assert (img < 128).mean() > 0.005 and img.std() > 10


def test_screenshot_says_what_to_install_without_a_browser(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    page = tmp_path / "p.html"
    page.write_text("<html></html>")
    with pytest.raises(FileNotFoundError, match="chromium-headless-shell"):
        screenshot(page, tmp_path / "p.png")
