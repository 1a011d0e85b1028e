"""Early stopping per seed: each seed of an ensemble keeps its own patience and best epoch."""

from __future__ import annotations

import math


class EarlyStopping:
    """Per-seed patience on dev accuracy (ties broken by lower dev loss), counted in evaluations.

    A seed that has run out of patience is frozen: later evaluations do not change its record,
    so its result does not depend on how long the other seeds keep training. No seed stops before
    ``min_epochs``: attention heads sit at chance for a while before they find the task, and
    patience alone would stop them on that plateau. A seed whose training loss stops being finite
    has diverged: it stops at once, and its run is marked so that tables leave it out visibly
    instead of reporting a broken head as a result near chance.
    """

    def __init__(self, n_seeds: int, patience: int, min_epochs: int = 0):
        self.patience = patience
        self.min_epochs = min_epochs
        self.best_accuracy = [-math.inf] * n_seeds
        self.best_loss = [math.inf] * n_seeds
        self.best_epoch = [0] * n_seeds
        self.stale = [0] * n_seeds
        self.stopped_at: list[int | None] = [None] * n_seeds
        self.diverged_at: list[int | None] = [None] * n_seeds

    def active(self, s: int) -> bool:
        return self.stopped_at[s] is None

    def update(self, epoch: int, seeds, accuracy, loss) -> list[bool]:
        """Record one evaluation of the seeds at positions ``seeds``; return which improved."""
        improved = []
        for s, acc, lo in zip(seeds, accuracy, loss, strict=True):
            better = self.active(s) and (
                acc > self.best_accuracy[s]
                or (acc == self.best_accuracy[s] and lo < self.best_loss[s])
            )
            if better:
                self.best_accuracy[s], self.best_loss[s], self.best_epoch[s] = acc, lo, epoch
                self.stale[s] = 0
            elif self.active(s):
                self.stale[s] += 1
                if self.stale[s] >= self.patience and epoch >= self.min_epochs:
                    self.stopped_at[s] = epoch
            improved.append(better)
        return improved

    def diverge(self, s: int, epoch: int) -> None:
        """Stop seed ``s``, whose loss was not finite in ``epoch``."""
        if self.active(s):
            self.stopped_at[s] = self.diverged_at[s] = epoch

    @property
    def done(self) -> bool:
        return not any(self.active(s) for s in range(len(self.stopped_at)))
