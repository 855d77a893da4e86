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


def _tiny(case: str, **size):
    """The case's tiny config; ``size``: vocabulary keywords of ``tiny()`` (data of its own)."""
    variant, overrides, _ = SETTINGS.get(case, (case, [], {}))
    cls = get_variant(variant)
    assert callable(getattr(cls, "tiny", None)), f"{cls.__name__} has no tiny() classmethod"
    cfg = cls.tiny(**size, **({"overrides": overrides} if overrides else {}))
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


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    """Tokenized cuts of real audio (a fake codec's 2 codebooks x 16 codes at 50 frames/s,
    letters as phonemes) and their symbol table: what the data stages hand a variant."""
    from lhotse import CutSet

    from tests.data.factories import FakeCodec, fake_frontend_for, make_cuts
    from valle.data.codec_info import CodecInfo
    from valle.data.tokenize import add_phonemes, build_symbol_table, encode_cuts

    root = tmp_path_factory.mktemp("corpus")
    codec = FakeCodec()
    info = CodecInfo.from_codec(codec, name="fake")
    coded, _ = encode_cuts(make_cuts(root / "wav", speakers=2, utts=2), codec, root / "tok",
                           "t", info, progress=False)  # fmt: skip
    cuts = CutSet.from_cuts(add_phonemes(coded, frontend_for=fake_frontend_for, progress=False))
    return cuts, build_symbol_table(cuts)


