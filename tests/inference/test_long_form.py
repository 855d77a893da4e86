"""Long text is spoken in bounded chunks with the same prompt, joined by pauses (#8.5), and
real-world punctuation no longer aborts synthesis (#8.4)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from valle.inference import SynthesisJob, Synthesizer
from valle.text import UnknownSymbolError, tokenize_text

PROMPT = "She sells sea shells."
LONG = (
    "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore. "
    "Hello world, this is a test of the speech system. The lazy dog, the quick fox."
)


def never_eos(eos: int):
    def sampler(logits, history, generator):
        logits = logits.clone()
        logits[:, eos] = -math.inf
        return logits.argmax(-1)

    return sampler


class Spy:
    """Wraps model.generate and records the rows of every call."""

    def __init__(self, synth: Synthesizer) -> None:
        self.calls: list[tuple[list[int], list[int]]] = []
        self._generate = synth.model.generate
        self.synth = synth

    def __call__(self, text, text_lens, prompt, prompt_lens, **kwargs):
        self.calls.append((text_lens.tolist(), prompt_lens.tolist()))
        return self._generate(text, text_lens, prompt, prompt_lens, **kwargs)


@pytest.fixture()
def chunked(setup, monkeypatch) -> tuple[Synthesizer, Spy]:
    synth = Synthesizer.from_checkpoint(setup.checkpoint, max_text_tokens=40, chunk_pause=0.25)
    spy = Spy(synth)
    monkeypatch.setattr(synth.model, "generate", spy)
    return synth, spy


def test_long_text_is_cut_into_bounded_chunks_with_the_same_prompt(setup, chunked) -> None:
    synth, spy = chunked
    n_prompt = len(tokenize_text(PROMPT, "en"))
    chunks = synth.text_chunks(LONG, PROMPT)
    assert len(chunks) >= 4
    whole = synth.text_ids(LONG, PROMPT)
    assert len(whole) > 40 * 3
    for ids in chunks:  # prompt + boundary + at most 40 target phonemes (+ closing marks)
        assert ids[: n_prompt + 1] == whole[: n_prompt + 1]
        assert len(ids) <= n_prompt + 1 + 40 + 2
    sampler = never_eos(synth.model.ar.eos_id)
    wave, sr = synth.synthesize(LONG, setup.prompt_wav, PROMPT, sampler=sampler)
    # one row per generate call (memory bounded by one chunk), each with the same prompt
    assert [len(lens) for lens, _ in spy.calls] == [1] * len(chunks)
    assert len({p[0] for _, p in spy.calls}) == 1
    assert [lens[0] for lens, _ in spy.calls] == [len(c) for c in chunks]
    # each chunk runs to its bound; chunks are joined by 0.25 s of silence
    hop = round(sr / synth.codec.frame_rate)
    speech = sum(math.ceil(1.5 * len(c)) * hop for c in chunks)
    pauses = (len(chunks) - 1) * round(0.25 * sr)
    assert len(wave) == speech + pauses
    first = math.ceil(1.5 * len(chunks[0])) * hop
    assert not wave[first : first + round(0.25 * sr)].any()


def test_batches_of_long_jobs_stay_within_batch_size_rows(setup, chunked) -> None:
    synth, spy = chunked
    jobs = [SynthesisJob(LONG, setup.prompt_wav, PROMPT, id="a"),
            SynthesisJob("The lazy dog.", setup.prompt_wav, PROMPT, id="b")]  # fmt: skip
    n_rows = len(synth.text_chunks(LONG, PROMPT)) + 1
    out = synth.synthesize_batch(jobs, batch_size=2, sampler=never_eos(synth.model.ar.eos_id))
    assert len(out) == 2 and all(np.isfinite(w).all() and len(w) for w, _ in out)
    assert max(len(lens) for lens, _ in spy.calls) <= 2
    assert sum(len(lens) for lens, _ in spy.calls) == n_rows


def test_the_whole_text_in_one_go_when_chunking_is_off(setup) -> None:
    synth = Synthesizer.from_checkpoint(setup.checkpoint, max_text_tokens=None)
    assert len(synth.text_chunks(LONG, PROMPT)) == 1
    with pytest.raises(ValueError, match="max_text_tokens"):
        Synthesizer.from_checkpoint(setup.checkpoint, max_text_tokens=0)


def test_hitting_the_length_bound_is_a_warning(setup, caplog) -> None:
    synth = Synthesizer.from_checkpoint(setup.checkpoint)
    with caplog.at_level(logging.WARNING, logger="valle"):
        synth.synthesize("The dog.", setup.prompt_wav, PROMPT,
                         sampler=never_eos(synth.model.ar.eos_id))  # fmt: skip
    assert any(
        r.levelno == logging.WARNING and "length bound" in r.getMessage() for r in caplog.records
    )


@pytest.mark.parametrize(
    "text",
    [
        'The "lazy" dog — the quick fox…',
        "(The lazy dog) *sells* sea shells!",
        "The lazy dog – “hello” ‘world’ 😀",
        "¿The lazy dog?",
    ],
)
def test_real_world_punctuation_does_not_abort_synthesis(setup, text) -> None:
    synth = Synthesizer.from_checkpoint(setup.checkpoint)
    wave, _ = synth.synthesize(text, setup.prompt_wav, PROMPT, seed=0)
    assert len(wave) > 0 and np.isfinite(wave).all()
    assert set(synth.known_punctuation) <= {",", "."}  # the tiny table has no quotes etc.


def test_real_unknown_phonemes_are_still_an_error(setup) -> None:
    synth = Synthesizer.from_checkpoint(setup.checkpoint)
    with pytest.raises(UnknownSymbolError) as err:
        synth.text_ids('"Measure the azure vision…"', PROMPT)
    assert set(err.value.symbols) == {"ʒ", "ˈæ"}  # no punctuation among them
