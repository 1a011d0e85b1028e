"""One training job: the seeds of one fusion condition (a seed block), trained together, then
tested.

The loop (:func:`fit`) reads top to bottom: per epoch, each seed's shuffled batches through the
seed ensemble (:mod:`alignfuse.train.ensemble`) and one AdamW step over the stack; every
``eval_every`` epochs a dev evaluation drives each seed's early stopping
(:mod:`alignfuse.train.stopping`), and seeds that stop leave the stack. :func:`train_condition`
wraps it: load the pairs and features, build the ensemble, fit, test every seed's best checkpoint,
and lay the results out as the runs and curves tables.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from alignfuse.devices import describe, pick_device
from alignfuse.errors import AlignfuseError
from alignfuse.train.ensemble import SeedEnsemble
from alignfuse.train.metrics import metrics
from alignfuse.train.optim import SeedAdamW, adamw, keep_optimizer_seeds
from alignfuse.train.represent import modality_ablation, representations
from alignfuse.train.schedule import learning_rate, total_steps
from alignfuse.train.splits import Split, load_splits
from alignfuse.train.stopping import EarlyStopping


class Trained(NamedTuple):
    """A condition's tables: runs (a row per seed), curves (per seed and evaluation),
    predictions (per seed and test pair: the best checkpoint's probability of a match) and fused
    (per seed and test pair: the leading components of its fused representation). Predictions
    and fused hold only the seeds whose status is "ok"."""

    runs: pd.DataFrame
    curves: pd.DataFrame
    predictions: pd.DataFrame
    fused: pd.DataFrame


@dataclass
class Fit:
    """What the loop leaves: each seed's stopping record and best state, the curves, the timing."""

    stopping: EarlyStopping
    best: dict[str, torch.Tensor]
    last_epoch: int = 0
    curves: list[dict] = field(default_factory=list)
    eval_s: float = 0.0


def fit(
    model: SeedEnsemble,
    optimizer: SeedAdamW,
    train: Split,
    dev: Split,
    cfg: dict,
    seeds: list[int],
    desc: str,
) -> Fit:
    """Train the ensemble's seeds on ``train`` with early stopping on ``dev``.

    The loss is the sum over seeds of each seed's mean cross-entropy, so the gradient of seed s's
    parameter slice is exactly that of seed s's own loss, and one AdamW step over the stack
    (``optimizer``, from :func:`adamw`) is S independent AdamWs, each exactly as if its seed
    trained alone. Each seed draws its data order from its own generator. The rate of each step
    comes from the schedule (:mod:`alignfuse.train.schedule`), the same for every seed.
    """
    n, device = train.subsets.shape[1], train.label.device
    batch_size = min(cfg["batch_size"], n)
    orders = [torch.Generator().manual_seed(seed) for seed in seeds]
    max_epochs, eval_every = cfg["max_epochs"], cfg["eval_every"]
    result = Fit(
        EarlyStopping(len(seeds), cfg["patience"], cfg.get("min_epochs", 0)), model.snapshot()
    )
    active = torch.arange(len(seeds))  # positions in `seeds` of the seeds still training
    train_loss, seen = torch.zeros(len(seeds), device=device), 0
    score_grad, steps = torch.zeros(len(seeds), device=device), 0
    step, schedule_steps = 0, total_steps(cfg, n)

    bar = tqdm(range(1, max_epochs + 1), desc=desc, file=sys.stderr)
    stopping = result.stopping
    for epoch in bar:
        result.last_epoch = epoch
        model.train()
        order = torch.stack(
            [train.subsets[s][torch.randperm(n, generator=orders[s])] for s in active.tolist()]
        )
        for i in range(0, n, batch_size):
            idx = order[:, i : i + batch_size].to(device)  # [S, B] positions in the train split
            logits = model(*train.inputs(idx))
            per_pair = F.cross_entropy(
                logits.flatten(0, 1), train.label[idx.flatten()], reduction="none"
            )
            loss = per_pair.view(idx.shape).sum(dim=1)  # [S]: each seed's summed loss
            optimizer.zero_grad()
            (loss.sum() / idx.shape[1]).backward()  # the sum over seeds of each seed's mean loss
            score_grad += model.score_grad_norm()
            steps += 1
            optimizer.set_lr(learning_rate(cfg, step, schedule_steps))
            optimizer.step()
            step += 1
            train_loss += loss.detach()
        seen += n
        for j in (~torch.isfinite(train_loss)).nonzero().flatten().tolist():
            stopping.diverge(active[j].item(), epoch)

        if epoch % eval_every == 0 or epoch == max_epochs:
            eval_start = time.perf_counter()
            dev_metrics = metrics(model.predict(dev), dev.label.cpu())
            # parameters broken by the epoch's last step show first here: never keep them as best
            for j in np.flatnonzero(~np.isfinite(dev_metrics["loss"])).tolist():
                stopping.diverge(active[j].item(), epoch)
            entropy, ceiling = model.attention_entropy(dev)
            result.eval_s += time.perf_counter() - eval_start
            for j, s in enumerate(active.tolist()):
                result.curves.append(
                    {
                        "seed": seeds[s],
                        "epoch": epoch,
                        "train_loss": (train_loss[j] / seen).item(),
                        "dev_loss": dev_metrics["loss"][j],
                        "dev_accuracy": dev_metrics["accuracy"][j],
                        "dev_auroc": dev_metrics["auroc"][j],
                        "attention_entropy": entropy[j].item(),
                        "attention_ceiling": ceiling[j].item(),
                        "score_grad_norm": (score_grad[j] / steps).item(),
                    }
                )
            improved = stopping.update(
                epoch, active.tolist(), dev_metrics["accuracy"], dev_metrics["loss"]
            )
            model.save_into(result.best, active, improved)
            bar.set_postfix(dev_acc=f"{np.nanmax(dev_metrics['accuracy']):.3f}")
            train_loss, seen = torch.zeros(len(active), device=device), 0
            score_grad, steps = torch.zeros(len(active), device=device), 0
        if stopping.done:
            break
        still = torch.tensor([stopping.active(s) for s in active.tolist()])
        if not still.all():
            keep = still.nonzero().flatten()
            model.keep_seeds(keep)
            optimizer = keep_optimizer_seeds(optimizer, model.params, keep, cfg)
            active, train_loss = active[keep], train_loss[keep.to(device)]
            score_grad = score_grad[keep.to(device)]
    bar.close()
    return result


def train_condition(
    image_features: Path,
    text_features: Path,
    pairs_dir: Path,
    n: int,
    spec: dict,
    threads: int,
    labels: dict[str, str] | None = None,
) -> Trained:
    """Train the seeds of one condition (``spec["seeds"]``: the workflow's seed block); return
    its runs, curves, test predictions and fused representations.

    Both tables start with the condition's ``labels`` (e.g. dataset, backbone, alignment), the
    method's label and its head's registry name, so that aggregated tables can tell conditions
    apart and name what each label trained.

    Seeds that stop early leave the stack (parameters and optimiser state), so the rest train on
    alone. Every random stream of a seed (initialisation, data order, dropout masks) depends on
    that seed alone and the optimiser steps each seed's slice on its own, so on the CPU a seed's
    numbers are bit for bit the same whichever seeds train beside it: adding seeds to a study, or
    splitting them into other jobs, leaves the existing seeds' numbers unchanged.
    ``training.device`` (default cpu) picks where the features and heads live; data order and
    initialisation are drawn on the CPU, so only floating-point results differ by device. Runs
    record the device, ``load_s`` (reading pairs and features), ``train_s`` (the epochs, dev
    evaluations included) and ``eval_s`` (the dev evaluations alone), and what the head attended
    over: ``token_source`` and the mean tokens per image and per caption (see
    :func:`tokens_attended`).
    """
    start = time.perf_counter()
    torch.set_num_threads(threads)
    cfg, seeds = spec["training"], list(spec["seeds"])
    device = pick_device(cfg.get("device", "cpu"))
    resample, scaling = spec.get("resample", "fixed"), spec.get("scaling", "none")
    data = load_splits(
        image_features, text_features, pairs_dir, n, device, seeds, resample, scaling
    )
    load_s = time.perf_counter() - start
    train = data["train"]
    model, result, train_s = fit_seeds(
        spec, data, device, (image_features, text_features), f"{spec['method']} n={n}"
    )

    model.load(result.best)
    stopping = result.stopping
    # A seed that diverged before any evaluation kept its initial weights as "best": not a trained
    # head, so no test numbers; and no diverged seed's predictions or fused view are kept.
    untrained = [s for s in range(len(seeds)) if stopping.best_epoch[s] == 0]
    usable = [s for s in range(len(seeds)) if stopping.diverged_at[s] is None]
    test_logits = model.predict(data["test"])
    test = metrics(test_logits, data["test"].label.cpu())
    ablation = modality_ablation(model, data["test"])
    for column in (*test.values(), *ablation.values()):
        column[untrained] = np.nan
    wall = time.perf_counter() - start
    runs = [
        {
            "seed": seed,
            "n_train": n,
            "test_accuracy": test["accuracy"][s],
            "test_auroc": test["auroc"][s],
            "test_loss": test["loss"][s],
            "image_shuffled_accuracy": ablation["image_shuffled_accuracy"][s],
            "text_shuffled_accuracy": ablation["text_shuffled_accuracy"][s],
            "best_dev_accuracy": stopping.best_accuracy[s] if s not in untrained else np.nan,
            "best_epoch": stopping.best_epoch[s],
            "epochs": stopping.stopped_at[s] or result.last_epoch,
            "params": model.n_params,
            "hparams": json.dumps(model.hparams, sort_keys=True),
            "wall_s": wall,
            "load_s": load_s,
            "train_s": train_s,
            "eval_s": result.eval_s,
            "seeds_trained_together": len(seeds),
            "resample": resample,
            "scaling": scaling,
            "device": describe(device),
            "token_source": model.token_source,
            **tokens_attended(model, train),
            **recipe(spec),
            "status": "ok" if stopping.diverged_at[s] is None else "diverged",
            "diverged_epoch": stopping.diverged_at[s],
        }
        for s, seed in enumerate(seeds)
    ]
    condition = {**(labels or {}), "method": spec["method"], "head": spec["head"]}
    runs = pd.DataFrame(runs).astype({"diverged_epoch": "Int64"})
    return Trained(
        labelled(runs, condition),
        labelled(pd.DataFrame(result.curves), condition),
        predictions(test_logits[usable], [seeds[s] for s in usable]),
        representations(model, train, data["test"], seeds, usable),
    )


def fit_seeds(
    spec: dict, data: dict[str, Split], device: torch.device, files: tuple[Path, Path], desc: str
) -> tuple[SeedEnsemble, Fit, float]:
    """Build the seed ensemble of ``spec`` on the loaded splits and :func:`fit` it on train with
    early stopping on dev: (the ensemble, the fit, the seconds the epochs took). ``files`` (image,
    text) name the features in errors."""
    cfg, seeds, train = spec["training"], list(spec["seeds"]), data["train"]
    model = SeedEnsemble(
        spec["head"],
        spec["hparams"],
        train.image.dim,
        train.text.dim,
        seeds,
        device,
        spec["method"],
    )
    check_token_source(spec["method"], model.token_source, train, *files)
    n = train.subsets.shape[1]
    probe = torch.arange(min(cfg["batch_size"], n), device=device).expand(len(seeds), -1)
    model.adopt_grad_layout(*train.inputs(probe))
    model.measure_dropout(*train.inputs(train.longest().expand(len(seeds), -1)))

    # A process's first optimiser imports torch._dynamo (about 3 s): not part of train_s.
    optimizer = adamw(model.params.values(), cfg)
    train_start = time.perf_counter()
    result = fit(model, optimizer, train, data["dev"], cfg, seeds, desc)
    return model, result, time.perf_counter() - train_start


def recipe(spec: dict) -> dict:
    """What a run records of how it was trained: the training settings it used (``training``,
    JSON), whether tuning chose any of them (``tuned``) and which values it chose
    (``tuned_values``, JSON; ``{}`` when untuned)."""
    training = {k: v for k, v in spec["training"].items() if k != "device"}
    chosen = spec.get("tuned")
    return {
        "training": json.dumps(training, sort_keys=True),
        "tuned": chosen is not None,
        "tuned_values": json.dumps(chosen or {}, sort_keys=True),
    }


def predictions(logits: torch.Tensor, seeds: list[int]) -> pd.DataFrame:
    """Per seed and test pair (its row in test.parquet): the probability of a match, float32.

    The analysis stage resamples test images from these, and they are what the modality
    contribution diagnostics read.
    """
    pairs = logits.shape[1]
    return pd.DataFrame(
        {
            "seed": np.repeat(np.asarray(seeds, dtype=np.int64), pairs),
            "pair": np.tile(np.arange(pairs, dtype=np.int32), len(seeds)),
            "prob": logits.float().softmax(dim=-1)[..., 1].reshape(-1).numpy(),
        }
    )


def check_token_source(
    method: str, token_source: str, split: Split, image_features: Path, text_features: Path
) -> None:
    """Token files for a head that reads encoder tokens, pooled files for every other head."""
    if (token_source == "encoder") == split.tokens:
        return
    if split.tokens:
        raise AlignfuseError(
            f"{image_features}, {text_features}: token sequences, but method '{method}' reads "
            f"pooled features ({token_source}); pass the pooled feature files"
        )
    raise AlignfuseError(
        f"{image_features}, {text_features}: pooled features, but method '{method}' has "
        "token_source: encoder; pass the encoders' *_tokens.parquet files"
    )


def tokens_attended(model: SeedEnsemble, split: Split) -> dict[str, float]:
    """Mean tokens per image and per caption that the head sees: 1 for a pooled vector, the
    pseudo-token count k, or the encoder sequences' mean length over the rows the job loaded."""
    if model.token_source == "pseudo":
        return {
            "image_tokens": float(model.pseudo_tokens),
            "text_tokens": float(model.pseudo_tokens),
        }
    return {"image_tokens": split.image.tokens_per_row, "text_tokens": split.text.tokens_per_row}


def labelled(frame: pd.DataFrame, condition: dict[str, str]) -> pd.DataFrame:
    return pd.concat([pd.DataFrame(condition, index=frame.index), frame], axis=1)
