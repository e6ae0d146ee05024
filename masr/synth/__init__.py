"""Speech synthesis used to build the embedded corpus."""

from masr.synth.espeak import Espeak, SynthError

__all__ = ["Espeak", "SynthError"]
