"""Config machinery: YAML round trip, strict keys and overrides, presets, composition."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from valle.config import (
    ConfigError,
    TransformerConfig,
    VocabConfig,
    apply_overrides,
    compose_config,
    from_dict,
    load_yaml,
    preset_path,
    save_yaml,
    to_dict,
)
from valle.testing.model import tiny_valle_config

VOCAB = {"text_vocab_size": 40, "codebook_size": 1024, "num_codebooks": 8}


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = tiny_valle_config(overrides=["nar.prompt.min_ratio=0.1", "ar.mask=causal"])
    path = tmp_path / "sub" / "model.yaml"
    save_yaml(cfg, path)
    assert load_yaml(path) == cfg  # the file's variant key picks the class
    assert to_dict(load_yaml(path)) == to_dict(cfg)
    assert [p.name for p in path.parent.iterdir()] == ["model.yaml"]  # no temp file left over


def test_saved_yaml_comments_every_key(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    save_yaml(tiny_valle_config(), path)
    key_lines = [ln for ln in path.read_text().splitlines() if re.match(r"^\s*\w+:", ln)]
    assert key_lines and all("#" in ln for ln in key_lines)


def test_disabled_part_round_trips(tmp_path: Path) -> None:
    cfg = apply_overrides(tiny_valle_config(), ["nar=null"])
    assert cfg.nar is None
    save_yaml(cfg, tmp_path / "m.yaml")
    assert load_yaml(tmp_path / "m.yaml").nar is None


def test_unknown_key_lists_close_matches() -> None:
    d = to_dict(tiny_valle_config())
    d["ar"]["backbone"]["num_layer"] = 3
    with pytest.raises(ConfigError, match=r"ar\.backbone\.num_layer.*num_layers"):
        from_dict(type(tiny_valle_config()), d)


def test_wrong_type_and_missing_key() -> None:
    with pytest.raises(ConfigError, match="num_layers"):
        from_dict(TransformerConfig, {"num_layers": "six"})
    with pytest.raises(ConfigError, match="codebook_size"):
        from_dict(VocabConfig, {"text_vocab_size": 10, "num_codebooks": 8})
    with pytest.raises(ConfigError, match="divisible"):
        TransformerConfig(d_model=30, num_heads=4)


def test_overrides_coerce_types() -> None:
    cfg = apply_overrides(
        tiny_valle_config(),
        [
            "ar.backbone.num_layers=6",
            "ar.max_len_ratio=3",
            "ar.mask=causal",
            "nar.backbone.dropout=0.2",
        ],
    )
    assert cfg.ar.backbone.num_layers == 6
    assert cfg.ar.max_len_ratio == 3.0 and isinstance(cfg.ar.max_len_ratio, float)
    assert cfg.ar.mask == "causal"
    assert cfg.nar.backbone.dropout == 0.2
    assert cfg.nar.backbone.num_layers == 2  # untouched


def test_optional_values_override_to_null_and_back() -> None:
    cfg = apply_overrides(tiny_valle_config(), ["ar.sampler.top_k=50", "ar.sampler.top_p=0.9"])
    assert cfg.ar.sampler.top_k == 50 and cfg.ar.sampler.top_p == 0.9
    cfg = apply_overrides(cfg, ["ar.sampler.top_k=null"])
    assert cfg.ar.sampler.top_k is None and cfg.ar.sampler.top_p == 0.9
    with pytest.raises(ConfigError, match="top_k"):
        apply_overrides(cfg, ["ar.sampler.top_k=0.5"])


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("ar.backbone.num_layres=6", "num_layers"),
        ("ar.bakbone.num_layers=6", "backbone"),
        ("ar.backbone.num_layers=six", "num_layers"),
        ("ar.backbone=3", "backbone"),
        ("ar.mask.x=1", "not a section"),
        ("no_equals_sign", "key.path=value"),
    ],
)
def test_bad_overrides_are_errors(override: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        apply_overrides(tiny_valle_config(), [override])


def test_override_inside_disabled_part_is_an_error() -> None:
    cfg = apply_overrides(tiny_valle_config(), ["nar=null"])
    with pytest.raises(ConfigError, match="null"):
        apply_overrides(cfg, ["nar.stage=adaln"])


def test_compose_presets_and_vocab_facts() -> None:
    base = compose_config("valle", "base", **VOCAB)
    b = base.ar.backbone
    assert (b.num_layers, b.num_heads, b.d_model, b.ffn_dim, b.dropout) == (12, 16, 1024, 4096, 0.1)
    assert base.nar.backbone == b
    assert base.vocab == VocabConfig(**VOCAB)
    tiny = compose_config("valle", "tiny", ["ar.backbone.num_layers=1"], **VOCAB)
    assert tiny.ar.backbone.num_layers == 1 and tiny.ar.backbone.d_model < 1024
    with pytest.raises(ConfigError, match="tiny"):
        compose_config("valle", "tiyn", **VOCAB)


def test_preset_files_comment_every_key() -> None:
    for kind, name in [("size", "tiny"), ("size", "base"), ("variant", "valle")]:
        text = preset_path(kind, name).read_text()
        data = yaml.safe_load(text)
        assert isinstance(data, dict)
        for ln in text.splitlines():
            if re.match(r"^\s*\w+:", ln):
                assert "#" in ln, f"{kind}/{name}.yaml: key without a comment: {ln!r}"
