"""Downstream tasks on pretrained encoders: language ID fine-tuning (``langid``), CTC ASR
(``asr``), frozen-embedding linear probes (``probe``), and inference (``masr.infer``)."""
