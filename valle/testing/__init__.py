"""Tiny factories for tests and examples: configs, batches, codecs, speech made on the spot."""
