"""Variant registry: lookup, errors listing names, building."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from valle.config import ConfigError, load_yaml
from valle.registry import (
    UnknownVariantError,
    build_model,
    choose_component,
    get_variant,
    register_variant,
    registered_variants,
)
from valle.testing.model import tiny_valle_config


def test_valle_is_registered_and_builds() -> None:
    assert "valle" in registered_variants()
    cfg = tiny_valle_config()
    assert get_variant("valle") is type(cfg)
    model = build_model(cfg)
    assert isinstance(model, torch.nn.Module)
    assert model.ar is not None and model.nar is not None


def test_unknown_variant_lists_registered_names() -> None:
    with pytest.raises(UnknownVariantError, match=r"'vale'.*valle"):
        get_variant("vale")


def test_register_needs_a_dataclass_with_build() -> None:
    with pytest.raises(TypeError, match="build"):

        @register_variant("_test_nobuild")
        @dataclass(frozen=True)
        class NoBuild:
            x: int = 1


def test_build_model_rejects_unregistered_config() -> None:
    @dataclass(frozen=True)
    class Plain:
        def build(self) -> torch.nn.Module:
            return torch.nn.Linear(1, 1)

    with pytest.raises(TypeError, match="not a registered variant"):
        build_model(Plain())


def test_choose_component_error_lists_options() -> None:
    with pytest.raises(ValueError, match=r"'prefx'.*prefix.*causal"):
        choose_component({"prefix": 1, "causal": 2}, "prefx", "mask policy")
    with pytest.raises(ValueError, match="prefix"):  # an unknown kind fails at load time
        tiny_valle_config(overrides=["ar.mask=prefx"])


def test_yaml_with_wrong_variant_is_an_error(tmp_path) -> None:
    (tmp_path / "m.yaml").write_text("variant: valle2000\n")
    with pytest.raises(UnknownVariantError, match="valle"):
        load_yaml(tmp_path / "m.yaml")
    (tmp_path / "n.yaml").write_text("ar: {}\n")
    with pytest.raises(ConfigError, match="variant"):
        load_yaml(tmp_path / "n.yaml")
