"""Modality contributions of one trained condition, and the study's table of them.

Per seed and per number of clusters k, the image and text features of the test pairs are
discretised with codebooks fitted on the train split, and two views of the head are decomposed:
its match prediction, and its fused representation clustered (the view of the PID literature).
Whether a caption matches an image is a property of the pair, so with the prediction as target
nearly everything should be synergy and the image/text shares are two noise terms: they are
reported as undefined there. The fused view is clustered on half of the test images and
decomposed on the other half, so no cluster is fitted on the rows it scores. Seeds whose training
diverged are left out and counted (``n_diverged``), as the analysis stage does.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from alignfuse.errors import AlignfuseError
from alignfuse.parquet import atomic_path, read_embeddings, read_frame, write_frame
from alignfuse.pid.contributions import decomposition_row, decomposition_tasks
from alignfuse.pid.discretize import fit_codebook
from alignfuse.pid.pool import solve_all

TERMS = ("R", "U_img", "U_txt", "S", "I")
VIEWS = ("prediction", "fused")
FIX = "rerun the workflow's stages that write it"
# the blog's controlled ablation (RoBERTa + ViT on VQAv2): image / text contribution, percent
BLOG_CI_CT = {
    "Img→Txt": (55.3, 44.7),
    "Txt→Img": (38.5, 61.5),
    "Concatenation": (45.6, 54.4),
    "Bidirectional": (54.7, 45.3),
}


def codebooks(features: Path, ids_column: str, train_ids, ks: list[int], dims: int, seed: int):
    """The codebooks of one modality for every k, fitted on its train-split rows; and every row
    by id. The features are read once for all k."""
    ids, x = read_embeddings(features)
    row = pd.Index(ids)
    train = x[row.get_indexer(pd.Index(train_ids).unique())]
    if (row.get_indexer(pd.Index(train_ids)) < 0).any():
        raise AlignfuseError(f"{features}: lacks train-split {ids_column}s; {FIX}")
    return {k: fit_codebook(train, k, min(dims, x.shape[1]), seed) for k in ks}, row, x


Files = Path | list[Path]  # one file, or a condition's files of every seed block


def as_files(paths: Files) -> list[Path]:
    return [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]


def read_blocks(paths: Files) -> pd.DataFrame:
    """One table from a condition's files, one per seed block as the train stage writes them."""
    frames = [read_frame(path, FIX) for path in as_files(paths)]
    # a block whose seeds all diverged has empty predictions and fused files
    return pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)


def usable_seeds(runs: Files, predictions: pd.DataFrame, fused: pd.DataFrame, paths) -> tuple:
    """The seeds of a condition's runs whose training did not diverge, and how many did.

    Each usable seed must have its predictions and fused view (the train stage writes them for
    every seed whose status is "ok"); diverged seeds' rows, if a file has any, are not read.
    """
    frame = read_blocks(runs)
    status = frame["status"] if "status" in frame else pd.Series("ok", index=frame.index)
    usable = sorted(frame.loc[status == "ok", "seed"].astype(int))
    for files, rows in zip(paths, (predictions, fused), strict=True):
        missing = sorted(set(usable) - set(rows["seed"].astype(int)))
        if missing:
            names = ", ".join(map(str, as_files(files)))
            runs_names = ", ".join(map(str, as_files(runs)))
            raise AlignfuseError(
                f"{names}: no rows for seed(s) {missing} of {runs_names}; {FIX} (the train stage)"
            )
    return usable, int((status != "ok").sum())


