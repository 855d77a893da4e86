"""A built-in phoneme aligner: durations in codec frames for every phoneme token, offline.

VALL-E R (phoneme-aligned AR) and RALL-E (duration-guided masking) need the frames each
phoneme lasts for every training utterance; their papers use the Montreal Forced Aligner. This
package needs no external tool and works on any tokenized corpus:

- :mod:`~valle.align.features`: log-mel at the codec's frame rate (durations come out in codec
  frames);
- :mod:`~valle.align.model`: a small convolutional acoustic model with a CTC blank class;
- :mod:`~valle.align.training`: trained on the corpus's own train cuts with CTC plus the
  blank-free forward-sum loss of :mod:`~valle.align.forward_sum`;
- :mod:`~valle.align.scoring`: what a frame scores for each token (CTC evidence, the non-blank
  posterior, and explicit silence / word-separator handling);
- :mod:`~valle.align.viterbi`: monotonic Viterbi without blanks (every token >= 1 frame, every
  frame assigned);
- :mod:`~valle.align.durations`: the recipe stage (batched, resumable) writing
  ``cut.custom["durations"]``, read by ``valle.data.featurizers.Durations``;
- :mod:`~valle.align.evaluate`: word-boundary errors against the mini corpus's engine timings,
  and a plot over the mel spectrogram.

CLI: ``python -m valle.bin.align {train,durations,evaluate}``.
"""

from valle.align.durations import DURATIONS_FIELD, Aligner, align_cuts, cut_durations
from valle.align.features import AlignFeatures, FeatureConfig
from valle.align.model import AcousticModel, ModelConfig, load_aligner, save_aligner
from valle.align.scoring import Separators, alignment_scores
from valle.align.training import TrainConfig, train_aligner
from valle.align.viterbi import TooFewFramesError, viterbi_durations

__all__ = [
    "DURATIONS_FIELD",
    "AcousticModel",
    "AlignFeatures",
    "Aligner",
    "FeatureConfig",
    "ModelConfig",
    "Separators",
    "TooFewFramesError",
    "TrainConfig",
    "align_cuts",
    "alignment_scores",
    "cut_durations",
    "load_aligner",
    "save_aligner",
    "train_aligner",
    "viterbi_durations",
]
