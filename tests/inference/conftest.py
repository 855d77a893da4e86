"""A tiny random VALL-E + tiny random EnCodec saved as an inference checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from valle.codec.encodec import EncodecCodec
from valle.config import to_dict
from valle.inference import codec_spec
from valle.testing.codec import synthetic_waves, tiny_encodec_codec
from valle.testing.model import tiny_model
from valle.text import SymbolTable, tokenize_text
from valle.train.checkpoint import save_inference_checkpoint

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "Hello world, this is a test of the speech system.",
]


@dataclass
class Setup:
    checkpoint: Path  # carries symbols and codec spec
    bare_checkpoint: Path  # weights + config only
    tokens: Path
    codec_dir: Path
    codec: EncodecCodec
    symbols: SymbolTable
    prompt_wav: Path  # 1 s, 22.05 kHz stereo (resampled and mixed down on load)


@pytest.fixture(scope="session")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    root = tmp_path_factory.mktemp("infer")
    codec = tiny_encodec_codec(num_codebooks=4, codebook_size=16)
    codec_dir = root / "codec"
    codec.model.save_pretrained(codec_dir)
    symbols = SymbolTable.build([tokenize_text(s, "en") for s in SENTENCES])
    tokens = root / "tokens.txt"
    symbols.to_file(tokens)
    model = tiny_model(
        seed=0, text_vocab_size=len(symbols), codebook_size=16, num_codebooks=4, max_len_ratio=1.5
    )
    cfg = {"model": to_dict(model.config)}
    spec = codec_spec(codec, "encodec", codec_dir, bandwidth=codec.bandwidth)
    ckpt = save_inference_checkpoint(
        root / "model.pt", model.state_dict(), cfg, step=7, symbols=symbols.symbols, codec=spec
    )
    bare = save_inference_checkpoint(root / "bare.pt", model.state_dict(), cfg, step=7)
    sr = 22050
    mono = synthetic_waves([sr], sr, seed=3)[0].numpy()
    stereo = np.stack([mono, 0.5 * mono], axis=1)  # (N, C) as soundfile writes it
    prompt = root / "prompt.wav"
    sf.write(prompt, stereo, sr)
    torch.set_num_threads(1)
    return Setup(ckpt, bare, tokens, codec_dir, codec, symbols, prompt)
