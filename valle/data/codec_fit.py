"""Fitting the offline MelRVQ codec on a corpus's train split (mini recipe, stage 2).

Only train-split audio is used, so the dev/test (unseen-speaker) audio never shapes the codebooks
the model is evaluated through (zero-shot protocol, VALL-E sec. 5.1).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from valle.data.manifests import load_cuts
from valle.data.splits import split_cuts

logger = logging.getLogger(__name__)

__all__ = ["load_mel_rvq_config", "fit_mel_rvq_on_train"]


def load_mel_rvq_config(path: str | Path | None) -> Any:
    """A ``MelRVQConfig`` from a YAML of its fields (``None``: the defaults)."""
    from valle.codec.mel_rvq import MelRVQConfig

    if path is None:
        return MelRVQConfig()
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"codec config {path} not found")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of MelRVQConfig fields, got {type(data)}")
    return MelRVQConfig.from_dict(data)


def fit_mel_rvq_on_train(
    cuts_path: str | Path,
    corpus: str,
    output_dir: str | Path,
    config_path: str | Path | None = None,
) -> Any:
    """Fit ``MelRVQCodec`` on the train split of ``cuts_path`` and save it to ``output_dir``."""
    from valle.codec.mel_rvq import MelRVQCodec

    cuts = load_cuts(cuts_path, "all cuts")
    train = split_cuts(cuts, corpus)["train"]
    if len(train) == 0:
        raise ValueError(f"the {corpus} train split of {cuts_path} is empty; nothing to fit on")
    config = load_mel_rvq_config(config_path)
    logger.info(
        "fitting MelRVQ on %d train cuts (%.1f min)",
        len(train),
        sum(c.duration for c in train) / 60,
    )
    codec = MelRVQCodec.fit(train, config)
    codec.save(output_dir)
    return codec
