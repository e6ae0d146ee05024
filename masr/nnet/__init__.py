"""Neural network building blocks."""

from masr.nnet.conformer import (
    ATTENTION_TYPES,
    ConformerEncoder,
    ConformerLayer,
    Conv2dSubsampling,
    RelPositionalEncoding,
    RoPESelfAttention,
    RotaryEmbedding,
    apply_rotary,
    make_pad_mask,
    num_parameters,
)
