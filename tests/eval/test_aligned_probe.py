"""valle.eval.aligned_probe on a tiny aligned corpus made on the spot (no ASR, no real data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lhotse import CutSet
from lhotse.features.io import NumpyFilesWriter
from lhotse.utils import fastcopy

from tests.data.factories import FakeCodec, make_cuts
from valle.codec.mel import MelConfig
from valle.codec.mel_rvq import MelRVQCodec, MelRVQConfig
from valle.eval.aligned_probe import (
    SYSTEMS,
    AlignedProbeNet,
    aligned_utterance,
    load_aligned,
    make_batch,
    probe_loss,
    probe_waves,
    speaker_vector,
    train_probe,
)
from valle.text import SymbolTable

Q, K, N_MELS, HOP = 2, 16, 16, 80
TINY = {"channels": 32, "num_blocks": 2, "kernel_size": 5}


def _codec() -> MelRVQCodec:
    mel = MelConfig(sample_rate=16000, n_fft=256, win_length=256, hop_length=HOP, n_mels=N_MELS)
    config = MelRVQConfig(mel=mel, num_codebooks=Q, codebook_size=K, griffin_lim_iters=2)
    g = torch.Generator().manual_seed(0)
    return MelRVQCodec(config, torch.zeros(N_MELS), torch.ones(N_MELS),
                       torch.randn(Q, K, N_MELS, generator=g))  # fmt: skip


def _aligned_cuts(root: Path, speakers: int = 2, utts: int = 3) -> tuple[list, SymbolTable]:
    """Cuts with letter phonemes, made-up durations (1-4 frames per token, seeded) and codes
    that are a function of the frame's phoneme and position (so they can be learned)."""
    cuts = make_cuts(root / "wav", speakers=speakers, utts=utts)
    phones_of = {c.id: [ch for ch in c.supervisions[0].text if ch.isalpha()] for c in cuts}
    symbols = SymbolTable.build(phones_of.values())
    rng = np.random.default_rng(0)
    out = []
    with NumpyFilesWriter(str(root / "codes")) as writer:
        for cut in cuts:
            phones = phones_of[cut.id]
            d = rng.integers(1, 5, size=len(phones))
            ids = np.repeat(symbols.encode(phones), d)
            k = np.concatenate([np.arange(n) for n in d])
            arr = np.stack([(3 * ids + k) % K, (5 * ids + 2 * k + 1) % K], axis=1)  # (T, Q)
            codes = writer.store_array(cut.id, arr.astype(np.int16), frame_shift=HOP / 16000,
                                       temporal_dim=0)  # fmt: skip
            sup = fastcopy(cut.supervisions[0], language="en").with_custom("phonemes", phones)
            c = cut.with_custom("codes", codes).with_custom("durations", [int(x) for x in d])
            c.supervisions = [sup]
            out.append(c)
    return out, symbols


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    cuts, symbols = _aligned_cuts(tmp_path_factory.mktemp("aligned_probe"))
    return cuts, symbols, _codec()


def test_frames_follow_the_durations(corpus):
    cuts, symbols, codec = corpus
    cut = cuts[0]
    u = aligned_utterance(cut, symbols, codec)
    d = cut.custom["durations"]
    ids = symbols.encode(cut.supervisions[0].custom["phonemes"])
    T = sum(d)
    assert u.phonemes.shape == (T,) and u.position.shape == (T, 2)
    assert u.codes.shape == (T, Q) and u.latent is not None and u.latent.shape == (T, N_MELS)
    t = 0
    for tok, n in zip(ids, d, strict=True):
        assert u.phonemes[t : t + n].tolist() == [tok] * n
        assert u.position[t : t + n, 0].tolist() == pytest.approx([j / n for j in range(n)])
        assert u.position[t : t + n, 1].tolist() == pytest.approx([1 / n] * n)
        t += n
    assert torch.allclose(u.latent, codec.codes_to_normalized(u.codes))
    assert speaker_vector(u, K).shape == (2 * N_MELS,)


def test_codec_without_latent_gives_codes_only(corpus):
    cuts, symbols, _ = corpus
    u = aligned_utterance(cuts[0], symbols, FakeCodec(num_codebooks=Q, codebook_size=K))
    assert u.latent is None
    spk = speaker_vector(u, K)
    assert spk.shape == (K,) and spk.sum().item() == pytest.approx(1.0)


def test_missing_or_wrong_durations_are_named(corpus):
    cuts, symbols, codec = corpus
    cut = cuts[0]
    bare = fastcopy(cut, custom={"codes": cut.custom["codes"]})
    with pytest.raises(ValueError, match=r"no phoneme durations.*valle.bin.align"):
        aligned_utterance(bare, symbols, codec)
    d = list(cut.custom["durations"])
    longer = cut.with_custom("durations", [d[0] + 1, *d[1:]])
    with pytest.raises(ValueError, match=f"cut {cut.id}: durations sum to {sum(d) + 1} frames"):
        aligned_utterance(longer, symbols, codec)
    fewer = cut.with_custom("durations", d[:-1])
    with pytest.raises(ValueError, match="durations for .* phoneme tokens"):
        aligned_utterance(fewer, symbols, codec)


