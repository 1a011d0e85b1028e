"""Many BROJA solves of one job spread over worker processes.

A condition's decompositions are hundreds of independent solves (every seed, view and k, each
with its permuted tables), so a job given several cores runs them side by side. Every solve is
deterministic, so the results do not depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
from tqdm import tqdm

from alignfuse.pid.broja import broja


def solve_all(tasks: list[tuple[np.ndarray, float]], workers: int = 1) -> list[dict]:
    """:func:`broja` of every (table, gap) task, in the tasks' order, on ``workers`` processes.

    The biggest tables are handed out first, so that no worker is left with one at the end.
    """
    bar = tqdm(total=len(tasks), desc="BROJA solves", file=sys.stderr, mininterval=5)
    with bar:
        if workers <= 1 or len(tasks) <= 1:
            solved = []
            for table, gap_tol in tasks:
                solved.append(broja(table, gap_tol))
                bar.update()
            return solved
        order = sorted(range(len(tasks)), key=lambda i: -tasks[i][0].size)
        solved = [None] * len(tasks)
        # spawn: the parent may hold threads (pyarrow's), which forking would copy mid-flight
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=context) as pool:
            futures = {pool.submit(broja, *tasks[i]): i for i in order}
            try:
                for future in as_completed(futures):
                    solved[futures[future]] = future.result()
                    bar.update()
            except BaseException:
                pool.shutdown(cancel_futures=True)  # one uncertified table fails the job
                raise
        return solved
