"""The checkpoint benchmarks' shared loader (valle.eval.trained_model): one read per checkpoint,
one source for the frame rate, and the loop test's samplers from the sampler registry."""

from __future__ import annotations

import json

import pytest
import torch

from valle.config import to_dict
from valle.eval.trained_model import (
    frame_rate_or_cuts,
    load_trained_model,
    model_frame_rate,
)
from valle.testing.model import tiny_model
from valle.text import SymbolTable
from valle.train.checkpoint import save_inference_checkpoint


def _checkpoint(tmp_path, variant: str = "valle", **meta):
    model = tiny_model(seed=0, variant=variant)
    path = save_inference_checkpoint(
        tmp_path / f"{variant}.pt", model.state_dict(), {"model": to_dict(model.config)}, step=1,
        **meta,
    )  # fmt: skip
    return model, path


def test_frame_rate_sources_in_order(tmp_path) -> None:
    model, _ = _checkpoint(tmp_path)
    codec_dir = tmp_path / "codec"
    codec_dir.mkdir()
    (codec_dir / "codec.json").write_text(json.dumps({"frame_rate": 50.0}))
    facts = {"codec": {"name": "x", "frame_rate": 75.0}}
    assert model_frame_rate(model, facts, {}, codec_dir) == (75.0, "the checkpoint's codec facts")
    rate, source = model_frame_rate(model, {}, {}, codec_dir)
    assert rate == 50.0 and "--codec-dir" in source
    rate, source = model_frame_rate(model, {}, {"data": {"codec_dir": str(codec_dir)}})
    assert rate == 50.0 and "data.codec_dir" in source
    assert model_frame_rate(model, {}, {}, tmp_path / "nowhere")[0] is None
    melle = tiny_model(seed=0, variant="melle")
    mel = melle.config.mel  # type: ignore[union-attr]
    # a mel model's frames are its own, whatever codec the checkpoint names
    assert model_frame_rate(melle, facts, {})[0] == mel.sample_rate / mel.hop_length


def test_the_checkpoint_is_read_once_and_describes_itself(tmp_path, monkeypatch) -> None:
    import valle.io.checkpoint as io

    symbols = SymbolTable(["<pad>", "a", "b"])
    model, path = _checkpoint(tmp_path, symbols=symbols.symbols, codec={"frame_rate": 20.0})
    reads = []
    real = io.load_checkpoint
    monkeypatch.setattr(io, "load_checkpoint", lambda p: reads.append(p) or real(p))
    trained = load_trained_model(path)
    assert reads == [path]
    assert not trained.model.training
    assert trained.symbols().symbols == symbols.symbols
    assert (trained.frame_rate, trained.frame_rate_from) == (20.0, "the checkpoint's codec facts")
    assert frame_rate_or_cuts(trained, cut=None) == (20.0, "the checkpoint's codec facts")
    x = torch.randint(1, 3, (1, 4))
    assert torch.equal(
        trained.model.ar.embed_text(x, torch.tensor([4]))[0],  # type: ignore[union-attr]
        model.ar.embed_text(x, torch.tensor([4]))[0],  # type: ignore[union-attr]
    )


def test_missing_symbols_and_missing_ar_are_clear_errors(tmp_path) -> None:
    _, path = _checkpoint(tmp_path)
    trained = load_trained_model(path)
    with pytest.raises(ValueError, match="--tokens"):
        trained.symbols()
    assert trained.frame_rate is None and "no codec facts" in trained.frame_rate_from


def test_diagnose_reads_the_checkpoint_once(tmp_path, monkeypatch, tokenized_cuts) -> None:
    """valle-bench diagnose used to read the checkpoint twice (model, then symbols)."""
    import valle.io.checkpoint as io
    from valle.eval.diagnose import diagnose_checkpoint

    cuts_path = tmp_path / "dev_cuts.jsonl.gz"
    tokenized_cuts(tmp_path, 3).to_file(cuts_path)
    symbols = SymbolTable(["<pad>", "a", "b", "c", "d", "e"])
    model = tiny_model(seed=0, text_vocab_size=len(symbols), codebook_size=16, num_codebooks=2)
    path = save_inference_checkpoint(
        tmp_path / "model.pt", model.state_dict(), {"model": to_dict(model.config)}, step=1,
        symbols=symbols.symbols, codec={"frame_rate": 10.0},
    )  # fmt: skip
    reads = []
    real = io.load_checkpoint
    monkeypatch.setattr(io, "load_checkpoint", lambda p: reads.append(p) or real(p))
    summary, _ = diagnose_checkpoint(path, cuts_path, max_cuts=2, free_running=False)
    assert len(reads) == 1
    # the frame rate is the checkpoint's codec facts (10 Hz), not the cuts' codes (20 Hz)
    assert summary["frame_rate"] == 10.0 and "codec facts" in summary["frame_rate_from"]


def test_loop_samplers_come_from_the_registry() -> None:
    from valle.eval.loops import make_sampler, sampler_names
    from valle.sampling import SAMPLER_KINDS, FilteredSampler, Greedy, RepetitionAwareSampler

    model = tiny_model(seed=0)
    assert set(SAMPLER_KINDS) <= set(sampler_names())
    assert isinstance(make_sampler("greedy", model), Greedy)
    assert isinstance(make_sampler("sample", model, top_p=0.5), FilteredSampler)
    ras = make_sampler("ras", model)  # the loop test's RAS: a greedy nucleus
    assert isinstance(ras, RepetitionAwareSampler) and isinstance(ras.nucleus, Greedy)
    kind = make_sampler("repetition_aware", model)  # the registry's own numbers (top-p 0.8)
    assert isinstance(kind, RepetitionAwareSampler) and isinstance(kind.nucleus, FilteredSampler)
    assert make_sampler("default", model) is model.ar.default_sampler  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="greedy, sample, repetition_aware"):
        make_sampler("beam", model)
