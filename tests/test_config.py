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
    assert cfg.ar.mask.kind == "causal"
    assert cfg.nar.backbone.dropout == 0.2
    assert cfg.nar.backbone.num_layers == 2  # untouched


def test_optional_values_override_to_null_and_back() -> None:
    cfg = apply_overrides(
        tiny_valle_config(),
        ["ar.sampler.kind=sample", "ar.sampler.top_k=50", "ar.sampler.top_p=0.9"],
    )
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
        ("ar.max_len_ratio.x=1", "not a section"),
        ("ar.mask.x=1", r"ar\.mask\.x"),
        ("ar.layout.group=2", r"ar\.layout\.group.*kind"),  # first_codebook has no group
        ("ar.layout.kind=groupd", "grouped"),
        ("ar.sampler.window=5", "window"),  # greedy reads no window
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


# --------------------------------------------------------------------------- component sections

OLD_AR = {  # the ar section of a config saved before components had their own sections
    "backbone": {"num_layers": 2, "num_heads": 2, "d_model": 32, "ffn_dim": 64, "dropout": 0.0},
    "mask": "causal",
    "layout": "grouped",
    "group_size": 4,
    "head": "categorical",
    "max_len_ratio": 4.0,
    "sampler": {
        "kind": "sample",
        "temperature": 0.9,
        "top_k": None,
        "top_p": 0.8,
        "window": 10,
        "threshold": 0.1,
    },
}


def test_old_flat_ar_section_migrates(tmp_path: Path) -> None:
    d = to_dict(tiny_valle_config())
    d["ar"] = dict(OLD_AR)
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(d))
    cfg = load_yaml(path)
    assert to_dict(cfg.ar.layout) == {"kind": "grouped", "group": 4}
    assert to_dict(cfg.ar.mask) == {"kind": "causal"}
    # old checkpoints were trained untied: they keep loading as untied
    assert to_dict(cfg.ar.head) == {"kind": "categorical", "tie_embedding": False}
    assert to_dict(cfg.ar.sampler) == {
        "kind": "sample",
        "temperature": 0.9,
        "top_k": None,
        "top_p": 0.8,
    }
    assert to_dict(cfg.ar.stop) == {"kind": "eos"}
    # the migrated config saves in the new shape and round-trips
    save_yaml(cfg, tmp_path / "new.yaml")
    assert load_yaml(tmp_path / "new.yaml") == cfg
    old_ras = dict(OLD_AR, layout="first_codebook", group_size=1)
    old_ras["sampler"] = dict(OLD_AR["sampler"], kind="repetition_aware", window=7)
    d["ar"] = old_ras
    cfg = from_dict(type(cfg), d)
    assert to_dict(cfg.ar.layout) == {"kind": "first_codebook"}
    assert (cfg.ar.sampler.window, cfg.ar.sampler.threshold, cfg.ar.sampler.top_p) == (7, 0.1, 0.8)
    # without group_size it is the new shape: bare kinds mean that kind's defaults (tied)
    d["ar"] = {"layout": "grouped", "head": "categorical"}
    cfg = from_dict(type(cfg), d)
    assert cfg.ar.layout.group == 2 and cfg.ar.head.tie_embedding


def test_old_checkpoint_weights_load_into_the_migrated_config() -> None:
    """An untied head's weights (``ar.head.proj``) load into a migrated old config."""
    import torch

    from valle.registry import build_model

    old = from_dict(type(tiny_valle_config()), dict(to_dict(tiny_valle_config()), ar=OLD_AR))
    state = build_model(old).state_dict()
    assert "ar.head.proj.weight" in state and "ar.head.bias" not in state
    again = build_model(old)
    again.load_state_dict(state)  # strict
    new = build_model(tiny_valle_config())  # new configs tie the head to the embedding
    assert "ar.head.proj.weight" not in new.state_dict()
    assert torch.equal(new.ar.head(torch.zeros(1, 32)), new.ar.head.bias[None])


def test_component_sections_pick_their_class_by_kind() -> None:
    cfg = apply_overrides(tiny_valle_config(), ["ar.layout.kind=grouped", "ar.layout.group=4"])
    assert cfg.ar.layout.group == 4
    cfg = apply_overrides(cfg, ["ar.layout=first_codebook"])  # a bare kind: its defaults
    assert to_dict(cfg.ar.layout) == {"kind": "first_codebook"}
    # switching kind keeps only the settings the new kind shares
    cfg = apply_overrides(
        tiny_valle_config(),
        ["ar.sampler.kind=repetition_aware", "ar.sampler.window=5", "ar.sampler.top_p=0.7"],
    )
    assert (cfg.ar.sampler.window, cfg.ar.sampler.top_p) == (5, 0.7)
    cfg = apply_overrides(cfg, ["ar.sampler.kind=sample"])
    assert to_dict(cfg.ar.sampler) == {
        "kind": "sample",
        "temperature": None,
        "top_k": None,
        "top_p": 0.7,
    }
    with pytest.raises(ConfigError, match="repetition_aware"):
        apply_overrides(cfg, ["ar.sampler.kind=repetition_awre"])
    with pytest.raises(ConfigError, match=r"ar\.sampler.*top-p"):
        apply_overrides(cfg, ["ar.sampler.top_p=1.5"])  # a kind validates its numbers
    d = to_dict(cfg)
    d["ar"]["layout"] = {"group": 2}
    with pytest.raises(ConfigError, match="missing 'kind'"):
        from_dict(type(cfg), d)


def test_a_config_layer_that_changes_a_components_kind_replaces_its_section() -> None:
    from valle.config import merge_config_dicts

    base = to_dict(apply_overrides(tiny_valle_config(), ["ar.sampler.kind=repetition_aware"]))
    merged = merge_config_dicts(base, {"ar": {"sampler": {"kind": "greedy"}}})
    assert merged["ar"]["sampler"] == {"kind": "greedy"}  # no window/threshold left over
    cfg = from_dict(type(tiny_valle_config()), merged)
    assert to_dict(cfg.ar.sampler) == {"kind": "greedy"}
    same = merge_config_dicts(base, {"ar": {"sampler": {"kind": "repetition_aware", "window": 4}}})
    assert same["ar"]["sampler"]["window"] == 4 and same["ar"]["sampler"]["threshold"] == 0.1
