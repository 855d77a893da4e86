from __future__ import annotations

import pytest
import torch
from lhotse import CutSet

from tests.data.factories import FakeCodec, fake_frontend_for
from valle.data import batch as B
from valle.data.codec_info import CodecInfo
from valle.data.dataset import SpeechTokenDataset, make_dataloader, make_sampler
from valle.data.prompt import PrefixPrompt, SameSpeakerPrompt, load_codes
from valle.data.tokenize import add_phonemes, build_symbol_table, cut_phonemes, encode_cuts


@pytest.fixture
def tokenized(cuts, tmp_path):
    codec = FakeCodec()
    info = CodecInfo.from_codec(codec, name="fake")
    coded, _ = encode_cuts(cuts, codec, tmp_path / "tok", "t", info, progress=False)
    return add_phonemes(coded, frontend_for=fake_frontend_for, progress=False)


def test_collate_shapes_and_lens(tokenized):
    symbols = build_symbol_table(tokenized)
    ds = SpeechTokenDataset(symbols, prompt=SameSpeakerPrompt(tokenized, duration=0.5))
    some = CutSet.from_cuts(list(tokenized)[:4])
    batch = ds[some]
    b = len(some)
    assert batch[B.TEXT_TOKENS].shape == (b, int(batch[B.TEXT_LENS].max()))
    assert batch[B.AUDIO_CODES].shape == (b, int(batch[B.AUDIO_LENS].max()), 2)
    assert batch[B.PROMPT_CODES].shape == (b, int(batch[B.PROMPT_LENS].max()), 2)
    for key in (
        B.TEXT_TOKENS,
        B.AUDIO_CODES,
        B.PROMPT_CODES,
        B.TEXT_LENS,
        B.AUDIO_LENS,
        B.LANGUAGE,
    ):
        assert batch[key].dtype == torch.long
    assert batch[B.LANGUAGE].tolist() == [0] * b
    assert batch[B.CUT_IDS] == [c.id for c in some]
    assert batch[B.SPEAKERS] == [c.supervisions[0].speaker for c in some]
    for i, cut in enumerate(some):
        codes = load_codes(cut)
        n = int(batch[B.AUDIO_LENS][i])
        assert n == codes.shape[0]
        assert torch.equal(batch[B.AUDIO_CODES][i, :n], codes)
        assert (batch[B.AUDIO_CODES][i, n:] == B.PAD_ID).all()
        s = int(batch[B.TEXT_LENS][i])
        assert symbols.decode(batch[B.TEXT_TOKENS][i, :s].tolist()) == cut_phonemes(cut)
        assert (batch[B.TEXT_TOKENS][i, s:] == B.PAD_ID).all()
        assert int(batch[B.PROMPT_LENS][i]) <= round(0.5 * 50)
    # without a provider, no prompt keys
    assert B.PROMPT_CODES not in SpeechTokenDataset(symbols)[some]


def _is_crop(prompt: torch.Tensor, codes: torch.Tensor) -> bool:
    p = prompt.shape[0]
    return any(torch.equal(codes[s : s + p], prompt) for s in range(codes.shape[0] - p + 1))


def test_same_speaker_prompt_other_utterance(tokenized):
    provider = SameSpeakerPrompt(tokenized, duration=0.4, seed=3)
    by_id = {c.id: c for c in tokenized}
    for cut in tokenized:
        src = provider.source(cut)
        assert src != cut.id
        assert by_id[src].supervisions[0].speaker == cut.supervisions[0].speaker
        prompt = provider(cut, load_codes(cut))
        assert prompt.shape[0] == min(20, load_codes(by_id[src]).shape[0])
        assert _is_crop(prompt, load_codes(by_id[src]))
    # deterministic under a seed, and the seed matters
    again = SameSpeakerPrompt(tokenized, duration=0.4, seed=3)
    assert [provider.source(c) for c in tokenized] == [again.source(c) for c in tokenized]
    choices = {
        tuple(SameSpeakerPrompt(tokenized, seed=s).source(c) for c in tokenized) for s in range(6)
    }
    assert len(choices) > 1


