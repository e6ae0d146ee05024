"""Fixed metadata encoders: per-stream labels (phi) and vectors (e) for MASR / LASR.

See ``masr.metadata.encoders`` for the interface and the registry the encoders are chosen from
by name, and one module per encoder: ``masr.metadata.lang2vec``, ``masr.metadata.geo``,
``masr.metadata.text``, ``masr.metadata.onehot``. Importing this package imports them all, so
that each registers itself and every kind can be built by name.
"""

from masr.metadata.encoders import (
    REGISTRY,
    MetadataEncoder,
    build_metadata_encoder,
    encoder_from_state,
    register,
)
from masr.metadata.geo import GeoEncoder, parse_lat_lon
from masr.metadata.lang2vec import DEFAULT_SUBSTITUTES, LANG2VEC_FEATURE_SETS, Lang2VecEncoder
from masr.metadata.onehot import OneHotEncoder
from masr.metadata.text import TextEncoder, normalize_text

__all__ = [
    "DEFAULT_SUBSTITUTES",
    "LANG2VEC_FEATURE_SETS",
    "REGISTRY",
    "GeoEncoder",
    "Lang2VecEncoder",
    "MetadataEncoder",
    "OneHotEncoder",
    "TextEncoder",
    "build_metadata_encoder",
    "encoder_from_state",
    "normalize_text",
    "parse_lat_lon",
    "register",
]