def condition_pid(
    image_features: Path,
    text_features: Path,
    captions: Path,
    test_pairs: Path,
    runs: Files,
    predictions: Files,
    fused: Files,
    ks: list[int],
    dims: int,
    repeats: int,
    seed: int = 0,
    workers: int = 1,
) -> pd.DataFrame:
    """Rows per (seed, view, k): R, U_img, U_txt, S, I in bits with their noise floors, and the
    image's (CI) and text's (CT) share of the unique information where it is defined.

    ``runs``, ``predictions`` and ``fused`` are the train stage's files of the condition, each a
    file or a list with one per seed block. Only the seeds whose run did not diverge are
    decomposed; every row carries the condition's ``n_diverged``. When every seed diverged, one
    row per (view, k) without a seed and with NaN terms keeps the condition in the table. Every
    decomposition's solves are gathered first and run together on ``workers`` processes.
    """
    table = read_frame(captions, FIX, columns=["image_id", "caption_id", "split"])
    train = table[table["split"] == "train"]
    pairs = read_frame(test_pairs, FIX, columns=["image_id", "caption_id", "label"])
    probs = read_blocks(predictions)
    reps = read_blocks(fused)
    usable, n_diverged = usable_seeds(runs, probs, reps, (predictions, fused))
    if not usable:
        return pd.DataFrame(
            [
                {"seed": pd.NA, "view": view, "k": k, "k_target": k, "n_diverged": n_diverged}
                | {c: math.nan for term in TERMS for c in (term, f"{term}_floor")}
                | {"CI": math.nan, "CT": math.nan}
                for k in ks
                for view in VIEWS
            ]
        ).astype({"seed": "Int64"})
    images = np.sort(pairs["image_id"].unique())
    fit_half = pairs["image_id"].isin(images[0::2]).to_numpy()  # cluster the fused view here
    image_books, image_row, v = codebooks(
        image_features, "image", train["image_id"], ks, dims, seed
    )
    text_books, text_row, t = codebooks(
        text_features, "caption", train["caption_id"], ks, dims, seed
    )
    v, t = v[image_row.get_indexer(pairs["image_id"])], t[text_row.get_indexer(pairs["caption_id"])]
    heads = {  # per seed: its match prediction and its fused representation, per test pair
        s: (
            (probs.loc[probs["seed"] == s, "prob"].to_numpy() > 0.5).astype(int),
            np.stack(reps.loc[reps["seed"] == s, "z"].to_numpy()).astype(np.float64),
        )
        for s in usable
    }
    plans, tasks = [], []  # per row: its labels, rows decomposed and its tasks' slice
    for k in ks:
        x1, x2 = image_books[k].assign(v), text_books[k].assign(t)
        for s, (prediction, z) in heads.items():
            # a head can map many pairs to one representation (all of them, if it collapsed)
            y_book = fit_codebook(z[fit_half], k, min(dims, z.shape[1]), seed, fewer=True)
            targets = {
                "prediction": (prediction, np.ones(len(pairs), dtype=bool), 2),
                "fused": (y_book.assign(z), ~fit_half, y_book.k),
            }
            for view, (y, rows_used, n_y) in targets.items():
                view_tasks = decomposition_tasks(
                    x1[rows_used], x2[rows_used], y[rows_used], k, k, n_y, repeats, seed
                )
                labels = {"seed": int(s), "view": view, "k": k, "k_target": n_y}
                span = slice(len(tasks), len(tasks) + len(view_tasks))
                plans.append((labels, int(rows_used.sum()), span))
                tasks.extend(view_tasks)
    solved = solve_all(tasks, workers)
    rows = []
    for labels, n_rows, span in plans:
        result = decomposition_row(solved[span], n_rows)
        if labels["view"] == "prediction":  # a property of the pair: shares are noise ratios
            result["CI"] = result["CT"] = math.nan
        rows.append({**labels, "n_diverged": n_diverged, **result})
    return pd.DataFrame(rows)


def pid_table(conditions: list[pd.DataFrame], confidence: float = 0.95) -> pd.DataFrame:
    """Per condition, view and k: each term's mean over the usable seeds with its t interval and
    noise floor, and the number of diverged seeds left out; a term is read as above noise only
    if its mean clears the mean floor."""
    frame = pd.concat(conditions, ignore_index=True)
    keys = ["dataset", "backbone", "alignment", "method", "head", "n_train", "view", "k"]
    rows = []
    for key, group in frame.groupby(keys, sort=True):
        row = dict(zip(keys, key, strict=True)) | {
            "n_seeds": int(group["seed"].notna().sum()),
            "n_diverged": int(group["n_diverged"].max()) if "n_diverged" in group else 0,
        }
        row["k_target"] = int(group["k_target"].min())  # below k: a seed's view had fewer values
        for term in (*TERMS, "CI", "CT"):
            values = group[term].to_numpy(float)
            values = values[~np.isnan(values)]
            mean = values.mean() if len(values) else math.nan
            half = (
                stats.t.ppf(0.5 + confidence / 2, len(values) - 1)
                * values.std(ddof=1)
                / math.sqrt(len(values))
                if len(values) > 1
                else math.nan
            )
            row |= {term: mean, f"{term}_low": mean - half, f"{term}_high": mean + half}
            if term in TERMS:
                floor = group[f"{term}_floor"].mean()
                row |= {f"{term}_floor": floor, f"{term}_above_noise": bool(mean > floor)}
        rows.append(row)
    return pd.DataFrame(rows)