def test_single_utterance_speaker_falls_back_to_prefix(tokenized):
    lonely = [c for c in tokenized if c.supervisions[0].speaker == "spk1"][:1]
    provider = SameSpeakerPrompt(lonely, duration=0.4)
    cut = lonely[0]
    codes = load_codes(cut)
    prompt = provider(cut, codes)
    assert provider.source(cut) == cut.id
    assert torch.equal(prompt, codes[: prompt.shape[0]])
    assert 1 <= prompt.shape[0] <= codes.shape[0] // 2


def test_prefix_prompt(tokenized):
    cut = next(iter(tokenized))
    codes = load_codes(cut)
    prompt = PrefixPrompt(duration=0.2)(cut, codes)
    assert torch.equal(prompt, codes[:10])


def test_sampler_two_ranks_disjoint_and_covering(tokenized):
    seen = []
    for rank in range(2):
        s = make_sampler(
            tokenized,
            max_duration=3.0,
            num_buckets=2,
            shuffle=True,
            seed=7,
            rank=rank,
            world_size=2,
        )
        ids = [c.id for batch in s for c in batch]
        assert len(ids) == len(set(ids))
        seen.append(set(ids))
    assert seen[0].isdisjoint(seen[1])
    assert seen[0] | seen[1] == {c.id for c in tokenized}
    assert seen[0] and seen[1]


def test_dataloader_batches(tokenized):
    symbols = build_symbol_table(tokenized)
    dl = make_dataloader(
        tokenized,
        SpeechTokenDataset(symbols),
        max_duration=4.0,
        num_buckets=2,
        seed=0,
        rank=0,
        world_size=1,
    )
    ids = []
    for batch in dl:
        assert (
            sum(next(c for c in tokenized if c.id == i).duration for i in batch[B.CUT_IDS])
            <= 4.0 + 1e-6
        )
        ids += batch[B.CUT_IDS]
    assert sorted(ids) == sorted(c.id for c in tokenized)


def test_bad_arguments(tokenized):
    with pytest.raises(ValueError, match="rank"):
        make_sampler(tokenized, max_duration=5, rank=2, world_size=2)
    with pytest.raises(ValueError, match="max_duration"):
        make_sampler(tokenized, max_duration=0.5)
    ds = SpeechTokenDataset(build_symbol_table(tokenized))
    with pytest.raises(TypeError, match="CutSet"):
        ds[0]


def _count_codes_reads(monkeypatch) -> list[str]:
    """Record the id of every cut whose codes are read (the dataset's and the providers')."""
    import valle.data.dataset as dataset_mod
    import valle.data.prompt as prompt_mod

    reads: list[str] = []
    original = prompt_mod.load_codes

    def counting(cut):
        reads.append(cut.id)
        return original(cut)

    monkeypatch.setattr(dataset_mod, "load_codes", counting)
    monkeypatch.setattr(prompt_mod, "load_codes", counting)
    return reads


def _experiment(tokenized, tmp_path, prompt_kind: str, stages=("ar", "nar"), data_prompt=None):
    from valle.testing.model import tiny_valle_config
    from valle.train.config import DataConfig, ExperimentConfig, TrainConfig

    cuts_path = tmp_path / "train.jsonl.gz"
    tokenized.to_file(cuts_path)
    tokens = tmp_path / "tokens.txt"
    build_symbol_table(tokenized).to_file(tokens)
    data = DataConfig(
        train_cuts=str(cuts_path),
        tokens=str(tokens),
        num_workers=0,
        prompt=data_prompt or "same_speaker",
        prompt_seconds=0.4,
    )
    return ExperimentConfig(
        model=tiny_valle_config(prompt=prompt_kind),
        train=TrainConfig(stages=stages, max_duration=30.0),
        data=data,
    )


def test_default_policy_reads_no_second_utterance(tokenized, tmp_path, monkeypatch):
    """VALL-E's default NAR prompt (same_utterance_prefix) never reads batch prompt_codes:
    the training data then reads one codes file per item, not two (the old loader gave every
    item a same-speaker prompt whatever the model)."""
    from valle.train.experiment import build_datamodule

    dm = build_datamodule(_experiment(tokenized, tmp_path, "same_utterance_prefix"))
    reads = _count_codes_reads(monkeypatch)
    batch = dm.dataset[tokenized]
    assert B.PROMPT_CODES not in batch
    assert sorted(reads) == sorted(c.id for c in tokenized)  # each cut once, no other


