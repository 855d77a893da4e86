"""Viterbi scores with explicit silence and word-separator handling, on hand-made posteriors
shaped like the trained CTC model's (peaky: the blank wins most frames)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from valle.align.model import AcousticModel, ModelConfig
from valle.align.scoring import Separators, alignment_scores
from valle.align.viterbi import viterbi_durations

SYMBOLS = ["a", "b", "_", "."]  # classes 0..3; the CTC blank is class 4
A, B, SEP, STOP, BLANK = 0, 1, 2, 3, 4
TOKENS = np.array([A, SEP, B, STOP])  # "a _ b ."
OLD = ModelConfig(phone_weight=0.0, silence_weight=0.0, separator_cost=0.0)


def _frames(rows: list[dict[int, float]]) -> torch.Tensor:
    """Logits ``(1, T, V)`` whose softmax is each row's probabilities (the rest split evenly)."""
    probs = np.full((len(rows), len(SYMBOLS) + 1), 0.0)
    for t, row in enumerate(rows):
        rest = (1.0 - sum(row.values())) / (probs.shape[1] - len(row))
        probs[t] = rest
        for k, p in row.items():
            probs[t, k] = p
    return torch.tensor(np.log(probs), dtype=torch.float32)[None]


def _durations(logits: torch.Tensor, config: ModelConfig) -> list[int]:
    model = AcousticModel(4, len(SYMBOLS), config)
    base = model.frame_scores(logits)[0].double().numpy()  # (T, V - 1)
    nonblank = model.nonblank_log_posteriors(logits)[0].double().numpy()  # (T, V - 1)
    scores = alignment_scores(
        base,
        nonblank,
        TOKENS,
        Separators.from_symbols(SYMBOLS),
        config.phone_weight,
        config.silence_weight,
        config.separator_cost,
    )
    return viterbi_durations(scores).tolist()


def _speech(onset: list[dict[int, float]]) -> torch.Tensor:
    """'a' (frames 0-3), the '_' spike (4), the frames ``onset`` (b's onset, or a pause), b's
    spike and tail, then the final pause that '.' owns."""
    return _frames(
        [
            {A: 0.9, BLANK: 0.0999},  # a's spike
            *[{BLANK: 0.95, A: 0.04, SEP: 0.0099}] * 3,
            {SEP: 0.6, BLANK: 0.3999},  # the CTC spike of "_"
            *onset,
            {B: 0.9, BLANK: 0.0999},  # b's spike
            *[{BLANK: 0.95, B: 0.0499}] * 2,
            *[{BLANK: 0.9, STOP: 0.0999}] * 2,  # the final pause
        ]
    )


def test_word_separator_keeps_one_frame_between_words_without_a_pause():
    """The trained model's ``_`` class gets a share of the non-blank posterior on the speech
    frames of a word transition (here 0.6 against b's 0.4, the blank winning all of them):
    scored by CTC evidence alone ``_`` takes all of b's onset; with the separator scored by
    silence it keeps its one frame and b starts right after it."""
    onset = [{BLANK: 0.9, SEP: 0.06, B: 0.04 - 1e-4}] * 4  # frames 5-8: b's onset
    logits = _speech(onset)
    assert _durations(logits, ModelConfig()) == [4, 1, 7, 2]
    assert _durations(logits, OLD) == [4, 5, 3, 2]  # the aligner before valle.align.scoring


def test_word_separator_takes_a_pause():
    """Frames the model hears as a pause (punctuation mass, next to nothing for the phonemes)
    go to the separator."""
    pause = [{BLANK: 0.95, STOP: 0.0495, A: 5e-5, B: 5e-5}] * 4  # frames 5-8: silence
    d = _durations(_speech(pause), ModelConfig())
    assert d[0] + d[1] == 9 and d[1] >= 4  # b starts after the pause, all of it with "_"


def test_zero_weights_give_the_base_scores():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((7, 4))
    nonblank = np.log(rng.dirichlet(np.ones(4), size=7))
    seps = Separators.from_symbols(SYMBOLS)
    got = alignment_scores(base, nonblank, TOKENS, seps, 0.0, 0.0, 0.0)
    assert np.array_equal(got, base[:, TOKENS])
    new = alignment_scores(base, nonblank, TOKENS, seps, 0.2, 0.5, 1.0)
    assert np.allclose(new[:, 0], base[:, A] + 0.2 * nonblank[:, A])
    assert np.allclose(new[:, 1], base[:, SEP] + 0.5 * nonblank[:, STOP] - 1.0)
    assert np.allclose(new[:, 3], base[:, STOP] + 0.5 * nonblank[:, STOP])


def test_separators_from_symbols():
    seps = Separators.from_symbols(["<pad>", "a", "_", ",", ".", "ab"])
    assert seps.word_boundary == 2 and seps.punctuation == (3, 4)
    assert seps.mask(np.array([1, 2, 3, 5, 4])).tolist() == [False, True, True, False, True]
    none = Separators.from_symbols(["a", "b"])  # no separators: only phoneme scores change
    scores = alignment_scores(np.zeros((3, 2)), np.zeros((3, 2)), np.array([0, 1]), none, 0.2,
                              0.5, 1.0)  # fmt: skip
    assert np.allclose(scores, 0.0)


def test_checkpoint_configs_before_the_scoring_still_load():
    old = {k: v for k, v in OLD.to_dict().items() if k not in ("phone_weight", "silence_weight",
           "separator_cost")}  # fmt: skip
    assert ModelConfig.from_dict(old) == ModelConfig()  # an old checkpoint gets the new scores
    assert ModelConfig.from_dict(OLD.to_dict()) == OLD  # and the old scores stay expressible
    with pytest.raises(ValueError, match="separator_cost must be >= 0"):
        ModelConfig(separator_cost=-1.0)
