"""What a study costs before it runs: its training jobs planned from the config (``plan``), this
machine's speed on each head measured in a few seconds (``calibration``), and the two combined
into seed-epochs, FLOPs and wall time (``estimate``), as ``alignfuse cost`` prints them."""