def test_other_utterance_policy_gets_a_same_speaker_prompt(tokenized, tmp_path, monkeypatch):
    from valle.train.experiment import build_datamodule

    dm = build_datamodule(_experiment(tokenized, tmp_path, "other_utterance"))
    reads = _count_codes_reads(monkeypatch)
    batch = dm.dataset[tokenized]
    assert batch[B.PROMPT_CODES].shape[0] == len(tokenized)
    assert len(reads) == 2 * len(tokenized)
    assert (batch[B.PROMPT_START] == -1).all()  # every speaker has other utterances
    # training only the AR: the NAR's prompt is not needed
    dm_ar = build_datamodule(_experiment(tokenized, tmp_path, "other_utterance", ("ar",)))
    assert B.PROMPT_CODES not in dm_ar.dataset[tokenized]
    with pytest.raises(ValueError, match="data.prompt=none"):
        build_datamodule(_experiment(tokenized, tmp_path, "other_utterance", data_prompt="none"))


def test_prompt_start_marks_own_prefix_prompts(tokenized):
    """The batch says which prompts are the target's own prefix, so a model can leave the
    copied frames out of its loss."""
    symbols = build_symbol_table(tokenized)
    lonely = CutSet.from_cuts(
        [c for c in tokenized if c.supervisions[0].speaker == "spk1"][:1]
        + [c for c in tokenized if c.supervisions[0].speaker == "spk2"]
    )
    batch = SpeechTokenDataset(symbols, prompt=SameSpeakerPrompt(lonely, duration=0.4))[lonely]
    spk = batch[B.SPEAKERS]
    assert batch[B.PROMPT_START].tolist() == [0 if s == "spk1" else -1 for s in spk]
    i = spk.index("spk1")
    p = int(batch[B.PROMPT_LENS][i])
    assert torch.equal(batch[B.PROMPT_CODES][i, :p], batch[B.AUDIO_CODES][i, :p])
    prefix = SpeechTokenDataset(symbols, prompt=PrefixPrompt(duration=0.2))[lonely]
    assert (prefix[B.PROMPT_START] == 0).all()


def test_featurizer_fields_are_padded_with_their_pad_values(tokenized):
    from valle.data.featurizers import CustomArray, DataRequest, LanguagePerToken

    symbols = build_symbol_table(tokenized)
    some = list(tokenized)[:3]
    with_field = CutSet.from_cuts(
        [c.with_custom("pitch_buckets", list(range(1, 3 + i))) for i, c in enumerate(some)]
    )
    request = DataRequest(
        featurizers=(LanguagePerToken(), CustomArray("pitch_buckets", name="pitch", pad_value=-1))
    )
    batch = SpeechTokenDataset(symbols, featurizers=request.featurizers)[with_field]
    assert torch.equal(batch["language_tokens_lens"], batch[B.TEXT_LENS])
    assert batch[B.LANGUAGE_TOKENS].shape == batch[B.TEXT_TOKENS].shape
    text_pad = torch.arange(batch[B.TEXT_TOKENS].shape[1]) >= batch[B.TEXT_LENS][:, None]
    assert (batch[B.LANGUAGE_TOKENS][~text_pad] == 0).all()  # English
    assert batch["pitch"].tolist() == [[1, 2, -1, -1], [1, 2, 3, -1], [1, 2, 3, 4]]
    assert batch["pitch_lens"].tolist() == [2, 3, 4]
    with pytest.raises(ValueError, match="pitch_buckets"):
        SpeechTokenDataset(symbols, featurizers=request.featurizers)[CutSet.from_cuts(some)]
    with pytest.raises(ValueError, match="clash"):
        SpeechTokenDataset(symbols, featurizers=[CustomArray("x", name=B.AUDIO_CODES)])
    with pytest.raises(ValueError, match="same batch key"):
        DataRequest(featurizers=(LanguagePerToken(), LanguagePerToken()))


