"""Repetition-aware sampling (VALL-E 2, Chen et al. 2024, Sec. 3.2 and Algorithm 1).

Shape legend: B batch, V vocabulary, t steps decoded so far, K window.

Per row: draw a candidate with nucleus sampling; compute its repetition ratio
``r = #{i in the last K decoded tokens : token_i == candidate} / K``; if ``r > t_r``, replace
the candidate by a draw from the full distribution (random sampling). Nucleus sampling with a
small top-p alone tends to lock into loops of one token; the fallback breaks them. The
denominator is always K, as in Algorithm 1, so early steps (t < K) fall back only after
more than ``t_r * K`` repeats.

Which codes count: the K codes *before* the candidate ("the repetition ratio r of token
c_t' in the preceding code sequence with a window size K"), and the ratio must *exceed* t_r;
with the paper's K = 10 and t_r = 0.1 a code is kept once more after one repeat and replaced
on its second. Readings that also count the candidate itself (Algorithm 1's sum is quoted as
running from k = 0) or fire at ``r >= t_r`` (CosyVoice's port) replace it on its first repeat.

The window covers the acoustic prompt too. Algorithm 1 counts repeats among the K codes that
precede step t of the code sequence it is decoding, and VALL-E 2 decodes by *continuing* the
sequence ``c = [prompt codes ; target codes]`` (Sec 2 and 3: the prompt's codes are the
prefix of the same sequence, not a separate condition), so the first K steps look back into
the prompt's last codes. This matters exactly where RAS is meant to act: a prompt ending in
silence or a held vowel makes the first target code a likely repeat, and ignoring the prompt
would let the loop start unchecked. The AR generate loop therefore passes each row's prompt
codes (first codebook, frame order) followed by the generated codes as ``history``
(:class:`valle.ar.heads.CodeHistory`); positions before a shorter row's prompt hold -1, which
never equals a code.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from valle.sampling.base import TokenSampler, check_history, check_logits
from valle.sampling.filters import TopP
from valle.sampling.samplers import FilteredSampler, Greedy


def repetition_ratio(candidates: Tensor, history: Tensor, window: int) -> Tensor:
    """Share of the last ``window`` tokens of each row's ``history`` equal to its candidate.

    Args:
        candidates: (B,) long, the token proposed at this step.
        history: (B, t) long, the tokens decoded so far (t may be smaller than the window).
        window: K, the denominator.
    Returns:
        (B,) float64 ratios in [0, 1].
    """
    recent = history[:, -window:]  # (B, min(t, K))
    count = (recent == candidates[:, None]).sum(dim=-1)  # (B,)
    return count.double() / window


class RepetitionAwareSampler:
    """Nucleus sampling with a random-sampling fallback on repetition (VALL-E 2, Alg. 1).

    Args:
        nucleus: the first-choice sampler; default nucleus sampling ``TopP(top_p)``.
        fallback: the sampler used when the candidate repeats too often; default random
            sampling from the full distribution, as in the paper.
        window: K, how many recent tokens are checked (paper: 10).
        threshold: t_r, fall back when the ratio is strictly greater (paper: 0.1).
        top_p: the nucleus size when ``nucleus`` is not given; 0 makes the first choice
            greedy (the paper tunes v from 0.0 to 0.8, Sec 4).

    Both samplers draw for every row at every step (rows choose per-row), so the random
    stream, and hence the output under a seeded generator, does not depend on which rows
    fell back.
    """

    def __init__(
        self,
        nucleus: TokenSampler | None = None,
        fallback: TokenSampler | None = None,
        window: int = 10,
        threshold: float = 0.1,
        top_p: float = 0.8,
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window K must be an integer >= 1, got {window!r}")
        if not (isinstance(threshold, (int, float)) and math.isfinite(threshold)):
            raise ValueError(f"threshold t_r must be a finite number, got {threshold!r}")
        if not 0 <= threshold < 1:
            raise ValueError(
                f"threshold t_r must be in [0, 1) (a ratio the repetition must exceed), got {threshold}"
            )
        if nucleus is None:
            nucleus = Greedy() if top_p == 0 else FilteredSampler([TopP(top_p)])
        self.nucleus: TokenSampler = nucleus
        self.fallback: TokenSampler = fallback if fallback is not None else FilteredSampler([])
        self.window = window
        self.threshold = float(threshold)

    def should_resample(self, candidates: Tensor, history: Tensor) -> Tensor:
        """(B,) bool: rows whose candidate's repetition ratio exceeds ``threshold``."""
        return repetition_ratio(candidates, history, self.window) > self.threshold

    def __call__(
        self, logits: Tensor, history: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        check_logits(logits)
        check_history(history, logits.shape[0])
        candidates = self.nucleus(logits, history, generator)  # (B,)
        resampled = self.fallback(logits, history, generator)  # (B,)
        repeat = self.should_resample(candidates, history)  # (B,)
        return torch.where(repeat, resampled, candidates)  # (B,)

    def __repr__(self) -> str:
        return (
            f"RepetitionAwareSampler(nucleus={self.nucleus!r}, fallback={self.fallback!r}, "
            f"window={self.window}, threshold={self.threshold})"
        )
