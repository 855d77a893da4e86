"""A listening page for a scored test set, like the papers' demo pages.

For every test item of every (setting, language) list it shows the text, the prompt, the ground
truth, the codec resynthesis and the model's output as audio players, with each system's WER
(or CER) and SIM-o for that item. The page and every clip it plays live in one folder (clips are
copied or cut there), so the folder can be opened from anywhere or shared as it is::

    <out>/index.html
    <out>/audio/<setting>/<id>.{prompt,target,resynth,model}.wav

Inputs are what a recipe's decode and score stages write (``egs/mini/local/decode.py`` and
``score.py``): ``<decode-dir>/lists/<setting>_<language>.jsonl`` (the test items),
``<decode-dir>/<setting>/<id>.wav`` (the model), ``<decode-dir>/<setting>/resynth/<id>.wav``
(the codec) and ``<score-dir>/<setting>/<language>/system<k>/{wer,sim}_rows.csv`` with
``wer_summary.json`` naming each system.

:func:`screenshot` renders a page with headless Chromium (Debian's ``chromium`` or
``chromium-headless-shell``) so that a test or a recipe step can check that it loads.
"""

from __future__ import annotations

import csv
import html
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["ItemScores", "build_listening_page", "find_browser", "screenshot"]

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


@dataclass
class ItemScores:
    """One system's per-item figures (missing items: no entry)."""

    name: str
    error_rate: dict[str, float] = field(default_factory=dict)  # id -> WER or CER (fraction)
    sim_o: dict[str, float] = field(default_factory=dict)  # id -> cosine similarity
    hypothesis: dict[str, str] = field(default_factory=dict)  # id -> ASR transcript


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_system_scores(system_dir: Path) -> ItemScores:
    """Per-item WER/CER, SIM-o and ASR text of one system's score folder."""
    summary = system_dir / "wer_summary.json"
    name = system_dir.name
    if summary.is_file():
        obj = json.loads(summary.read_text(encoding="utf-8"))
        name = str(obj.get("system", name))
    scores = ItemScores(name)
    for row in _read_rows(system_dir / "wer_rows.csv"):
        scores.error_rate[row["id"]] = float(row["error_rate"])
        scores.hypothesis[row["id"]] = row.get("hypothesis", "")
    for row in _read_rows(system_dir / "sim_rows.csv"):
        if row.get("sim_o") not in (None, ""):
            scores.sim_o[row["id"]] = float(row["sim_o"])
    return scores


def _export(src: Path, dest: Path) -> str | None:
    """Copy a clip into the page folder; its path relative to the page, or None if absent."""
    if not src.is_file():
        return None
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest.as_posix()


def _player(path: str | None, out_dir: Path) -> str:
    if path is None:
        return '<span class="missing">missing</span>'
    rel = html.escape(os.path.relpath(path, out_dir))
    return f'<audio controls preload="none" src="{rel}"></audio>'


def _figures(scores: ItemScores | None, item_id: str, unit: str) -> str:
    if scores is None:
        return ""
    parts = []
    if item_id in scores.error_rate:
        parts.append(f"{unit} {100 * scores.error_rate[item_id]:.1f}%")
    if item_id in scores.sim_o:
        parts.append(f"SIM-o {scores.sim_o[item_id]:.3f}")
    text = " · ".join(parts)
    hyp = scores.hypothesis.get(item_id)
    title = f' title="ASR: {html.escape(hyp)}"' if hyp else ""
    return f'<div class="fig"{title}>{html.escape(text)}</div>'


STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.4em; vertical-align: top; font-size: 0.9em; }
th { background: #f2f2f2; }
audio { width: 210px; } .fig { color: #555; font-size: 0.85em; margin-top: 0.2em; }
.text { min-width: 16em; max-width: 28em; } .prompt-text { color: #666; font-style: italic; }
.missing { color: #b00; }
"""

SETTING_NAMES = {"cont": "Continuation", "cross": "Cross-sentence"}


def build_listening_page(
    decode_dir: str | os.PathLike[str],
    score_dir: str | os.PathLike[str],
    cuts: Any,
    out_dir: str | os.PathLike[str],
    *,
    title: str = "Listening page",
    model_name: str = "model",
) -> Path:
    """Write ``<out_dir>/index.html`` and its clips; returns the page's path.

    ``cuts``: the test cuts (a lhotse ``CutSet`` or a path to one) the prompts and ground
    truth are cut from.
    """
    from lhotse import CutSet

    from valle.eval.audio import write_wave
    from valle.eval.protocols import load_prompt_audio, load_target_audio, read_protocol
    from valle.io.atomic import atomic_write_text

    decode_dir, score_dir, out_dir = Path(decode_dir), Path(score_dir), Path(out_dir)
    if not isinstance(cuts, CutSet):
        cuts = CutSet.from_file(cuts).to_eager()
    lists = sorted((decode_dir / "lists").glob("*_*.jsonl"))
    if not lists:
        raise FileNotFoundError(
            f"no <setting>_<language>.jsonl test lists in {decode_dir / 'lists'}; "
            "run the decode stage first"
        )
    sections = []
    for list_file in lists:
        setting, language = list_file.stem.split("_", 1)
        items = read_protocol(list_file)
        if not items:
            continue
        systems = [
            read_system_scores(d)
            for d in sorted((score_dir / setting / language).glob("system*"))
            if d.is_dir()
        ]
        by_role: dict[str, ItemScores | None] = {"target": None, "resynth": None, "model": None}
        for role, scores in zip(("target", "resynth", "model"), systems, strict=False):
            by_role[role] = scores
        unit = "CER" if language in ("zh", "ja") else "WER"
        rows = []
        for item in items:
            clip_dir = out_dir / "audio" / setting
            clips: dict[str, str | None] = {}
            for role, loader in (("prompt", load_prompt_audio), ("target", load_target_audio)):
                dest = clip_dir / f"{item.id}.{role}.wav"
                try:
                    wave, sr = loader(item, cuts)
                except KeyError:
                    clips[role] = None
                    continue
                write_wave(dest, wave, sr)
                clips[role] = dest.as_posix()
            clips["resynth"] = _export(
                decode_dir / setting / "resynth" / f"{item.id}.wav",
                clip_dir / f"{item.id}.resynth.wav",
            )
            clips["model"] = _export(
                decode_dir / setting / f"{item.id}.wav", clip_dir / f"{item.id}.model.wav"
            )
            said = item.target_text if setting == "cont" else item.text
            rows.append(
                "<tr>"
                f'<td>{html.escape(item.id)}<div class="fig">{html.escape(item.speaker)}</div></td>'
                f'<td class="text">{html.escape(said)}'
                f'<div class="prompt-text">prompt: {html.escape(item.prompt_text)}</div></td>'
                f"<td>{_player(clips['prompt'], out_dir)}</td>"
                f"<td>{_player(clips['target'], out_dir)}{_figures(by_role['target'], item.id, unit)}</td>"
                f"<td>{_player(clips['resynth'], out_dir)}{_figures(by_role['resynth'], item.id, unit)}</td>"
                f"<td>{_player(clips['model'], out_dir)}{_figures(by_role['model'], item.id, unit)}</td>"
                "</tr>"
            )
        model_label = by_role["model"].name if by_role["model"] is not None else model_name
        head = (
            "<tr><th>item</th><th>text</th><th>prompt</th><th>ground truth</th>"
            f"<th>codec resynthesis</th><th>{html.escape(model_label)}</th></tr>"
        )
        name = SETTING_NAMES.get(setting, setting)
        sections.append(
            f"<h2>{html.escape(name)}, {html.escape(language)}: {len(items)} items "
            f"({_prompt_range(items)} prompts, {unit} per item)</h2>"
            f"<table>{head}{''.join(rows)}</table>"
        )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        "<p>Each row: the text to speak (the prompt's transcript below it), the acoustic prompt, "
        "the ground truth, the ground truth through the codec, and the model's output. Hover "
        "over a figure to see the ASR transcript. Continuation: the players hold whole "
        "utterances, the figures of every column score the part after the prompt.</p>"
        f"{''.join(sections)}</body></html>"
    )
    path = out_dir / "index.html"
    atomic_write_text(path, page)
    logger.info("listening page: %s (%d lists)", path, len(sections))
    return path


def find_browser() -> str | None:
    """A headless Chromium on PATH, or None."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(
    page: str | os.PathLike[str],
    png: str | os.PathLike[str],
    *,
    width: int = 1400,
    height: int = 1600,
    timeout: float = 120.0,
) -> Path:
    """Load ``page`` in headless Chromium and save a PNG of it; raises if no browser is found
    or the browser fails."""
    browser = find_browser()
    if browser is None:
        raise FileNotFoundError(
            f"no headless Chromium found (tried {', '.join(BROWSERS)}); "
            "install Debian's chromium-headless-shell (tools/setup.sh does)"
        )
    page, png = Path(page).resolve(), Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        f"--screenshot={png}",
        page.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not png.is_file():
        raise RuntimeError(
            f"{Path(browser).name} could not render {page} (exit {done.returncode}): "
            f"{done.stderr.strip()[-500:]}"
        )
    return png



def _prompt_range(items: Sequence[Any]) -> str:
    """The list's prompt lengths, as the result tables give them (one decimal)."""
    from valle.eval.results_md import prompt_range

    lengths = [float(i.prompt_duration) for i in items]
    return prompt_range(min(lengths), max(lengths), digits=1)
