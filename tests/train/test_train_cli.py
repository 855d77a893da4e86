"""valle-train end to end on a tiny tokenized corpus: train, resume, clear errors."""

from __future__ import annotations

import pytest
import torch
from lhotse import CutSet

from tests.data.factories import FakeCodec, fake_frontend_for, make_cuts
from valle.bin.train import main
from valle.data.codec_info import CodecInfo
from valle.data.manifests import save_cuts_atomic
from valle.data.tokenize import add_phonemes, build_symbol_table, encode_cuts
from valle.text.symbol_table import SymbolTable
from valle.train.checkpoint import build_model_from_checkpoint, list_step_checkpoints


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    codec = FakeCodec()
    info = CodecInfo.from_codec(codec, name="fake")  # not loadable: samples are skipped
    coded, _ = encode_cuts(make_cuts(root / "wav"), codec, root / "tok", "t", info, progress=False)
    cuts = list(add_phonemes(coded, frontend_for=fake_frontend_for, progress=False))
    build_symbol_table(cuts).to_file(root / "tokens.txt")
    save_cuts_atomic(CutSet.from_cuts(cuts[:7]), root / "train.jsonl.gz")
    save_cuts_atomic(CutSet.from_cuts(cuts[7:]), root / "dev.jsonl.gz")
    return root


def _args(data, exp_dir, *extra):
    return [
        "--variant",
        "valle",
        "--size",
        "tiny",
        "--exp-dir",
        str(exp_dir),
        "--train-cuts",
        str(data / "train.jsonl.gz"),
        "--dev-cuts",
        str(data / "dev.jsonl.gz"),
        "--tokens",
        str(data / "tokens.txt"),
        "--codec-dir",
        str(data / "tok"),
        "--accelerator",
        "cpu",
        "--devices",
        "1",
        "--set",
        "data.num_workers=0",
        "--set",
        "train.max_duration=6",
        "--set",
        "train.checkpoint_every_n_steps=2",
        "--set",
        "train.val_every_n_steps=2",
        "--set",
        "train.limit_val_batches=1",
        "--set",
        "train.log_every=1",
        *extra,
    ]


def test_train_then_resume(data, tmp_path, capsys):
    exp = tmp_path / "exp"
    extra = tmp_path / "extra.yaml"
    extra.write_text("train:\n  warmup_steps: 1\n  sample_every_n_steps: 2\n")
    assert (
        main(
            _args(
                data,
                exp,
                "--config",
                str(extra),
                "--stages",
                "ar,nar",
                "--set",
                "train.max_steps=3",
                "--set",
                "ar.backbone.num_layers=1",
            )
        )
        == 0
    )
    assert "trained to step 3" in capsys.readouterr().out
    assert [s for s, _ in list_step_checkpoints(exp / "checkpoints")] == [2, 3]
    model, cfg = build_model_from_checkpoint(exp / "model.pt")
    assert cfg["model"]["ar"]["backbone"]["num_layers"] == 1
    assert cfg["data"]["tokens"].endswith("tokens.txt")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(exp / "tensorboard")).Reload().Tags()
    assert "config/text_summary" in tags["tensors"]
    assert {"train/loss", "train/ar/acc", "train/lr", "train/grad_norm", "val/loss"} <= set(
        tags["scalars"]
    )
    # the checkpoint carries the symbol table and codec facts: inference needs only it
    obj = torch.load(exp / "model.pt", weights_only=True)
    assert obj["symbols"] == SymbolTable.from_file(data / "tokens.txt").symbols
    assert obj["codec"]["name"] == "fake" and obj["codec"]["num_codebooks"] == 2
    from valle.inference.synthesizer import Synthesizer

    synth = Synthesizer.from_checkpoint(exp / "model.pt", codec=FakeCodec())
    assert len(synth.symbols) == len(obj["symbols"])
    # resume to step 5 with the same model; the step-3 checkpoint is the start
    assert (
        main(
            _args(
                data,
                exp,
                "--config",
                str(extra),
                "--stages",
                "ar,nar",
                "--resume",
                "--set",
                "train.max_steps=5",
                "--set",
                "ar.backbone.num_layers=1",
            )
        )
        == 0
    )
    assert "trained to step 5" in capsys.readouterr().out
    assert torch.load(exp / "model.pt", weights_only=True)["step"] == 5


def test_clear_errors(data, tmp_path, caplog):
    exp = tmp_path / "exp"
    assert main(_args(data, exp, "--set", "train.lrr=1.0")) == 2
    assert "did you mean" in caplog.text
    assert main(_args(data, exp, "--resume")) == 2
    assert "drop --resume" in caplog.text
    assert main(_args(data, exp, "--set", "train.max_duration=0.5")) == 2
    assert "max_duration" in caplog.text
    args = _args(data, exp)
    args[args.index("--tokens") + 1] = str(tmp_path / "missing.txt")
    assert main(args) == 2
    assert "stage 3" in caplog.text
