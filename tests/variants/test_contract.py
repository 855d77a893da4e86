"""The contract every registered variant keeps (DESIGN.md 2b, issue 7), the toy one included.

Each variant's tiny config comes from its own config class (``Config.tiny()``); a new variant
is covered as soon as it is registered (docs/adding_a_variant.md). Settings that change what
an AR step is are covered as cases of their own (:data:`SETTINGS`).
"""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path

import pytest
import torch

import valle.testing.toy  # noqa: F401  (registers the toy variant)
from valle.config import load_yaml, save_yaml
from valle.data.featurizers import DataRequest
from valle.registry import build_model, data_request, get_variant, registered_variants
from valle.testing.model import dummy_batch, generate_from, synthesis_inputs

VARIANTS = registered_variants()
# case -> (variant, tiny() overrides, dummy_batch keywords): VALL-E R on merged codes steps once
# per window of 2 frames (preset vallr_merged), so its rows need >= 2 frames per phoneme
SETTINGS = {
    "vallr_merged": (
        "vallr",
        ["ar.layout.kind=merged_first_codebook", "ar.layout.rate=2"],
        {"audio_len": (16, 24)},
    ),
}
CASES = VARIANTS + sorted(SETTINGS)


def _tiny(case: str):
    variant, overrides, _ = SETTINGS.get(case, (case, [], {}))
    cls = get_variant(variant)
    assert callable(getattr(cls, "tiny", None)), f"{cls.__name__} has no tiny() classmethod"
    cfg = cls.tiny(overrides=overrides) if overrides else cls.tiny()
    assert type(cfg) is cls
    return cfg


def _batch(case: str, cfg, **kwargs):
    """``dummy_batch(cfg, **kwargs)`` with the case's own lengths (:data:`SETTINGS`)."""
    return dummy_batch(cfg, **{**SETTINGS.get(case, (None, None, {}))[2], **kwargs})


def _model(cfg, seed: int = 0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(cfg)


def test_the_toy_variant_is_covered() -> None:
    assert {"toy", "valle"} <= set(VARIANTS)


@pytest.mark.parametrize("variant", CASES)
def test_finite_loss_and_gradients_for_every_parameter(variant: str) -> None:
    cfg = _tiny(variant)
    model = _model(cfg)
    loss, metrics = model.loss(
        _batch(variant, cfg, batch_size=3), generator=torch.Generator().manual_seed(0)
    )
    assert torch.isfinite(loss) and "loss" in metrics
    assert all(torch.isfinite(v).all() for v in metrics.values())
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, f"no gradient reaches {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("variant", CASES)
def test_every_declared_stage_trains_alone(variant: str) -> None:
    cfg = _tiny(variant)
    stages = type(cfg).stages
    assert stages and len(set(stages)) == len(stages)
    model = _model(cfg)
    batch = _batch(variant, cfg, batch_size=2)
    for stage in stages:
        loss, metrics = model.loss(batch, stages=(stage,), generator=torch.Generator())
        assert torch.isfinite(loss)
        assert all(k == "loss" or k.startswith(f"{stage}/") for k in metrics), metrics
    with pytest.raises(ValueError, match="stages"):
        model.loss(batch, stages=("no_such_stage",))


@pytest.mark.parametrize("variant", CASES)
def test_data_request_is_declared(variant: str) -> None:
    cfg = _tiny(variant)
    request = data_request(cfg)
    assert isinstance(request, DataRequest)
    batch = _batch(variant, cfg)  # fakes every requested field
    assert all(f.name in batch for f in request.featurizers)


@pytest.mark.parametrize("variant", CASES)
def test_generation_within_length_bounds(variant: str) -> None:
    cfg = _tiny(variant)
    model = _model(cfg).eval()
    inputs = synthesis_inputs(_batch(variant, cfg, batch_size=3, seed=1))
    out = generate_from(model, inputs, max_len_ratio=2.0)
    assert len(out) == 3
    for o, n in zip(out, inputs.text_lens.tolist(), strict=True):
        assert o.dim() == 2 and 0 <= o.shape[0] <= math.ceil(2.0 * n)
        if o.is_floating_point():  # a mel model (MELLE): log-mel frames (T, F)
            assert o.shape[1] == cfg.mel.n_mels and torch.isfinite(o).all()
            continue
        assert o.dtype == torch.long
        assert o.shape[1] == cfg.vocab.num_codebooks
        assert o.numel() == 0 or (0 <= int(o.min()) and int(o.max()) < cfg.vocab.codebook_size)


@pytest.mark.parametrize("variant", CASES)
def test_config_yaml_round_trip(variant: str, tmp_path: Path) -> None:
    cfg = _tiny(variant)
    save_yaml(cfg, tmp_path / "model.yaml")
    again = load_yaml(tmp_path / "model.yaml")
    assert type(again) is type(cfg) and again == cfg
    assert dataclasses.asdict(again) == dataclasses.asdict(cfg)


@pytest.mark.parametrize("variant", CASES)
def test_save_and_reload_give_identical_outputs(variant: str, tmp_path: Path) -> None:
    cfg = _tiny(variant)
    model = _model(cfg, seed=4).eval()
    save_yaml(cfg, tmp_path / "model.yaml")
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    again = build_model(load_yaml(tmp_path / "model.yaml")).eval()
    again.load_state_dict(torch.load(buf, weights_only=True))
    batch = _batch(variant, cfg, batch_size=2, seed=2)
    l1, m1 = model.loss(batch, generator=torch.Generator().manual_seed(3))
    l2, m2 = again.loss(batch, generator=torch.Generator().manual_seed(3))
    assert torch.equal(l1, l2) and m1.keys() == m2.keys()
    inputs = synthesis_inputs(batch)
    for a, b in zip(generate_from(model, inputs), generate_from(again, inputs), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("variant", CASES)
def test_batch_generation_equals_per_item(variant: str) -> None:
    """A row's output does not depend on its batch neighbours or its padding (greedy)."""
    cfg = _tiny(variant)
    model = _model(cfg, seed=1).eval()
    inputs = synthesis_inputs(_batch(variant, cfg, batch_size=3, seed=5, text_len=(2, 9)))
    together = generate_from(model, inputs, max_len_ratio=3.0)
    for b in range(inputs.batch_size):
        (alone,) = generate_from(model, inputs.row(b), max_len_ratio=3.0)
        if alone.is_floating_point():  # mel frames: batched matmuls may differ in the last bits
            torch.testing.assert_close(alone, together[b], rtol=1e-4, atol=1e-5)
            continue
        assert torch.equal(alone, together[b]), b


def test_variant_stages_of_presets() -> None:
    """A preset name resolves to its variant's stages (run.sh's variant_has_nar reads this:
    ``--variant melle_hifigan`` has no NAR stage)."""
    from valle.config import preset_variant
    from valle.registry import UnknownVariantError, variant_stages

    assert preset_variant("melle_hifigan") == "melle"
    assert variant_stages(preset_variant("melle_hifigan")) == variant_stages("melle") == ("ar",)
    assert variant_stages(preset_variant("valle")) == ("ar", "nar")
    with pytest.raises(UnknownVariantError, match="Registered variants"):
        variant_stages(preset_variant("no_such_variant"))
