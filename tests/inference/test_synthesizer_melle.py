"""A mel model through the Synthesizer: MELLE's checkpoint needs no codec (the model owns its
wave maker, valle.codec.vocoder.MelWaveMaker over its vocoder); the prompt becomes log-mel
frames, the output mel becomes a wave at the vocoder's rate."""

from __future__ import annotations

import math

import numpy as np
import torch

from valle.codec.vocoder import MelWaveMaker
from valle.config import to_dict
from valle.inference import Synthesizer
from valle.testing.codec import synthetic_waves
from valle.testing.model import tiny_model
from valle.text import SymbolTable, tokenize_text
from valle.train.checkpoint import save_inference_checkpoint


def test_melle_speaks_through_the_synthesizer(tmp_path) -> None:
    torch.set_num_threads(1)
    sentences = ["The quick brown fox.", "She sells sea shells."]
    symbols = SymbolTable.build([tokenize_text(s, "en") for s in sentences])
    model = tiny_model(seed=0, variant="melle", text_vocab_size=len(symbols), max_len_ratio=1.5)
    with torch.no_grad():  # never stops by itself: every job runs to its length bound
        model.head.stop_proj.weight.zero_()
        model.head.stop_proj.bias.fill_(-9.0)
    ckpt = save_inference_checkpoint(
        tmp_path / "model.pt", model.state_dict(), {"model": to_dict(model.config)}, step=1,
        symbols=symbols.symbols,
    )  # fmt: skip  # no codec entry: a mel model needs none
    synth = Synthesizer.from_checkpoint(ckpt)
    assert isinstance(synth.codec, MelWaveMaker)
    # a recipe passes its codec directory; a mel model still speaks through its vocoder
    again = Synthesizer.from_checkpoint(ckpt, codec=str(tmp_path / "no-codec-here"))
    assert isinstance(again.codec, MelWaveMaker)
    sr = synth.sample_rate
    assert sr == model.config.mel.sample_rate
    prompt = synthetic_waves([sr], sr, seed=1)[0].numpy()  # 1 s
    text, prompt_text = "She sells sea shells.", "The quick brown fox."
    n_text = len(synth.text_ids(text, prompt_text))
    wave, out_sr = synth.synthesize(text, prompt, prompt_text, prompt_sample_rate=sr)
    assert out_sr == sr and wave.dtype == np.float32 and np.isfinite(wave).all()
    hop = model.config.mel.hop_length
    assert len(wave) == math.ceil(1.5 * n_text) * hop
