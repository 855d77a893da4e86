"""valle-infer --jobs: a bad job fails alone with its id, line and reason, the others are
written, the run exits 1 with a summary (#8.4); outputs are checked before synthesis (#8.8);
jobs-file messages say what is wrong (#8.10)."""

from __future__ import annotations

import json

import pytest

from valle.bin.infer import load_jobs, main
from valle.inference import Synthesizer


def row(job_id, text="The lazy dog.", prompt_text="She sells sea shells.", **kw) -> dict:
    return {"id": job_id, "text": text, "prompt_wav": kw.pop("prompt_wav", "PROMPT"),
            "prompt_text": prompt_text, **kw}  # fmt: skip


def write_jobs(path, setup, rows) -> None:
    lines = []
    for r in rows:
        if isinstance(r, bytes):
            lines.append(r)
            continue
        if isinstance(r, dict) and r.get("prompt_wav") == "PROMPT":
            r = dict(r, prompt_wav=str(setup.prompt_wav))
        lines.append((r if isinstance(r, str) else json.dumps(r)).encode("utf-8"))
    path.write_bytes(b"\n".join(lines) + b"\n")


def run_jobs(setup, jobs, out_dir, *extra) -> int:
    return main(["--checkpoint", str(setup.checkpoint), "--jobs", str(jobs),
                 "--out-dir", str(out_dir), "--sampler", "greedy", *extra])  # fmt: skip


def test_bad_jobs_fail_alone_and_the_rest_are_written(setup, tmp_path, capsys) -> None:
    jobs, out_dir = tmp_path / "jobs.jsonl", tmp_path / "out"
    (out_dir / "taken.wav").mkdir(parents=True)  # an output that cannot be written
    latin1 = json.dumps(row("latin"), ensure_ascii=False).replace("lazy", "café")
    write_jobs(jobs, setup, [
        row("a"),                                            # line 1: fine
        "{not json",                                         # line 2
        row("num", text=123),                                # line 3
        latin1.encode("latin-1"),                            # line 4
        row("azure", text="Measure the azure vision."),      # line 5: unknown phonemes
        row("gone", prompt_wav=str(tmp_path / "no.wav")),    # line 6
        row("a"),                                            # line 7: duplicate id
        row("taken"),                                        # line 8
        row("empty", prompt_text=" "),                       # line 9
        row("z", text='The "quick" dog… (sea shells)'),      # line 10: fine
    ])  # fmt: skip
    rc = run_jobs(setup, jobs, out_dir)
    err = capsys.readouterr().err
    assert rc == 1
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.wav", "taken.wav", "z.wav"]
    summary = err[err.index("8 of 10 job(s) failed, 2 written") :]
    for where, job_id, reason in [
        (2, "?", "not JSON"),
        (3, "num", "'text' must be a string, got int 123"),
        (4, "?", "not UTF-8 text (byte 0xe9 at column"),
        (5, "azure", "unknown symbol"),
        (6, "gone", "not found"),
        (7, "a", "'a' appears twice (first on line 1)"),
        (8, "taken", "is a directory"),
        (9, "empty", "prompt transcript is empty"),
    ]:
        assert f"{jobs}:{where}: job {job_id}: " in summary, where
        line = next(x for x in summary.splitlines() if f"{jobs}:{where}:" in x)
        assert reason in line, (where, line)


def test_a_failing_batch_is_retried_job_by_job(setup, tmp_path, capsys, monkeypatch) -> None:
    real = Synthesizer.synthesize_prepared

    def flaky(self, jobs, **kw):
        if any(j.id == "boom" for j in jobs):
            raise RuntimeError("simulated out of memory")
        return real(self, jobs, **kw)

    monkeypatch.setattr(Synthesizer, "synthesize_prepared", flaky)
    jobs, out_dir = tmp_path / "jobs.jsonl", tmp_path / "out"
    write_jobs(jobs, setup, [row("a"), row("boom"), row("c")])
    assert run_jobs(setup, jobs, out_dir, "--batch-size", "3") == 1
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.wav", "c.wav"]
    assert "job boom: RuntimeError: simulated out of memory" in capsys.readouterr().err


