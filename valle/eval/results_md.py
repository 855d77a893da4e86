"""RESULTS.md of a recipe run: the measured tables with how, when and where they were made.

A recipe's scoring stage leaves one :class:`~valle.eval.report.ResultsTable` per (setting,
language) (rows: ground truth, codec resynthesis, the model; columns WER or CER, SIM-o, SIM-r,
SIM-utt). :func:`render_results_md` puts them under one heading per setting, the continuation
and cross-sentence settings of VALL-E sec. 5.1, next to the facts a reader needs to trust or
repeat them: the exact command, the date, the git commit, the hardware and the wall time of each
recipe stage (read from the run's stage-times file, see :func:`read_stage_times`).
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from valle.eval.files import write_text_atomic
from valle.eval.normalize import is_character_language
from valle.eval.report import ResultsTable

logger = logging.getLogger(__name__)

SETTING_TITLES = {
    "cont": "Continuation (prompt: the first seconds of the utterance and their transcript)",
    "cross": "Cross-sentence (prompt: another utterance of the same speaker)",
}


@dataclass(frozen=True)
class StageTime:
    """One run of one recipe stage; times are Unix seconds."""

    stage: str
    what: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class ResultSection:
    """The table of one setting and language."""

    setting: str  # "cont" | "cross"
    language: str
    table: ResultsTable
    items: int
    prompt_seconds: float  # the longest prompt of the list
    png: Path | None = None
    shortest_prompt: float | None = None  # prompts cut at word boundaries: the shortest one

    def prompts(self) -> str:
        """``3 s prompts``, or ``2.53-3.00 s prompts`` when their lengths differ."""
        return f"{prompt_range(self.shortest_prompt, self.prompt_seconds)} prompts"


def prompt_range(shortest: float | None, longest: float, digits: int = 2) -> str:
    """``3 s``, or ``2.53-3.00 s`` for prompts of different lengths (word-boundary windows)."""
    if shortest is None or longest - shortest < 0.5 * 10**-digits:
        return f"{longest:g} s"
    return f"{shortest:.{digits}f}-{longest:.{digits}f} s"


def read_stage_times(path: str | Path) -> list[StageTime]:
    """Stage records ``stage<TAB>start<TAB>end<TAB>what`` (one line per stage run, appended by
    the recipe); the latest run of each stage, in stage order. A missing file gives ``[]``."""
    path = Path(path)
    if not path.is_file():
        return []
    latest: dict[str, StageTime] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            raise ValueError(f"{path}:{lineno}: expected 'stage<TAB>start<TAB>end[<TAB>what]'")
        try:
            start, end = float(parts[1]), float(parts[2])
        except ValueError as e:
            raise ValueError(f"{path}:{lineno}: start/end must be Unix seconds ({e})") from e
        latest[parts[0]] = StageTime(parts[0], parts[3] if len(parts) > 3 else "", start, end)

    def order(s: StageTime) -> tuple[float, str]:
        head = s.stage.split("-")[0]
        return (float(head) if head.replace(".", "").isdigit() else float("inf"), s.stage)

    return sorted(latest.values(), key=order)


def hardware_line() -> str:
    """CPU model, cores, memory, OS, torch version and accelerator of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [f"{cpu}, {os.cpu_count()} cores visible"]
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        parts.append(f"{pages / 2**30:.0f} GiB RAM")
    except (ValueError, OSError, AttributeError):
        pass
    parts.append(f"{platform.system()} {platform.release()}, Python {platform.python_version()}")
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
        parts.append(f"torch {torch.__version__}, {gpu}")
    except ImportError:
        pass
    return "; ".join(parts)


def git_commit(repo: str | Path) -> str:
    """``<short hash>`` of ``repo``'s HEAD, ``+ uncommitted changes`` when the tree is dirty."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=30,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return head + (" + uncommitted changes" if dirty else "")


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def render_results_md(
    sections: Sequence[ResultSection],
    *,
    title: str,
    command: str,
    commit: str,
    hardware: str,
    stage_times: Sequence[StageTime] = (),
    facts: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    date: str | None = None,
    base_dir: str | Path | None = None,
) -> str:
    """The markdown text of RESULTS.md; PNG links are made relative to ``base_dir``."""
    if not sections:
        raise ValueError("no result table to write; run the scoring stage first")
    date = date or datetime.now(tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# {title}", "", f"Measured {date}. Reproduce with:", "", "```bash", command,
             "```", "", f"- git commit: {commit}", f"- hardware: {hardware}"]  # fmt: skip
    for k, v in (facts or {}).items():
        lines.append(f"- {k}: {v}")
    for setting in dict.fromkeys(s.setting for s in sections):
        lines += ["", f"## {SETTING_TITLES.get(setting, setting)}"]
        for sec in (s for s in sections if s.setting == setting):
            metric = "CER" if is_character_language(sec.language) else "WER"
            lines += [
                "",
                f"### {sec.language}: {sec.items} items, {sec.prompts()} "
                f"({metric}{' in the WER column' if metric == 'CER' else ''})",
                "",
                sec.table.to_markdown().rstrip("\n"),
            ]
            if sec.png is not None:
                link = sec.png
                if base_dir is not None:
                    link = Path(os.path.relpath(sec.png, base_dir))
                lines += ["", f"![{setting} {sec.language}]({link.as_posix()})"]
    if stage_times:
        lines += ["", "## Wall time per stage (latest run of each)", "",
                  "| stage | what | started | wall time |", "|---|---|---|---:|"]  # fmt: skip
        for st in stage_times:
            lines.append(
                f"| {st.stage} | {st.what} | {_when(st.start)} | {_duration(st.seconds)} |"
            )
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


KEPT_MARKER = "<!-- kept across runs:"


def kept_tail(path: str | Path) -> str:
    """The part of an existing RESULTS.md from the line that starts with :data:`KEPT_MARKER`
    to its end ("" when the file or the marker is absent): hand-written sections (rows of
    other runs, e.g. the variants') that a new run of the main job must not erase."""
    p = Path(path)
    if not p.is_file():
        return ""
    lines = p.read_text(encoding="utf-8").splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith(KEPT_MARKER):
            return "".join(lines[i:])
    return ""


def write_results_md(path: str | Path, text: str) -> Path:
    """Write RESULTS.md atomically, keeping the existing file's :func:`kept_tail` after
    ``text``."""
    tail = kept_tail(path)
    if tail:
        text = text.rstrip("\n") + "\n\n" + tail
    out = write_text_atomic(path, text)
    logger.info("wrote %s", out)
    return out
