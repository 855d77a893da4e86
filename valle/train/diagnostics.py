"""Learning diagnostics in TensorBoard at every validation (issue #9: does the model read?).

Shape legend: B batch, S text tokens, T frames, Q codebooks, Y layers, N audio steps.

:class:`DiagnosticsLogger` keeps CPU copies of the first ``num_batches`` dev batches of each
validation and, at its end, runs :class:`valle.eval.diagnose.DiagnosticsAccumulator` on them
(rank 0, eval mode, no gradients): the AR text-conditioning gap (each row's text swapped for
the row of the closest text length in the same batch), AR accuracy beside the persistence
baseline, teacher-forced EOS error, the audio->text attention scores per layer, and each NAR
codebook's accuracy beside its previous-frame baseline, under ``diag/...``; plus one image
of the attention maps (``diag/attention``). Only the model parts being trained are measured.
A mel AR (MELLE) is measured on the batch's ``mel`` frames instead: regression-loss text gap
and persistence baseline under ``diag/mel/...``, stop-flag error under ``diag/stop/flag_...``
(:class:`valle.eval.diagnose.MelARDiagnostics`). A failure is logged and skipped: it never
ends a run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor

from valle.data import batch as B_
from valle.train.samples import tensorboard_writer

logger = logging.getLogger(__name__)

__all__ = ["DiagnosticsLogger"]


def _cpu_copy(batch: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.detach().cpu() if isinstance(v, Tensor) else v for k, v in batch.items()}


class DiagnosticsLogger(L.Callback):
    """Log :mod:`valle.eval.diagnose` figures on a few dev batches at each validation.

    Args:
        num_batches: dev batches measured per validation (the first ones; cheap).
        images: attention-map images logged per validation (one per utterance).
        seed: seeds the NAR prompt draws, so validations are comparable.
    """

    def __init__(self, num_batches: int = 2, images: int = 1, seed: int = 0) -> None:
        super().__init__()
        self.num_batches = num_batches
        self.images = images
        self.seed = seed
        self._batches: list[dict[str, Any]] = []

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._batches = []

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        if len(self._batches) < self.num_batches and isinstance(batch, Mapping):
            self._batches.append(_cpu_copy(batch))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        batches, self._batches = self._batches, []
        if trainer.sanity_checking or not trainer.is_global_zero or not batches:
            return
        tb = tensorboard_writer(trainer)
        if tb is None:
            return
        try:
            self.log_diagnostics(tb, pl_module, batches, trainer.global_step)
        except Exception:  # a failing diagnostic must not end a long run
            logger.exception("step %d: the learning diagnostics failed", trainer.global_step)

    def log_diagnostics(
        self, tb: Any, pl_module: L.LightningModule, batches: list[dict[str, Any]], step: int
    ) -> dict[str, Any] | None:
        """Measure ``batches`` and write the figures to the SummaryWriter ``tb``; returns the
        summary (None when the model has no AR or NAR to measure)."""
        from valle.eval.attention_maps import attention_figure
        from valle.eval.diagnose import (
            DiagnosticsAccumulator,
            batch_texts,
            flat_scalars,
            pair_by_text_length,
        )

        model = getattr(pl_module, "model", pl_module)
        train_cfg = getattr(pl_module, "train_cfg", None)
        stages = tuple(getattr(train_cfg, "stages", ("ar", "nar")))
        if not any(getattr(model, s, None) is not None for s in stages):
            return None
        acc = DiagnosticsAccumulator(model, stages=stages, seed=self.seed, keep_maps=self.images)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for batch in batches:
                    texts = batch_texts(batch)
                    other = None
                    if len(texts) >= 2:
                        langs = batch[B_.LANGUAGE].tolist() if B_.LANGUAGE in batch else None
                        other = [texts[j] for j in pair_by_text_length(texts, langs)]
                    acc.add(batch, other)
        finally:
            model.train(was_training)
        summary = acc.summary()
        for name, value in flat_scalars(summary).items():
            tb.add_scalar(name, value, step)
        for uid, maps, scores in acc.maps:
            tb.add_figure(
                "diag/attention", attention_figure(maps, f"step {step}: {uid}", scores), step
            )
        ar = summary.get("ar") or {}
        if "text_gap" in ar:
            logger.info(
                "step %d: AR dev acc %.3f (persistence %.3f), text gap %+.3f nats",
                step, ar["acc"], ar["persistence_acc"], ar["text_gap"],
            )  # fmt: skip
        mel = summary.get("mel") or {}
        if "text_gap" in mel:
            logger.info(
                "step %d: mel dev loss %.3f (persistence %.3f), text gap %+.3f (L1+L2 per frame)",
                step, mel["loss"], mel["persistence_loss"], mel["text_gap"],
            )  # fmt: skip
        return summary
