"""Audio samples: synthesized with model.generate, decoded by the codec, logged to TensorBoard."""

from __future__ import annotations

import logging

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.train.fakes import TEXT_V, FakeCodec, FakeSpeechLM, Q, V, dummy_batch
from valle.config import compose_config
from valle.registry import build_model
from valle.train.config import TrainConfig
from valle.train.module import TrainingModule
from valle.train.samples import SampleLogger, SampleProvider, mel_figure


def _trainer(logger):
    trainer = L.Trainer(
        accelerator="cpu",
        logger=logger,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    return trainer


def test_provider_from_batch_works_with_the_real_model():
    batch = dummy_batch(3)
    provider = SampleProvider.from_batch(batch, FakeCodec(), prompt_index=0, target_index=1)
    n0, n1 = int(batch["text_lens"][0]), int(batch["text_lens"][1])
    assert provider.text_tokens.shape == (n0 + n1,)
    assert provider.prompt_codes.shape == (int(batch["audio_lens"][0]), Q)
    torch.manual_seed(0)
    model = build_model(
        compose_config(
            "valle",
            "tiny",
            ["ar.max_len_ratio=2.0"],
            text_vocab_size=TEXT_V,
            codebook_size=V,
            num_codebooks=Q,
        )
    ).eval()
    wave, sr = provider.synthesize(model)
    assert sr == 8000 and wave.ndim == 1 and torch.isfinite(wave).all()
    assert wave.abs().max() <= 1.0


def test_sample_logger_writes_audio_and_mel(tmp_path):
    tb = TensorBoardLogger(save_dir=str(tmp_path), name="tb", version="")
    trainer = _trainer(tb)
    module = TrainingModule(FakeSpeechLM(), TrainConfig())
    module.trainer = trainer
    provider = SampleProvider.from_batch(dummy_batch(2), FakeCodec())
    cb = SampleLogger(provider, every_n_steps=5)
    module.model.train()
    cb.log_sample(trainer, module, step=5)
    assert module.model.training  # restored after synthesis
    tb.experiment.flush()
    acc = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert {"sample/generated", "sample/reference"} <= set(acc.Tags()["audio"])
    assert {"sample/generated_mel", "sample/reference_mel"} <= set(acc.Tags()["images"])


def test_no_tensorboard_or_failing_generate_is_skipped(caplog, tmp_path):
    trainer = _trainer(False)

    class Failing(FakeSpeechLM):
        def generate(self, *a, **k):
            raise RuntimeError("boom")

    module = TrainingModule(Failing(), TrainConfig())
    module.trainer = trainer
    cb = SampleLogger(SampleProvider.from_batch(dummy_batch(2), FakeCodec()), every_n_steps=1)
    cb.log_sample(trainer, module, step=1)  # no TensorBoard: returns quietly

    tb_trainer = _trainer(TensorBoardLogger(save_dir=str(tmp_path), name="x"))
    module.trainer = tb_trainer
    with caplog.at_level(logging.ERROR):
        cb.log_sample(tb_trainer, module, step=1)
    assert "synthesizing the training sample failed" in caplog.text


def test_mel_figure_has_one_image():
    wave = FakeCodec().decode([torch.randint(0, V, (10, Q))])[0]
    fig = mel_figure(wave, 8000, "x")
    assert len(fig.axes[0].images) == 1
    data = fig.axes[0].images[0].get_array()
    assert data.shape[0] == 80 and data.shape[1] > 50


def test_continuation_prompts_with_the_first_seconds_and_reads_the_whole_transcript():
    batch = dummy_batch(4)  # 0.6-2.0 s at 10 frames/s
    lens = batch["audio_lens"].tolist()
    p = SampleProvider.continuation(batch, FakeCodec(), prompt_seconds=0.5, min_target_seconds=0.5)
    b = next(i for i, n in enumerate(lens) if n >= 10)  # the first with 0.5 s left after the prompt
    n, s = lens[b], int(batch["text_lens"][b])
    assert torch.equal(p.prompt_codes, batch["audio_codes"][b, :5])
    assert torch.equal(p.reference_codes, batch["audio_codes"][b, 5:n])
    assert torch.equal(p.text_tokens, batch["text_tokens"][b, :s])  # the whole transcript
    assert p.prompt_text_len == round(s * 5 / n)
    # nothing long enough: the longest utterance, still leaving a frame to continue
    p = SampleProvider.continuation(batch, FakeCodec(), prompt_seconds=30.0)
    longest = max(range(4), key=lambda i: lens[i])
    assert p.prompt_codes.shape[0] == lens[longest] - 1


def _utterances_ending_in_silence(n=4, tokens=6, silence=3, seed=1):
    """Distinct texts (distinct first tokens); codes follow the text (each token lasts two
    frames, codes 1..11) and end in ``silence`` frames of code 0, as recorded speech does."""
    g = torch.Generator().manual_seed(seed)
    texts, codes = [], []
    while len(texts) < n:
        t = torch.randint(1, TEXT_V, (tokens,), generator=g)
        if any(int(t[0]) == int(u[0]) for u in texts):
            continue
        f = torch.cat([t.repeat_interleave(2), torch.zeros(silence, dtype=torch.long)])
        texts.append(t)
        codes.append(torch.stack([f % V, (3 * f) % V], 1))  # (T, Q)
    return texts, codes


def test_whole_utterance_prompt_stops_at_once_continuation_does_not():
    """The 0.01 s mini samples: a model that does not read its text (like the mini model,
    text gap 0) and has learnt that speech ends after trailing silence stops at once when the
    prompt is a whole utterance; the continuation protocol gives about the reference's length."""
    from valle.testing.model import batch_from_codes, tiny_model

    torch.set_num_threads(1)
    texts, codes = _utterances_ending_in_silence()
    batch = batch_from_codes(texts, codes)
    model = tiny_model(seed=0, text_vocab_size=TEXT_V, codebook_size=V, num_codebooks=Q)
    for p in model.ar.text_embedding.parameters():  # text-blind
        torch.nn.init.zeros_(p)
        p.requires_grad_(False)
    torch.manual_seed(0)
    opt = torch.optim.Adam([p for p in model.ar.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(150):
        loss, _ = model.ar.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    codec = FakeCodec()
    hop = codec.sample_rate // int(codec.frame_rate)

    old = SampleProvider.from_batch(batch, codec, prompt_index=0, target_index=1)
    wave, _ = old.synthesize(model)
    assert wave.numel() <= 2 * hop  # the bug: at most a couple of frames

    cont = SampleProvider.continuation(batch, codec, index=1, prompt_seconds=0.4)
    wave, _ = cont.synthesize(model)
    ref = cont.reference_codes.shape[0]
    assert ref == 15 - 4
    assert abs(wave.numel() / hop - ref) <= 0.25 * ref