def shown(row, term: str) -> str:
    """A term for people: mean [interval] in bits, or 'below noise' when it does not clear the
    shuffled-target floor."""
    mean, low, high = row[term], row[f"{term}_low"], row[f"{term}_high"]
    if math.isnan(mean):
        return "–"
    if not row[f"{term}_above_noise"]:
        return f"below noise ({mean:.3f})"
    if math.isnan(low):
        return f"{mean:.3f}"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def share(row) -> str:
    if math.isnan(row["CI"]):
        return "undefined"
    return f"{100 * row['CI']:.1f} / {100 * row['CT']:.1f}"


def pid_markdown(table: pd.DataFrame) -> str:
    """The PID table and the blog's numbers beside it, with why they are not comparable."""
    if table.empty:
        return "No PID conditions in this study (see `pid.conditions`).\n"
    shown_table = pd.DataFrame(
        {
            "condition": table["backbone"] + "@" + table["alignment"],
            "method": table["method"],
            "pairs": table["n_train"].astype(str),
            "view": table["view"],
            "k": table["k"].astype(str),
            "seeds": table["n_seeds"].astype(str),
            "diverged (left out)": table["n_diverged"].astype(str),
            **{term: [shown(r, term) for _, r in table.iterrows()] for term in TERMS},
            "CI / CT (%)": [share(r) for _, r in table.iterrows()],
        }
    )
    blog = pd.DataFrame(
        [(name, f"{ci} / {ct}") for name, (ci, ct) in BLOG_CI_CT.items()],
        columns=["fusion (blog, RoBERTa + ViT on VQAv2)", "CI / CT (%)"],
    )
    return (
        shown_table.to_markdown(index=False, disable_numparse=True)
        + "\n\nPartial information decomposition (BROJA, bits) of each head's view by the image "
        "and the text features, discretised by PCA and k-means fitted on the train split: mean "
        "over seeds [95% t interval], seeds whose training diverged left out (counted in "
        "'diverged (left out)'); 'below noise' where the mean does not clear the 95th "
        "percentile of the same term with the target permuted. CI = U_img / (U_img + U_txt), "
        "CT = 1 − CI. View 'prediction': the head's match prediction; matching is a property "
        "of the pair, so nearly all of it is synergy and CI/CT are undefined. View 'fused': the "
        "representation the head names as its fused one (the input of its classifier; for late "
        "fusion both towers' logits), on the 16 principal axes of the seed's train pairs, "
        "clustered (on half of the test images; decomposed on the other half), where the shares "
        "speak. Plug-in PID on clusters is biased upward: compare "
        "the k columns.\n\nThe blog's ablation, for reference:\n\n"
        + blog.to_markdown(index=False, disable_numparse=True)
        + "\n\nThose numbers are on VQA, where an answer often depends on one modality (unimodal "
        "signal exists); on balanced image–caption matching neither modality alone carries any "
        "signal by construction, so the shares are not comparable; what is comparable is the "
        "ordering across fusion directions of the fused view's image share.\n"
    )


def write_condition_pid(
    image_features: Path,
    text_features: Path,
    captions: Path,
    test_pairs: Path,
    runs: Files,
    predictions: Files,
    fused: Files,
    settings: dict,
    labels: dict,
    out: Path,
    workers: int = 1,
) -> None:
    """One condition's PID rows, led by its ``labels`` (dataset, backbone, ...), to ``out``."""
    frame = condition_pid(
        image_features,
        text_features,
        captions,
        test_pairs,
        runs,
        predictions,
        fused,
        settings["k"],
        settings["dims"],
        settings["repeats"],
        settings["seed"],
        workers,
    )
    frame = pd.concat([pd.DataFrame(labels, index=frame.index), frame], axis=1)
    frame["n_train"] = frame["n_train"].astype(int)
    write_frame(frame, out, {"settings": settings, **labels})


def write_pid_table(conditions: list[Path], out: Path) -> pd.DataFrame:
    """The study's PID table as Parquet at ``out`` and beside it as CSV and Markdown."""
    table = pid_table([read_frame(p, "rerun its pid job") for p in conditions])
    write_frame(table, out)
    for suffix, text in ((".csv", table.to_csv(index=False)), (".md", pid_markdown(table))):
        with atomic_path(Path(out).with_suffix(suffix)) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return table
