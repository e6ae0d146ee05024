"""masr: multi-label aware speech representation learning, as a recipe toolkit.

The library is organised by what each package holds:

- ``masr.data``      Kaldi-style data directories: reading, writing, validation.
- ``masr.features``  log-mel filterbanks and global CMVN statistics.
- ``masr.synth``     the eSpeak NG speech synthesizer (for the embedded corpus).
- ``masr.corpora``   one module per corpus: download (where possible) and preparation.
- ``masr.utils``     configuration loading, atomic file writes, logging.
- ``masr.bin``       command-line entry points called by the recipe stages.
"""

__version__ = "0.1.0"
