"""Speech synthesis used to build the embedded corpus."""
