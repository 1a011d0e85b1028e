"""Data stage: archives (downloaded or the user's own), captions and splits, and the matching pairs."""
