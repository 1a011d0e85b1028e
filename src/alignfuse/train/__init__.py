"""Training stage: the seeds of one block of a fusion condition, in one process (``condition``)."""
