"""Fixed metadata encoders: per-stream labels (phi) and vectors (e) for MASR / LASR.

See ``masr.metadata.encoders`` for the encoders (``lang2vec``, ``geo``, ``text``, ``onehot``)
and the registry they are chosen from by name.
"""

from masr.metadata.encoders import (
    DEFAULT_SUBSTITUTES,
    LANG2VEC_FEATURE_SETS,
    REGISTRY,
    GeoEncoder,
    Lang2VecEncoder,
    MetadataEncoder,
    OneHotEncoder,
    TextEncoder,
    build_metadata_encoder,
    encoder_from_state,
    normalize_text,
    parse_lat_lon,
    register,
)

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
