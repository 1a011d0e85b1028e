"""Training stage: every seed of one fusion condition trained in one process (see ``condition``)."""
