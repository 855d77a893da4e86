"""valle-infer end to end on a tiny checkpoint: one utterance, a jobs file, errors."""

from __future__ import annotations

import json

import soundfile as sf

from valle.bin.infer import main


def test_single_utterance_writes_a_wav(setup, tmp_path, capsys) -> None:
    out = tmp_path / "o.wav"
    rc = main(
        [
            "--checkpoint", str(setup.checkpoint),
            "--prompt-wav", str(setup.prompt_wav),
            "--prompt-text", "She sells sea shells.",
            "--text", "The lazy dog.",
            "--out", str(out),
            "--sampler", "sample", "--top-k", "5", "--temperature", "0.9", "--seed", "1",
        ]
    )  # fmt: skip
    assert rc == 0
    wave, sr = sf.read(out)
    assert sr == 16000 and wave.ndim == 1
    assert "RTF" in capsys.readouterr().out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_jobs_file_writes_one_wav_per_id(setup, tmp_path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    rows = [
        {"id": "a", "text": "The lazy dog.", "prompt_wav": setup.prompt_wav.name,
         "prompt_text": "She sells sea shells.", "language": "en"},
        {"id": "b", "text": "Hello world.", "prompt_wav": str(setup.prompt_wav),
         "prompt_text": "The quick brown fox."},
        {"id": "c", "text": "Sea shells.", "prompt_wav": str(setup.prompt_wav),
         "prompt_text": "Hello."},
    ]  # fmt: skip
    # a relative prompt path resolves next to the jobs file
    (tmp_path / setup.prompt_wav.name).write_bytes(setup.prompt_wav.read_bytes())
    jobs.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out_dir = tmp_path / "out"
    rc = main(
        ["--checkpoint", str(setup.checkpoint), "--jobs", str(jobs), "--out-dir", str(out_dir),
         "--batch-size", "2", "--sampler", "greedy", "--tokens", str(setup.tokens),
         "--codec-dir", str(setup.codec_dir)]
    )  # fmt: skip
    assert rc == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.wav", "b.wav", "c.wav"]


def test_user_errors_exit_2_with_a_message(setup, tmp_path, capsys) -> None:
    base = ["--checkpoint", str(setup.checkpoint)]
    assert main(base + ["--text", "hi"]) == 2
    assert "pass --text, --prompt-wav" in capsys.readouterr().err
    args = base + ["--prompt-wav", str(setup.prompt_wav), "--prompt-text", "Hello.",
                   "--out", str(tmp_path / "x.wav")]  # fmt: skip
    assert main(args + ["--text", "Measure the azure vision."]) == 2
    assert "unknown symbol" in capsys.readouterr().err
    assert main(args + ["--text", "The dog.", "--language", "xx"]) == 2
    assert "unsupported language" in capsys.readouterr().err
    assert main(base + ["--prompt-wav", str(tmp_path / "missing.wav"), "--prompt-text", "Hi.",
                        "--text", "The dog.", "--out", str(tmp_path / "y.wav")]) == 2  # fmt: skip
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a/b", "text": "x", "prompt_wav": "p.wav", "prompt_text": "y"}\n')
    assert main(base + ["--jobs", str(bad), "--out-dir", str(tmp_path)]) == 2
    assert "must be a file name" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()


def test_model_settings_from_the_command_line(setup, tmp_path, capsys) -> None:
    """--set changes the checkpoint's inference settings; a key the model lacks is an error."""
    args = ["--checkpoint", str(setup.checkpoint), "--prompt-wav", str(setup.prompt_wav),
            "--prompt-text", "She sells sea shells.", "--text", "The lazy dog."]  # fmt: skip
    assert main(args + ["--out", str(tmp_path / "a.wav"), "--set", "ar.max_len_ratio=2.0"]) == 0
    assert main(args + ["--out", str(tmp_path / "b.wav"), "--set", "no_such.key=1"]) == 2
    assert "no_such" in capsys.readouterr().err
    assert not (tmp_path / "b.wav").exists()