def no_synthesis(monkeypatch) -> None:
    def boom(*a, **k):
        raise AssertionError("synthesis ran before the output path was checked")

    monkeypatch.setattr(Synthesizer, "from_checkpoint", boom)


def test_unwritable_output_is_found_before_synthesis(setup, tmp_path, capsys, monkeypatch):
    no_synthesis(monkeypatch)
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a directory")
    rc = main(["--checkpoint", str(setup.checkpoint), "--prompt-wav", str(setup.prompt_wav),
               "--prompt-text", "Hello.", "--text", "The dog.",
               "--out", str(blocker / "o.wav")])  # fmt: skip
    assert rc == 2
    assert f"cannot write {blocker / 'o.wav'}" in capsys.readouterr().err
    rc = main(["--checkpoint", str(setup.checkpoint), "--prompt-wav", str(setup.prompt_wav),
               "--prompt-text", "Hello.", "--text", "The dog.", "--out", str(tmp_path)])  # fmt: skip
    assert rc == 2 and "is a directory" in capsys.readouterr().err
    jobs = tmp_path / "jobs.jsonl"
    write_jobs(jobs, setup, [row("a")])
    assert run_jobs(setup, jobs, blocker / "out") == 2
    assert f"--out-dir {blocker / 'out'}" in capsys.readouterr().err


def test_a_latin1_jobs_file_names_the_file_and_line(setup, tmp_path) -> None:
    jobs = tmp_path / "latin.jsonl"
    jobs.write_bytes(
        json.dumps(row("a", prompt_wav=str(setup.prompt_wav))).encode() + b"\n"
        + '{"id": "b", "text": "caf\u00e9"}\n'.encode("latin-1")
    )  # fmt: skip
    ok, failures = load_jobs(jobs)
    assert [j.id for _, j in ok] == ["a"]
    assert [str(f) for f in failures] == [
        f"{jobs}:2: job ?: not UTF-8 text (byte 0xe9 at column 25); save the jobs file as UTF-8"
    ]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("text", 123, "'text' must be a string, got int 123"),
        ("prompt_text", None, "'prompt_text' must be a string, got NoneType None"),
        ("language", 5, "'language' must be a string, got int 5"),
    ],
)
def test_wrong_types_in_a_jobs_file_are_named(setup, tmp_path, field, value, message) -> None:
    jobs = tmp_path / "jobs.jsonl"
    write_jobs(jobs, setup, [dict(row("a"), **{field: value})])
    _, failures = load_jobs(jobs)
    assert len(failures) == 1 and failures[0].reason == message
    assert "empty" not in failures[0].reason


def test_long_single_text_is_chunked_batch_size_at_a_time(setup, tmp_path, monkeypatch) -> None:
    rows: list[int] = []
    real = Synthesizer._generate

    def spy(self, items, *a, **k):
        rows.append(len(items))
        return real(self, items, *a, **k)

    monkeypatch.setattr(Synthesizer, "_generate", spy)
    text = "The lazy dog. The quick brown fox. She sells sea shells."
    out = tmp_path / "long.wav"
    rc = main(["--checkpoint", str(setup.checkpoint), "--prompt-wav", str(setup.prompt_wav),
               "--prompt-text", "Hello.", "--text", text, "--out", str(out), "--sampler", "greedy",
               "--max-phonemes", "12", "--batch-size", "2", "--chunk-pause", "0.3"])  # fmt: skip
    assert rc == 0 and out.exists()
    chunks = Synthesizer.from_checkpoint(setup.checkpoint, max_text_tokens=12).text_chunks(
        text, "Hello."
    )
    assert len(chunks) >= 3 and sum(rows) == len(chunks) and max(rows) == 2
