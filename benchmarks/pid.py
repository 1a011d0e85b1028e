"""PID benchmark: seconds per BROJA solve by table size, and for one condition's whole PID workload.

Part 1 times `alignfuse.pid.broja` on dense random tables with k clusters per source and 2 or 10
target values (median of a few repeats), certified to the estimate's gap (1e-6 bits) and to the
noise floor's (1e-4 bits). Part 2 times what one fusion condition costs, as the pid job does it:
per k, fit the image and text codebooks on a train half and assign the evaluation half; per seed,
decompose two views, a binary prediction and a fused representation clustered into k values,
each with the shuffled-target null, all solves on ``--workers`` processes (``threads.pid``).

    python benchmarks/pid.py                               # ~1 min on 2 shared cores
    python benchmarks/pid.py --skip-tables --condition-k 10,20,30 --workers 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from alignfuse.pid import broja, fit_codebook
from alignfuse.pid.broja import GAP_TOL
from alignfuse.pid.contributions import FLOOR_GAP_TOL, decomposition_tasks
from alignfuse.pid.pool import solve_all


def ints(text: str) -> list[int]:
    return [int(value) for value in text.split(",") if value]


def time_tables(
    ks: list[int], targets: list[int], repeats: int, seed: int, gap_tol: float
) -> list[dict]:
    """Median, min and max seconds of broja on ``repeats`` random tables [k, k, targets]."""
    rng = np.random.default_rng(seed)
    rows = []
    for n_y in targets:
        for k in ks:
            seconds, gaps, solvers = [], [], set()
            for _ in range(repeats):
                p = rng.random((k, k, n_y)) ** 3
                p /= p.sum()
                start = time.perf_counter()
                result = broja(p, gap_tol)
                seconds.append(time.perf_counter() - start)
                gaps.append(result["gap"])
                solvers.add(result["solver"])
            rows.append(
                {
                    "k": k,
                    "targets": n_y,
                    "gap_tol": gap_tol,
                    "median_s": statistics.median(seconds),
                    "min_s": min(seconds),
                    "max_s": max(seconds),
                    "solver": "/".join(sorted(solvers)),
                    "max_gap": max(gaps),
                }
            )
    return rows


def synthetic_view(n: int, dim: int, noise: float, seed: int):
    """Image and text features (``dim``-d) and a binary label mixing all four PID terms.

    Latent bits a, b, c: the image shows a and b, the text shows a and c, and the label is the
    majority of a, b, c (a is shared, b and c are each one view's, and majority is partly
    synergistic). ``noise`` is the standard deviation around the embedded bits.
    """
    rng = np.random.default_rng(seed)
    a, b, c = rng.integers(0, 2, size=(3, n))
    directions = np.linalg.qr(rng.normal(size=(dim, 4)))[0].T
    image = 4.0 * (np.stack([a, b], axis=1) - 0.5) @ directions[:2]
    text = 4.0 * (np.stack([a, c], axis=1) - 0.5) @ directions[2:]
    image += noise * rng.normal(size=(n, dim))
    text += noise * rng.normal(size=(n, dim))
    return image, text, (a + b + c >= 2).astype(np.int64)


def time_condition(args) -> tuple[float, float, int]:
    """Seconds for one condition's pid job: codebooks, then every decomposition's solves on
    ``args.workers`` processes; and the number of solves.

    As in the job, the image and text codebooks are fitted once per k and every seed's head has
    two views: its binary prediction (the label with a seed's 5% of errors) and its fused
    representation (mixing both modalities, as a head's fused layer does) clustered into k
    values on the train half.
    """
    start = time.perf_counter()
    image, text, label = synthetic_view(2 * args.rows, args.dim, 1.0, 0)
    train, held_out = slice(0, args.rows), slice(args.rows, None)
    mixed = np.concatenate([image, text], axis=1) * (1 + label[:, None])
    heads = []  # per seed: its prediction on the held-out half and its fused representation
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        prediction = label[held_out] ^ (rng.random(args.rows) < 0.05)
        heads.append((prediction, mixed + rng.normal(size=mixed.shape)))
    tasks = []
    for k in args.condition_k:
        image_codes = fit_codebook(image[train], k, args.dims, 0).assign(image[held_out])
        text_codes = fit_codebook(text[train], k, args.dims, 0).assign(text[held_out])
        for seed, (prediction, fused) in enumerate(heads):
            book = fit_codebook(fused[train], k, args.dims, seed, fewer=True)
            for y, n_y in ((prediction, 2), (book.assign(fused[held_out]), book.k)):
                tasks += decomposition_tasks(
                    image_codes, text_codes, y, k, k, n_y, args.null_repeats, seed
                )
    codebooks = time.perf_counter() - start
    solve_all(tasks, args.workers)
    return codebooks, time.perf_counter() - start - codebooks, len(tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=ints, default=[10, 20, 30], help="clusters per source")
    parser.add_argument("--targets", type=ints, default=[2, 10], help="target values")
    parser.add_argument("--repeats", type=int, default=3, help="random tables per size")
    parser.add_argument("--seeds", type=int, default=3, help="seeds in the condition workload")
    parser.add_argument("--condition-k", type=ints, default=[10, 20], help="pid.k's default")
    parser.add_argument("--null-repeats", type=int, default=10, help="pid.repeats's default")
    parser.add_argument("--rows", type=int, default=2000, help="train rows = evaluation rows")
    parser.add_argument("--dim", type=int, default=64, help="feature width")
    parser.add_argument("--dims", type=int, default=8, help="PCA components before k-means")
    parser.add_argument("--workers", type=int, default=1, help="processes for the solves")
    parser.add_argument("--skip-tables", action="store_true", help="only the condition")
    parser.add_argument("--skip-condition", action="store_true", help="only the tables")
    args = parser.parse_args()

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} at start\n")
    if not args.skip_tables:
        print(
            "| k | targets | cells | gap tol (bits) | median s | min s | max s | solver | max gap |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for gap_tol in (GAP_TOL, FLOOR_GAP_TOL):
            for row in time_tables(args.k, args.targets, args.repeats, 0, gap_tol):
                print(
                    f"| {row['k']} | {row['targets']} | {row['k'] ** 2 * row['targets']} "
                    f"| {gap_tol:.0e} | {row['median_s']:.3f} | {row['min_s']:.3f} "
                    f"| {row['max_s']:.3f} | {row['solver']} | {row['max_gap']:.1e} |"
                )
    if args.skip_condition:
        return
    codebooks, solves, n_solves = time_condition(args)
    print(
        f"\nwhole condition: {args.seeds} seeds x 2 views x k in {args.condition_k}, "
        f"{args.rows} train + {args.rows} evaluation rows, {args.dim}-d -> PCA {args.dims}, "
        f"null with {args.null_repeats} permutations ({n_solves} BROJA solves on "
        f"{args.workers} processes): **{codebooks + solves:.1f} s** "
        f"(codebooks {codebooks:.1f} s, solves {solves:.1f} s)"
    )


if __name__ == "__main__":
    main()