def test_collate_pads_whatever_keys_items_carry():
    from valle.data.dataset import collate_items

    items = [
        {"text_tokens": torch.tensor([3, 4]), "mel": torch.ones(3, 2), "cut_ids": "a", "n": 1},
        {"text_tokens": torch.tensor([5]), "mel": torch.ones(1, 2), "cut_ids": "b", "n": 2},
    ]
    batch = collate_items(items)
    assert batch["text_tokens"].tolist() == [[3, 4], [5, B.PAD_ID]]
    assert batch["text_lens"].tolist() == [2, 1]
    assert batch["mel"].shape == (2, 3, 2) and batch["mel_lens"].tolist() == [3, 1]
    assert batch["mel"][1, 1:].eq(B.PAD_VALUES[B.MEL]).all()
    assert batch["cut_ids"] == ["a", "b"] and batch["n"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="same fields"):
        collate_items([items[0], {"text_tokens": torch.tensor([1])}])


def test_collate_still_reads_the_older_item_keys():
    from valle.data.dataset import collate_items

    items = [
        {"text": torch.tensor([3, 4]), "language": 0, "codes": torch.zeros(3, 2, dtype=torch.long),
         "cut_id": "a", "speaker": "s", "prompt": torch.ones(2, 2, dtype=torch.long)},
        {"text": torch.tensor([5]), "language": 1, "codes": torch.zeros(1, 2, dtype=torch.long),
         "cut_id": "b", "speaker": "t", "prompt": torch.ones(1, 2, dtype=torch.long)},
    ]  # fmt: skip
    batch = collate_items(items)
    assert batch[B.TEXT_LENS].tolist() == [2, 1] and batch[B.AUDIO_LENS].tolist() == [3, 1]
    assert batch[B.PROMPT_LENS].tolist() == [2, 1] and batch[B.CUT_IDS] == ["a", "b"]
    assert batch[B.SPEAKERS] == ["s", "t"] and batch[B.LANGUAGE].tolist() == [0, 1]


def test_synthesis_inputs_pad_select_and_cut_the_prompt_text():
    from valle.data.batch import SynthesisInputs

    texts = [torch.tensor([1, 2, 3, 4]), torch.tensor([5, 6])]
    prompts = [torch.ones(3, 2, dtype=torch.long), torch.full((1, 2), 2)]
    x = SynthesisInputs.from_rows(texts, prompts, language=[0, 1], prompt_text_lens=[1, 2])
    assert x.batch_size == 2 and x.text_tokens.tolist() == [[1, 2, 3, 4], [5, 6, 0, 0]]
    assert x.prompt_codes.shape == (2, 3, 2) and x.prompt_lens.tolist() == [3, 1]
    one = x.row(1)
    assert one.text_tokens.tolist() == [[5, 6]] and one.prompt_codes.tolist() == [[[2, 2]]]
    assert one.language.tolist() == [1] and one.prompt_text_lens.tolist() == [2]
    t = x.target_text_only()
    assert t.text_tokens.tolist() == [[2, 3, 4]] + [[0, 0, 0]] and t.text_lens.tolist() == [3, 0]
    assert t.prompt_text_lens.tolist() == [0, 0] and torch.equal(t.prompt_codes, x.prompt_codes)
    empty = x.without_prompt()
    assert empty.prompt_codes.shape == (2, 0, 2) and empty.prompt_lens.tolist() == [0, 0]
    with pytest.raises(ValueError, match="prompt_text_lens"):
        SynthesisInputs.from_rows(texts, prompts).target_text_only()
    with pytest.raises(ValueError, match="rows"):
        x.replace(language=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="prefix"):
        x.replace(prompt_text_lens=torch.tensor([5, 0]))


def test_mel_frames_featurizer(tokenized):
    from valle.codec.mel import MelConfig
    from valle.data.featurizers import DataRequest, MelFrames

    mel = MelFrames(MelConfig(sample_rate=16000, hop_length=160, n_mels=20))
    symbols = build_symbol_table(tokenized)
    some = CutSet.from_cuts(list(tokenized)[:3])
    batch = SpeechTokenDataset(symbols, featurizers=DataRequest((mel,)).featurizers)[some]
    assert batch[B.MEL].dtype == torch.float32 and batch[B.MEL].shape[-1] == 20
    for i, cut in enumerate(some):
        n = int(batch["mel_lens"][i])
        assert n == 1 + round(cut.duration * 16000) // 160
        assert torch.isfinite(batch[B.MEL][i, :n]).all()
        assert (batch[B.MEL][i, n:] == mel.pad_value).all()  # padded with silence
    assert mel.example(3, 7).shape == (7, 20)
