"""Training with PyTorch Lightning: the only package that knows Lightning (DESIGN.md, 2).

- :mod:`valle.train.config`: ``TrainConfig``, ``DataConfig``, ``ExperimentConfig`` and their
  composition from presets, YAML files and ``--set`` overrides.
- :mod:`valle.train.schedule`: warmup + decay learning-rate multipliers.
- :mod:`valle.train.module`: ``TrainingModule``, the LightningModule around ``model.loss``.
- :mod:`valle.train.datamodule`, :mod:`valle.train.resumable`: lhotse data per rank, resumable
  to the exact batch.
- :mod:`valle.train.checkpoint`: atomic checkpoints, inference checkpoints, loading, averaging.
- :mod:`valle.train.samples`: audio samples and mel plots in TensorBoard.
- :mod:`valle.train.experiment`, :mod:`valle.train.trainer`: assembling and running a run.

Nothing is imported here, so ``import valle.train`` stays cheap.
"""
