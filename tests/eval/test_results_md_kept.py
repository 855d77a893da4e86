"""RESULTS.md keeps its hand-written tail (after the marker) when a run rewrites it."""

from __future__ import annotations

from valle.eval.results_md import KEPT_MARKER, kept_tail, write_results_md


def test_a_rewrite_keeps_the_marked_tail_and_replaces_the_rest(tmp_path) -> None:
    out = tmp_path / "RESULTS.md"
    write_results_md(out, "# run 1\n\nold table\n")
    assert kept_tail(out) == ""
    tail = f"{KEPT_MARKER} rows of other runs -->\n## Other variants\n\n| a | b |\n"
    out.write_text(out.read_text() + "\n" + tail)
    write_results_md(out, "# run 2\n\nnew table\n")
    text = out.read_text()
    assert text.startswith("# run 2\n\nnew table\n")
    assert "old table" not in text
    assert text.endswith(tail) and text.count(KEPT_MARKER) == 1


def test_no_file_or_no_marker_keeps_nothing(tmp_path) -> None:
    assert kept_tail(tmp_path / "absent.md") == ""
    out = tmp_path / "RESULTS.md"
    write_results_md(out, "# only\n")
    assert out.read_text() == "# only\n"