def test_training_lowers_the_loss(corpus):
    cuts, symbols, codec = corpus
    utts = load_aligned(cuts, symbols, codec)
    fixed = make_batch([(u, 0, u.num_frames) for u in utts], [speaker_vector(u, K) for u in utts])
    kw = dict(batch_size=4, crop_frames=40, lr=3e-3, seed=0, **TINY)
    untrained, _ = train_probe(utts, len(symbols), K, max_steps=0, **kw)
    net, log = train_probe(utts, len(symbols), K, max_steps=60, **kw)
    assert log.steps == 60 and set(log.final) == {"ce", "latent"}
    with torch.no_grad():
        before = probe_loss(untrained, fixed)[1]
        after = probe_loss(net, fixed)[1]
    assert after["ce"] < 0.5 * before["ce"], (before, after)
    assert after["latent"] < before["latent"], (before, after)
    # weight 0: no latent head, CE only
    net0, log0 = train_probe(utts, len(symbols), K, max_steps=2, latent_weight=0.0, **kw)
    assert net0.latent_head is None and set(log0.final) == {"ce"}


def test_probe_waves_one_per_item_and_system(corpus):
    cuts, symbols, codec = corpus
    utts = load_aligned(cuts, symbols, codec)
    net, _ = train_probe(utts, len(symbols), K, max_steps=1, batch_size=2, **TINY)
    items = utts[:4]
    waves = probe_waves(net, items, codec, speaker_pool=utts, seed=0)
    assert list(waves) == list(SYSTEMS)
    for name in SYSTEMS:
        assert [w.shape[0] for w in waves[name]] == [u.num_frames * HOP for u in items], name
    again = probe_waves(net, items[:1], codec, speaker_pool=utts, seed=0)
    assert torch.equal(again["codes"][0], waves["codes"][0])  # same speaker choice


def test_probe_waves_needs_a_second_cut_of_the_speaker(corpus):
    cuts, symbols, codec = corpus
    utts = load_aligned(cuts, symbols, codec)
    net = AlignedProbeNet(len(symbols), Q, K, 2 * N_MELS, N_MELS, **TINY)
    with pytest.raises(ValueError, match="no other utterance"):
        probe_waves(net, utts[:1], codec, speaker_pool=utts[:1])


def test_cli_parser_accepts_the_options():
    from valle.bin.bench import build_parser

    args = build_parser().parse_args([
        "aligned-probe", "--cuts-train", "tr.jsonl.gz", "--cuts-test", "te.jsonl.gz",
        "--tokens", "tokens.txt", "--codec-dir", "codec", "--language", "en", "--minutes", "0.5",
        "--max-steps", "7", "--max-items", "3", "--threads", "2", "--seed", "4",
        "--latent-weight", "0", "--asr", "faster-whisper", "--asr-path", "m", "--out-dir", "o",
    ])  # fmt: skip
    got = (args.minutes, args.max_steps, args.max_items, args.threads, args.seed)
    assert got == (0.5, 7, 3, 2, 4)
    assert args.latent_weight == 0.0 and args.asr_path == "m" and args.out_dir == "o"
    defaults = build_parser().parse_args(["aligned-probe", "--cuts-train", "a", "--cuts-test",
                                          "b", "--tokens", "t", "--codec-dir", "c",
                                          "--out-dir", "o"])  # fmt: skip
    got = (defaults.language, defaults.minutes, defaults.max_items, defaults.latent_weight)
    assert got == ("en", 8.0, 24, 1.0)


class _EchoASR:
    """A stand-in ASR: answers the same words for every wave."""

    sample_rate = 16000

    def __init__(self, path, device):
        pass

    def transcribe(self, waves, sample_rate, language=None):
        return ["hello number one" for _ in waves]


def test_cli_writes_waves_and_summary(corpus, tmp_path, monkeypatch, capsys):
    import json

    from valle.bin.bench import main
    from valle.eval import asr

    cuts, symbols, codec = corpus
    monkeypatch.setitem(asr.ASR_BACKENDS, "faster-whisper", _EchoASR)
    CutSet.from_cuts(cuts[:3]).to_file(tmp_path / "train.jsonl.gz")
    CutSet.from_cuts(cuts[3:]).to_file(tmp_path / "test.jsonl.gz")
    symbols.to_file(tmp_path / "tokens.txt")
    codec.save(tmp_path / "codec")
    out = tmp_path / "out"
    rc = main(["aligned-probe", "--cuts-train", str(tmp_path / "train.jsonl.gz"),
               "--cuts-test", str(tmp_path / "test.jsonl.gz"), "--tokens",
               str(tmp_path / "tokens.txt"), "--codec-dir", str(tmp_path / "codec"),
               "--max-steps", "2", "--max-items", "2", "--out-dir", str(out)])  # fmt: skip
    assert rc == 0
    summary = json.loads((out / "aligned_probe.json").read_text())
    assert [r["system"] for r in summary["systems"]] == list(SYSTEMS)
    assert summary["train"]["steps"] == 2 and summary["settings"]["max_items"] == 2
    for name in ("latent", "codes", "ground_truth_codes"):
        assert sorted(p.name for p in (out / name).glob("*.wav")) == sorted(
            f"{c.id}.wav" for c in cuts[3:5]
        )
    assert "| ground truth codes |" in capsys.readouterr().out