@pytest.mark.parametrize("variant", CASES)
def test_the_dataset_assembles_the_declared_fields_from_cuts(variant: str, corpus) -> None:
    """The loader builds every field the variant declares (``data_request``) from cuts that
    carry it, the model trains on that batch, and cuts without a stored field fail with an
    error naming the cut and the field."""
    from lhotse import CutSet

    from valle.data import batch as B_
    from valle.data.dataset import SpeechTokenDataset
    from valle.data.prompt import SameSpeakerPrompt, load_codes
    from valle.data.tokenize import cut_phonemes

    cuts, symbols = corpus
    cfg = _tiny(variant, text_vocab_size=len(symbols), num_codebooks=2)
    request = data_request(cfg)
    assert isinstance(request, DataRequest)
    bare = list(cuts)[:3]
    stored = {}  # featurizers reading a field an earlier stage stores on the cut
    for f in request.featurizers:
        try:
            f(bare[0])
        except ValueError as e:
            stored[f] = getattr(f, "field", f.name)
            assert bare[0].id in str(e) and stored[f] in str(e), e  # says which cut and field
    g = torch.Generator().manual_seed(0)
    carrying = []
    for cut in bare:
        n_text, n_frames = len(cut_phonemes(cut)), load_codes(cut).shape[0]
        for f, key in stored.items():  # what the stage would store: the featurizer's example
            cut = cut.with_custom(key, f.example(n_text, n_frames, g).tolist())
        carrying.append(cut)
    prompt = SameSpeakerPrompt(cuts, duration=0.2) if request.other_utterance_prompt else None
    dataset = SpeechTokenDataset(symbols, prompt=prompt, featurizers=request.featurizers)
    batch = dataset[CutSet.from_cuts(carrying)]
    assert (B_.PROMPT_CODES in batch) == request.other_utterance_prompt
    for f in request.featurizers:
        values, lens = batch[f.name], batch[B_.lens_key(f.name)]
        for b, cut in enumerate(carrying):
            want = f(cut)
            n = int(lens[b])
            assert n == want.shape[0] and torch.equal(values[b, :n], want.to(values.dtype))
            assert (values[b, n:] == f.pad_value).all()
    loss, _ = _model(cfg).loss(batch, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    if stored:
        with pytest.raises(ValueError, match=bare[0].id):
            dataset[CutSet.from_cuts(bare)]


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


class _NeverStop:
    """The model's stop policy, never firing: its decisions are ignored and its EOS class
    (when it has one) is never drawn, so every row runs to the length bound."""

    def __init__(self, inner) -> None:
        self.inner, self.keeps_last = inner, inner.keeps_last

    def begin(self, context):
        return self.inner.begin(context)

    def prepare(self, out, n, state):
        out = self.inner.prepare(out, n, state)
        eos = getattr(self.inner, "eos_id", None)
        return out if eos is None else out.index_fill(-1, torch.tensor([eos]), -math.inf)

    def __call__(self, step, out, n, state):
        return torch.zeros(step.shape[0], dtype=torch.bool, device=step.device)


class _Watch:
    """The model's stop policy, recording the first step at which it ends each row."""

    def __init__(self, inner) -> None:
        self.inner, self.keeps_last, self.first = inner, inner.keeps_last, None

    def begin(self, context):
        self.first = torch.full_like(context.text_lens, -1)
        return self.inner.begin(context)

    def prepare(self, out, n, state):
        return self.inner.prepare(out, n, state)

    def __call__(self, step, out, n, state):
        ends = self.inner(step, out, n, state)
        self.first = torch.where((self.first < 0) & ends, n, self.first)
        return ends


def _eos_after(eos: int, calls: int):
    """Greedy sampling that draws EOS from its ``calls``-th call on, where EOS is allowed."""
    seen = []

    def sampler(logits, history, generator):
        seen.append(1)
        pick = logits.argmax(-1)
        if len(seen) < calls or logits.shape[-1] <= eos:
            return pick
        return torch.where(torch.isfinite(logits[:, eos]), eos, pick)

    return sampler


def _bound(inputs, ratio: float) -> list[int]:
    """The documented bound: at most ``max(1, ceil(ratio * S_b))`` new frames per row."""
    return [max(1, math.ceil(ratio * n)) for n in inputs.text_lens.tolist()]


@pytest.mark.parametrize("variant", CASES)
def test_a_stop_that_never_fires_ends_exactly_at_the_bound(variant: str) -> None:
    cfg = _tiny(variant)
    model = _model(cfg).eval()
    if hasattr(model, "ar"):
        model.ar.stop = _NeverStop(model.ar.stop)
    else:  # the toy's stop is its length head: e^20 frames
        torch.nn.init.constant_(model.length.bias, 20.0)
    inputs = synthesis_inputs(_batch(variant, cfg, batch_size=3, seed=5))
    assert any(b % 2 for b in _bound(inputs, 1.5))  # a step of 2 frames must not pass these
    for ratio in (1.5, 2.0):
        out = generate_from(model, inputs, max_len_ratio=ratio)
        assert [o.shape[0] for o in out] == _bound(inputs, ratio)


@pytest.mark.parametrize("variant", [c for c in CASES if c != "toy"])  # the toy has no AR
def test_generation_ends_where_the_stop_rule_fires(variant: str) -> None:
    """Rows end at the step where the stop policy fires (that step kept or not, as the
    policy says), or at the bound; at least one row ends before the bound. A stop on an
    EOS class gets a sampler that draws EOS where allowed (a random tiny model rarely
    does); the other rules fire on their own."""
    cfg = _tiny(variant)
    model = _model(cfg).eval()
    watch = _Watch(model.ar.stop)
    model.ar.stop = watch
    eos = getattr(watch.inner, "eos_id", None)
    kwargs = {} if eos is None else {"sampler": _eos_after(eos, calls=4)}
    inputs = synthesis_inputs(_batch(variant, cfg, batch_size=3, seed=1))
    ratio = 4.0
    out = generate_from(model, inputs, max_len_ratio=ratio, **kwargs)
    G, keep = model.ar.layout.frames_per_step, int(watch.keeps_last)
    bound = _bound(inputs, ratio)
    want = [
        b if n < 0 else min((n + keep) * G, b)
        for n, b in zip(watch.first.tolist(), bound, strict=True)
    ]
    assert [o.shape[0] for o in out] == want
    assert any(w < b for w, b in zip(want, bound, strict=True)), "no row ended by its stop rule"


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
