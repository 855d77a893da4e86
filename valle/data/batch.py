"""The batch contract between valle.data and the models.

Shape legend: B batch, S text tokens, T code frames, P prompt frames, Q codebooks.

Every training batch is a plain ``dict`` with these keys (made by
``valle.data.dataset.SpeechTokenDataset``; ``valle.testing`` makes dummy ones):

===================  ==================  ==========================================================
key                  type / shape        meaning
===================  ==================  ==========================================================
``text_tokens``      long (B, S)         phoneme ids from the symbol table, right-padded with
                                         ``PAD_ID`` (0); no BOS/EOS added here (models add theirs)
``text_lens``        long (B,)           valid length of each row of ``text_tokens``
``language``         long (B,)           language id per utterance (``valle.text.LANGUAGES``)
``audio_codes``      long (B, T, Q)      codec codes of the target utterance, right-padded with 0
``audio_lens``       long (B,)           valid frames per row of ``audio_codes``
``prompt_codes``     long (B, P, Q)      acoustic prompt (another utterance of the same speaker
                                         or a segment of the same one), right-padded with 0;
                                         present only when the dataset has a prompt provider
``prompt_lens``      long (B,)           valid frames per row of ``prompt_codes`` (with the above)
``durations``        long (B, S)         frames per text token where an alignment gives them;
                                         optional (used by RALL-E / VALL-E R)
``cut_ids``          list[str] (B)       lhotse cut ids
``speakers``         list[str] (B)       speaker ids
===================  ==================  ==========================================================

Padding values are never meaningful: consumers mask with the ``*_lens`` tensors.
"""

from __future__ import annotations

PAD_ID = 0

TEXT_TOKENS = "text_tokens"
TEXT_LENS = "text_lens"
LANGUAGE = "language"
AUDIO_CODES = "audio_codes"
AUDIO_LENS = "audio_lens"
PROMPT_CODES = "prompt_codes"
PROMPT_LENS = "prompt_lens"
DURATIONS = "durations"
CUT_IDS = "cut_ids"
SPEAKERS = "speakers"
