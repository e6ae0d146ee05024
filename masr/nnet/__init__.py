"""Neural network building blocks."""

from masr.nnet.conformer import (
    ConformerEncoder,
    ConformerLayer,
    Conv2dSubsampling,
    RelPositionalEncoding,
    make_pad_mask,
    num_parameters,
)
