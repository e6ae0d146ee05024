"""Self-supervised speech encoders behind one interface (``masr.ssl.base.SSLModel``)."""
