"""valle: a zero-shot TTS research toolkit for the VALL-E family."""

__version__ = "0.1.0"
