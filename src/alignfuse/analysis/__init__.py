"""Analysis stage: the study's tables from every run: summaries, paired statistics, the paper's claims."""
