"""Assemble a run from an experiment's data section: vocabulary facts, data module, samples.

This is what ``valle-train`` calls between parsing its arguments and ``valle.train.trainer.train``;
it reads the tokenize stage's outputs (``tokens.txt``, ``codec.json``, tokenized cut manifests).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from valle.train.config import DataConfig, ExperimentConfig
from valle.train.datamodule import SpeechDataModule
from valle.train.samples import SampleProvider

logger = logging.getLogger(__name__)


def codec_json(codec_dir: str | Path) -> Path:
    """``codec.json`` inside ``codec_dir`` (or ``codec_dir`` itself when it is the file)."""
    p = Path(codec_dir)
    return p if p.suffix == ".json" else p / "codec.json"


def vocab_facts(data: DataConfig) -> dict[str, int]:
    """``text_vocab_size``, ``codebook_size``, ``num_codebooks`` from tokens.txt and codec.json."""
    from valle.data.codec_info import CodecInfo
    from valle.text.symbol_table import SymbolTable

    if not data.tokens:
        raise ValueError("no symbol table: pass --tokens data/tokens.txt (written by stage 3)")
    if not data.codec_dir:
        raise ValueError("no codec facts: pass --codec-dir with the codec.json of stage 2")
    if not Path(data.tokens).is_file():
        raise FileNotFoundError(f"{data.tokens} not found; run the text-token stage (stage 3)")
    info = CodecInfo.from_file(codec_json(data.codec_dir))
    return {
        "text_vocab_size": len(SymbolTable.from_file(data.tokens)),
        "codebook_size": int(info.codebook_size),
        "num_codebooks": int(info.num_codebooks),
    }


def checkpoint_extras(data: DataConfig) -> dict[str, Any]:
    """Entries stored in every checkpoint so inference needs only the checkpoint.

    ``"symbols"``: the symbol table in id order; ``"codec"``: the ``codec.json`` facts
    (``valle.data.codec_info.CodecInfo`` fields, including the codec's path).
    """
    from dataclasses import asdict

    from valle.data.codec_info import CodecInfo
    from valle.text.symbol_table import SymbolTable

    extras: dict[str, Any] = {}
    if data.tokens and Path(data.tokens).is_file():
        extras["symbols"] = list(SymbolTable.from_file(data.tokens).symbols)
    if data.codec_dir and codec_json(data.codec_dir).is_file():
        info = CodecInfo.from_file(codec_json(data.codec_dir))
        extras["codec"] = asdict(info)
        embedded = _embedded_codec(info)
        if embedded is not None:
            extras["codec_embedded"] = embedded
    return extras


def _embedded_codec(info: Any) -> dict[str, Any] | None:
    """A small codec's own tensors (``"codec_embedded"``), so the checkpoint synthesizes in
    any directory; None for codecs kept by path (EnCodec) or when the codec cannot be loaded."""
    from valle.codec.registry import embed_codec, is_embeddable

    try:  # an unknown or missing codec only means the checkpoints record its path alone
        if not is_embeddable(info.name) or info.path is None:
            return None
        codec = info.load_codec()
    except Exception as err:  # noqa: BLE001 - the checkpoint then records the path only
        logger.warning(
            "codec %s not embedded in checkpoints (%s); they record its path", info.path, err
        )
        return None
    return embed_codec(info.name, codec)


def _prompt_provider(data: DataConfig, cuts: Any, seed: int) -> Any:
    from valle.data.prompt import PrefixPrompt, SameSpeakerPrompt

    if data.prompt == "none":
        return None
    if data.prompt == "prefix":
        return PrefixPrompt(duration=data.prompt_seconds, seed=seed)
    return SameSpeakerPrompt(cuts, duration=data.prompt_seconds, seed=seed)


def build_datamodule(cfg: ExperimentConfig) -> SpeechDataModule:
    """Data module over the experiment's tokenized train (and dev) cuts."""
    from valle.data.dataset import SpeechTokenDataset, make_sampler
    from valle.data.manifests import load_cuts
    from valle.registry import data_request
    from valle.text.symbol_table import SymbolTable

    data, train = cfg.data, cfg.train
    if not data.train_cuts:
        raise ValueError(
            "no training cuts: pass --train-cuts data/tokenized/<corpus>_cuts_train..."
        )
    symbols = SymbolTable.from_file(data.tokens)
    train_cuts = load_cuts(data.train_cuts, "training cuts")
    if len(train_cuts) == 0:
        raise ValueError(f"{data.train_cuts} holds no cuts; check the split stage (stage 4)")
    longest = max(c.duration for c in train_cuts)
    if longest > train.max_duration:
        raise ValueError(
            f"the longest training cut lasts {longest:.1f} s > train.max_duration "
            f"{train.max_duration} s; raise it (--set train.max_duration=...) or filter the cuts"
        )
    dev_cuts = load_cuts(data.dev_cuts, "dev cuts") if data.dev_cuts else None
    if dev_cuts is not None and len(dev_cuts) == 0:
        logger.warning("%s is empty: no validation", data.dev_cuts)
        dev_cuts = None
    # the model says what it reads: a second utterance per item only if its NAR prompt policy
    # uses one (data.prompt then says where it comes from), plus its featurizers' fields
    request = data_request(cfg.model, train.stages)
    if request.other_utterance_prompt and data.prompt == "none":
        raise ValueError(
            "the model's NAR prompt policy reads another utterance of the speaker but "
            "data.prompt=none; set data.prompt=same_speaker (or prefix)"
        )

    def dataset_for(cuts: Any) -> SpeechTokenDataset:
        provider = None
        if request.other_utterance_prompt:
            provider = _prompt_provider(data, cuts, train.seed)
        return SpeechTokenDataset(symbols, prompt=provider, featurizers=request.featurizers)

    dataset = dataset_for(train_cuts)
    dev_dataset = dataset_for(dev_cuts) if dev_cuts is not None else None
    return SpeechDataModule(
        train_cuts,
        dataset,
        dev_cuts=dev_cuts,
        dev_dataset=dev_dataset,
        max_duration=train.max_duration,
        num_buckets=train.num_buckets,
        shuffle=data.shuffle,
        seed=train.seed,
        num_workers=data.num_workers,
        sampler_factory=make_sampler,
    )


def build_sample_provider(
    cfg: ExperimentConfig, datamodule: SpeechDataModule
) -> SampleProvider | None:
    """A continuation sample request (the first ``data.prompt_seconds`` of a dev utterance as
    the prompt, its whole transcript as the text) from the first dev cuts, decoded with the
    codec of ``codec.json``.

    Returns ``None`` (samples are skipped) without dev cuts, without a codec, or when the codec
    cannot be loaded here (e.g. pretrained weights that are not available offline).
    """
    from lhotse import CutSet

    from valle.data.codec_info import CodecInfo

    if cfg.train.sample_every_n_steps == 0:
        return None
    if datamodule.dev_cuts is None or not cfg.data.codec_dir:
        logger.info("no dev cuts or codec configured: no audio samples during training")
        return None
    try:
        codec = CodecInfo.from_file(codec_json(cfg.data.codec_dir)).load_codec()
    except Exception as err:  # noqa: BLE001 - any failure only disables the samples
        logger.warning("cannot load the codec for training samples (%s); samples are off", err)
        return None
    cuts = CutSet.from_cuts(list(datamodule.dev_cuts)[:4])
    batch = datamodule.dev_dataset[cuts]
    # a whole utterance as the prompt made the AR stop at once (0.01 s samples): continue one
    return SampleProvider.continuation(
        batch, codec, prompt_seconds=cfg.data.prompt_seconds, seed=cfg.train.seed
    )
