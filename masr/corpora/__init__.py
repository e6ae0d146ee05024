"""Corpus recipes: one module per corpus, each with its download (where one exists) and its
preparation into Kaldi-style data directories (see ``masr.data``)."""
