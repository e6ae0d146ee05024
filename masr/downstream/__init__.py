"""Downstream tasks on pretrained encoders.

Stages (each a ``python -m`` entry point): ``langid`` (language ID fine-tuning), ``asr`` (CTC
ASR fine-tuning), ``probe`` (frozen-embedding linear probes). What they share: ``pretrained``
(encoders of pretraining runs), ``finetune`` (the fine-tuning model, trainer and checkpoint
selection), ``results_schema`` (the ``results.json`` every stage writes and the report reads).
ASR's parts: ``tokenizer`` (SentencePiece), ``ctc`` (dataset and loss), ``ctc_decoding``
(greedy and beam search), ``asr_scoring`` (WER / CER and their reports). Inference on audio
files is ``masr.infer``.
"""
