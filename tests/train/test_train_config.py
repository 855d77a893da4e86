"""Experiment config: composition order, override routing, strict errors, YAML round trip."""

from __future__ import annotations

import pytest
import yaml

from valle.config import ConfigError
from valle.train.config import (
    TrainConfig,
    compose_experiment,
    dump_experiment_yaml,
    experiment_from_dict,
    experiment_to_dict,
    parse_stages,
    split_overrides,
)

VOCAB = dict(text_vocab_size=20, codebook_size=32, num_codebooks=4)


def test_split_overrides_routes_by_prefix():
    model, train, data = split_overrides(
        ["train.lr=0.001", "data.num_workers=0", "model.ar.mask=causal", "nar.stage=adaln"]
    )
    assert model == ["ar.mask=causal", "nar.stage=adaln"]
    assert train == ["lr=0.001"] and data == ["num_workers=0"]
    # exponent notation that YAML 1.1 would read as text becomes a float
    assert split_overrides(["train.lr=1e-3", "train.eps=2E-8"])[1] == ["lr=0.001", "eps=2e-08"]
    with pytest.raises(ConfigError, match="key.path=value"):
        split_overrides(["train.lr"])


def test_files_then_overrides_win(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        "model:\n  ar:\n    backbone:\n      num_layers: 3\n"
        "train:\n  max_steps: 77\n  lr: 0.002\n  stages: [ar]\n"
        "data:\n  num_workers: 0\n"
    )
    cfg = compose_experiment(
        "valle", "tiny", [extra], ["ar.backbone.num_layers=5", "train.lr=0.003"], **VOCAB
    )
    assert cfg.model.ar.backbone.num_layers == 5  # --set beats the file
    assert cfg.model.nar.backbone.num_layers == 2  # size preset kept
    assert cfg.train.max_steps == 77 and cfg.train.lr == 0.003
    assert cfg.train.stages == ("ar",)
    assert cfg.data.num_workers == 0
    assert cfg.model.vocab.codebook_size == 32


def test_yaml_round_trip_keeps_everything():
    cfg = compose_experiment("valle", "tiny", [], ["train.betas=[0.8, 0.9]"], **VOCAB)
    text = dump_experiment_yaml(cfg)
    assert "# peak learning rate" in text
    back = experiment_from_dict(yaml.safe_load(text))
    assert back == cfg
    assert experiment_to_dict(back) == experiment_to_dict(cfg)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrr=1", "lr"),  # typo: closest key suggested
        ("train.precision=fp8", "precision"),
        ("train.stages=[tts]", "stages"),
        ("data.num_workers=-1", "num_workers"),
        ("ar.backbone.num_heads=7", "divisible"),
    ],
)
def test_bad_values_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        compose_experiment("valle", "tiny", [], [override], **VOCAB)


def test_unknown_section_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: 1\n")
    with pytest.raises(ConfigError, match="model, train and data"):
        compose_experiment("valle", "tiny", [bad], [], **VOCAB)
    with pytest.raises(ConfigError, match="does not exist"):
        compose_experiment("valle", "tiny", [tmp_path / "nope.yaml"], [], **VOCAB)


def test_train_config_validation():
    with pytest.raises(ConfigError, match="min_lr_ratio"):
        TrainConfig(min_lr_ratio=2.0)
    with pytest.raises(ConfigError, match="repeats"):
        TrainConfig(stages=("ar", "ar"))
    assert parse_stages("ar, nar") == ("ar", "nar")
    with pytest.raises(ConfigError, match="ar,nar"):
        parse_stages("tts")
