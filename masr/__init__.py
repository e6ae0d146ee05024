"""masr: multi-label aware speech representation learning, as a recipe toolkit.

The library is organised by what each package holds, lower layers first: a package imports only
from those above it in this list (or on its line); ``tests/test_layers.py`` checks it.

- ``masr.utils``, ``masr.audio``  config loading, atomic writes, worker processes, progress,
                      ``env.log``; reading audio (files and ``wav.scp`` pipes).
- ``masr.data``       Kaldi-style data directories: reading, writing, validation, subsets, datasets,
                      batch samplers, shards, statistics.
- ``masr.features``   log-mel filterbanks (also batched, on a GPU), global CMVN statistics, the
                      features stage, audio shards and the dataset computing filterbanks from them.
- ``masr.synth``      the eSpeak NG speech synthesizer (for the embedded corpus).
- ``masr.corpora``    one module per corpus: download (where possible) and preparation.
- ``masr.nnet``       the padding-safe conformer.
- ``masr.ssl``        self-supervised models: BEST-RQ, w2v-BERT, masking, quantizer; the
                      self-contained encoder file (``encoder.pt``).
- ``masr.metadata``   fixed metadata encoders (lang2vec/URIEL, geography, text, one-hot).
- ``masr.losses``, ``masr.model``  batch-hard triplets; MASR: an SSL model plus metadata streams.
- ``masr.metrics``    accuracy, macro-F1, EER, WER/CER.
- ``masr.train``      the training loop, checkpoints, run-folder lock, DDP, schedules, pretraining.
- ``masr.downstream`` pretrained encoders, fine-tuning (LangID, CTC ASR), linear probes.
- ``masr.report``     RESULTS.md tables, figures, significance, the README's generated blocks.
- ``masr.infer``, ``masr.hub``, ``masr.hub_card``  inference on audio files; packing and loading shareable models.

Entry points are the modules themselves: ``python -m masr.<package>.<module> ...`` (each has a
``main`` returning an exit status; ``pyproject.toml`` installs them as ``masr-*`` commands).
"""

__version__ = "0.1.0"
