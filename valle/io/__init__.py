"""File input/output shared by every part of the toolkit.

- :mod:`valle.io.atomic`: the one atomic file writer (text, bytes, ``torch.save``, or a temp path
  for writers that open files by name), respecting the umask and fsyncing.
- :mod:`valle.io.checkpoint`: the one checkpoint reader: weights-only unpickling with a short
  allow-list, clear errors for untrusted, truncated or misplaced files; inference checkpoints.
"""
