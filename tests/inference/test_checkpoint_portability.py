"""A checkpoint synthesizes anywhere (#8.3), refuses a wrong symbol table (#8.7), and bad
checkpoint files are clear errors in valle-infer (#8.1, #8.8, #8.10)."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from valle.bin.infer import main
from valle.config import to_dict
from valle.data.codec_info import CodecInfo
from valle.inference import CheckpointContentError, CodecSpecError, Synthesizer
from valle.sampling import Greedy
from valle.testing.codec import synthetic_waves, tiny_mel_rvq_codec
from valle.testing.model import tiny_model
from valle.text import SymbolTable, tokenize_text
from valle.train.checkpoint import save_inference_checkpoint
from valle.train.config import DataConfig
from valle.train.experiment import checkpoint_extras

SENTENCES = ["The quick brown fox jumps over the lazy dog.", "She sells sea shells."]


@pytest.fixture
def recipe(tmp_path, monkeypatch):
    """A recipe directory X as training leaves it: data/codec/mel_rvq (the codec),
    data/tokenized/{codec.json,tokens.txt} recording relative paths, exp/valle/model.pt."""
    x = tmp_path / "X"
    x.mkdir()
    monkeypatch.chdir(x)  # the recipe runs from its own directory
    codec = tiny_mel_rvq_codec(num_codebooks=4, codebook_size=16)
    codec.save("data/codec/mel_rvq")
    CodecInfo.from_codec(codec, "mel_rvq", "data/codec/mel_rvq").to_file(
        "data/tokenized/codec.json"
    )
    symbols = SymbolTable.build([tokenize_text(s, "en") for s in SENTENCES])
    symbols.to_file("data/tokenized/tokens.txt")
    data = DataConfig(tokens="data/tokenized/tokens.txt", codec_dir="data/tokenized")
    extras = checkpoint_extras(data)  # what training stores in every checkpoint
    model = tiny_model(seed=0, text_vocab_size=len(symbols), codebook_size=16, num_codebooks=4)
    cfg = {"model": to_dict(model.config), "data": asdict(data)}
    ckpt = save_inference_checkpoint(
        x / "exp" / "valle" / "model.pt", model.state_dict(), cfg, step=3, **extras
    )
    sr = 16000
    prompt = tmp_path / "prompt.wav"
    import soundfile as sf

    sf.write(prompt, synthetic_waves([sr], sr, seed=1)[0].numpy(), sr)
    torch.set_num_threads(1)
    return x, ckpt, prompt, symbols, codec


def _speak(path: Path, prompt: Path, **kw) -> np.ndarray:
    synth = Synthesizer.from_checkpoint(path, sampler=Greedy(), max_len_ratio=1.0, **kw)
    wave, sr = synth.synthesize("The lazy dog.", prompt, "She sells sea shells.")
    assert sr == 16000 and wave.ndim == 1 and np.isfinite(wave).all() and len(wave) > 0
    return wave


def test_checkpoint_moved_to_another_directory_synthesizes_from_a_third(
    recipe, tmp_path, monkeypatch
) -> None:
    x, ckpt, prompt, _, codec = recipe
    assert "codec_embedded" in torch.load(ckpt, weights_only=True)  # the small codec travels
    here = _speak(ckpt, prompt)
    y, z = tmp_path / "Y", tmp_path / "Z"
    y.mkdir()
    z.mkdir()
    moved = Path(shutil.move(str(ckpt), y / "model.pt"))
    shutil.rmtree(x)  # another machine: nothing of the recipe is left
    monkeypatch.chdir(z)
    np.testing.assert_array_equal(_speak(moved, prompt), here)  # the same codec, embedded
    out = z / "out.wav"
    rc = main(["--checkpoint", str(moved), "--prompt-wav", str(prompt), "--prompt-text",
               "She sells sea shells.", "--text", "The lazy dog.", "--out", str(out),
               "--sampler", "greedy"])  # fmt: skip
    assert rc == 0 and out.is_file()


def test_old_checkpoint_with_only_a_relative_codec_path_still_loads(
    recipe, tmp_path, monkeypatch
) -> None:
    """Checkpoints from before the embedding record ``data/codec/mel_rvq`` only: it is found
    relative to the checkpoint (its directory or a parent), from any working directory."""
    x, ckpt, prompt, _, _ = recipe
    obj = torch.load(ckpt, weights_only=True)
    obj.pop("codec_embedded", None)
    assert obj["codec"]["path"] == "data/codec/mel_rvq"
    old = x / "exp" / "valle" / "old.pt"
    torch.save(obj, old)
    z = tmp_path / "Z"
    z.mkdir()
    monkeypatch.chdir(z)
    assert Synthesizer.from_checkpoint(old).codec.num_codebooks == 4
    _speak(old, prompt)
    # moved away from its recipe, with no codec beside it: a clear error, and --codec-dir works
    lone = shutil.copy(old, z / "old.pt")
    with pytest.raises(CodecSpecError, match="not on this machine.*looked from.*--codec-dir"):
        Synthesizer.from_checkpoint(lone)
    _speak(Path(lone), prompt, codec=x / "data" / "codec" / "mel_rvq")


def test_same_size_wrong_tokens_are_refused(recipe, tmp_path, capsys) -> None:
    x, ckpt, prompt, symbols, _ = recipe
    swapped = list(symbols.symbols)
    swapped[3], swapped[4] = swapped[4], swapped[3]  # same size, other ids
    wrong = tmp_path / "wrong_tokens.txt"
    SymbolTable(swapped).to_file(wrong)
    with pytest.raises(CheckpointContentError, match=r"differs from the one stored.*id 3"):
        Synthesizer.from_checkpoint(ckpt, tokens=wrong)
    with pytest.raises(CheckpointContentError, match="differs from the one stored"):
        Synthesizer.from_checkpoint(ckpt, tokens=SymbolTable(swapped))
    same = Synthesizer.from_checkpoint(ckpt, tokens=x / "data" / "tokenized" / "tokens.txt")
    assert same.symbols == symbols  # the right table is accepted
    rc = main(["--checkpoint", str(ckpt), "--tokens", str(wrong), "--prompt-wav", str(prompt),
               "--prompt-text", "Hello.", "--text", "Hi.", "--out", str(tmp_path / "o.wav")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "differs from the one stored" in err and "drop" in err
    assert not (tmp_path / "o.wav").exists()


class WritesMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _infer(ckpt: Path, prompt: Path, out: Path) -> int:
    return main(["--checkpoint", str(ckpt), "--prompt-wav", str(prompt), "--prompt-text",
                 "Hello.", "--text", "Hi.", "--out", str(out)])  # fmt: skip


def test_valle_infer_refuses_a_checkpoint_that_would_run_code(recipe, tmp_path, capsys) -> None:
    _, ckpt, prompt, _, _ = recipe
    obj = torch.load(ckpt, weights_only=True)
    marker = tmp_path / "marker"
    obj["extra"] = WritesMarker(marker)
    evil = tmp_path / "evil.pt"
    torch.save(obj, evil)
    for load in (
        lambda: Synthesizer.from_checkpoint(evil),
        lambda: _infer(evil, prompt, tmp_path / "o.wav"),
    ):
        try:
            rc = load()
        except ValueError as err:  # the Python API raises
            assert "not trusted" in str(err) and str(evil) in str(err)
        else:  # the CLI reports
            assert rc == 2
            err_text = capsys.readouterr().err
            assert "not trusted" in err_text and str(evil) in err_text
        assert not marker.exists()


def test_valle_infer_says_truncated_or_directory(recipe, tmp_path, capsys) -> None:
    _, ckpt, prompt, _, _ = recipe
    cut = tmp_path / "cut.pt"
    cut.write_bytes(ckpt.read_bytes()[:1000])
    assert _infer(cut, prompt, tmp_path / "o.wav") == 2
    err = capsys.readouterr().err
    assert "truncated or corrupt" in err and str(cut) in err and "Traceback" not in err
    assert _infer(ckpt.parent, prompt, tmp_path / "o.wav") == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and str(ckpt) in err  # suggests <exp>/model.pt
