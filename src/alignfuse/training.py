"""Train every seed of one fusion condition at once, vectorised across seeds with torch.func.

One process, one forward/backward and one optimiser step serve all seeds: the seeds' parameters
are stacked and the head runs under vmap, so S small heads cost one batched pass.
Each seed keeps its own initialisation, data order, early stopping and best checkpoint.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch.func import functional_call, stack_module_state, vmap
from tqdm import tqdm

from alignfuse.errors import AlignfuseError
from alignfuse.fusion import build_head
from alignfuse.parquet import read_embeddings

SPLITS = ("train", "dev", "test")
PAIR_COLUMNS = ("image_id", "caption_id", "label")
EVAL_BATCH = 4096


@dataclass
class Split:
    """One split's pairs in memory: image [N, d_image], text [N, d_text], label [N]."""

    image: torch.Tensor
    text: torch.Tensor
    label: torch.Tensor

    def __len__(self) -> int:
        return len(self.label)


def read_pairs(path: Path, n: int | None = None) -> pd.DataFrame:
    """The pairs of one split; with ``n``, its first n rows (the nested training prefixes)."""
    if not path.exists():
        raise AlignfuseError(f"{path}: pairs file not found; run the workflow's pairs stage first")
    pairs = pd.read_parquet(path)
    missing = [c for c in PAIR_COLUMNS if c not in pairs.columns]
    if missing:
        raise AlignfuseError(
            f"{path}: missing column(s) {missing}; rebuild it with the pairs stage"
        )
    if n is not None:
        if n > len(pairs):
            raise AlignfuseError(
                f"{path}: {n} training pairs requested but only {len(pairs)} available; "
                "lower the scale in `scales` or build more training pairs"
            )
        pairs = pairs.iloc[:n]
    return pairs


def feature_rows(path: Path, ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Read a feature file; return (row of each id in the returned matrix, the needed rows)."""
    file_ids, emb = read_embeddings(path)
    index = pd.Index(file_ids)
    if not index.is_unique:
        raise AlignfuseError(f"{path}: duplicate ids; rebuild the feature file")
    needed = pd.Index(pd.unique(ids))
    rows = index.get_indexer(needed)
    if (rows < 0).any():
        absent = list(needed[rows < 0][:3])
        raise AlignfuseError(
            f"{path}: {int((rows < 0).sum())} id(s) referenced by the pairs are missing, e.g. "
            f"{absent}; the features and pairs come from different data, rebuild them together"
        )
    return needed.get_indexer(ids), emb[rows]


def load_splits(
    image_features: Path, text_features: Path, pairs_dir: Path, n: int
) -> dict[str, Split]:
    """Train (first n pairs), dev and test pairs, indexed once into float32 tensors."""
    pairs = {
        s: read_pairs(Path(pairs_dir) / f"{s}.parquet", n if s == "train" else None) for s in SPLITS
    }
    every = pd.concat(pairs.values(), keys=SPLITS)
    image_rows, image_emb = feature_rows(Path(image_features), every["image_id"])
    text_rows, text_emb = feature_rows(Path(text_features), every["caption_id"])
    splits, start = {}, 0
    for name, frame in pairs.items():
        rows = slice(start, start + len(frame))
        splits[name] = Split(
            image=torch.from_numpy(image_emb[image_rows[rows]]),
            text=torch.from_numpy(text_emb[text_rows[rows]]),
            label=torch.tensor(frame["label"].to_numpy(), dtype=torch.long),
        )
        start += len(frame)
    return splits


class SeedEnsemble:
    """S copies of one head with stacked parameters [S, ...] and one vmapped functional forward.

    Seed s's copy is built right after ``torch.manual_seed(s)``, so its initialisation depends only
    on s. Train/eval mode lives on the parameter-less ``base`` module that ``functional_call``
    runs, so ``train()``/``eval()`` switch dropout for every seed at once.
    """

    def __init__(self, method: str, head_config: dict, d_image: int, d_text: int, seeds: list[int]):
        models = []
        for seed in seeds:
            torch.manual_seed(seed)
            models.append(build_head(method, d_image, d_text, head_config))
        self.n_params = sum(p.numel() for p in models[0].parameters())
        self.params, self.buffers = stack_module_state(models)
        self.base = copy.deepcopy(models[0]).to("meta")

    def forward(self, params, buffers, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """One seed's head with the given parameters (the function that vmap maps over seeds)."""
        return functional_call(self.base, (params, buffers), (image, text))

    def train(self) -> None:
        self.base.train()

    def eval(self) -> None:
        self.base.eval()

    def __call__(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Per-seed batches image [S, B, d_image], text [S, B, d_text] -> logits [S, B, 2]."""
        return vmap(self.forward, randomness="different")(self.params, self.buffers, image, text)

    @torch.no_grad()
    def predict(self, split: Split) -> torch.Tensor:
        """Every seed on the same pairs, in eval mode: logits [S, N, 2]."""
        self.eval()
        shared = vmap(self.forward, in_dims=(0, 0, None, None))
        logits = []
        for i in range(0, len(split), EVAL_BATCH):
            chunk = slice(i, i + EVAL_BATCH)
            logits.append(shared(self.params, self.buffers, split.image[chunk], split.text[chunk]))
        return torch.cat(logits, dim=1)

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: p.detach().clone() for k, p in self.params.items()}

    @torch.no_grad()
    def keep_where(self, best: dict[str, torch.Tensor], mask: torch.Tensor) -> None:
        """Copy the current parameters of the seeds in ``mask`` [S] into ``best``."""
        for k, p in self.params.items():
            best[k].copy_(torch.where(mask.view(-1, *[1] * (p.dim() - 1)), p, best[k]))

    @torch.no_grad()
    def load(self, params: dict[str, torch.Tensor]) -> None:
        for k, p in self.params.items():
            p.copy_(params[k])


def metrics(logits: torch.Tensor, label: torch.Tensor) -> dict[str, float]:
    """Loss, accuracy and AUROC (softmax probability of class 1) of one seed's logits [N, 2]."""
    prob = logits.softmax(dim=-1)[:, 1].numpy()
    y = label.numpy()
    return {
        "loss": F.cross_entropy(logits, label).item(),
        "accuracy": (logits.argmax(dim=-1) == label).double().mean().item(),
        "auroc": roc_auc_score(y, prob) if len(np.unique(y)) == 2 else math.nan,
    }


class EarlyStopping:
    """Per-seed patience on dev accuracy (ties broken by lower dev loss), counted in evaluations.

    A seed that has run out of patience is frozen: later evaluations do not change its record,
    so its result does not depend on how long the other seeds keep training.
    """

    def __init__(self, n_seeds: int, patience: int):
        self.patience = patience
        self.best_accuracy = [-math.inf] * n_seeds
        self.best_loss = [math.inf] * n_seeds
        self.best_epoch = [0] * n_seeds
        self.stale = [0] * n_seeds
        self.stopped_at: list[int | None] = [None] * n_seeds

    def active(self, s: int) -> bool:
        return self.stopped_at[s] is None

    def update(self, epoch: int, dev: list[dict[str, float]]) -> torch.Tensor:
        """Record one evaluation; return the mask [S] of seeds whose dev result improved."""
        improved = torch.zeros(len(dev), dtype=torch.bool)
        for s, m in enumerate(dev):
            if not self.active(s):
                continue
            acc, loss = m["accuracy"], m["loss"]
            if acc > self.best_accuracy[s] or (
                acc == self.best_accuracy[s] and loss < self.best_loss[s]
            ):
                self.best_accuracy[s], self.best_loss[s], self.best_epoch[s] = acc, loss, epoch
                self.stale[s] = 0
                improved[s] = True
            else:
                self.stale[s] += 1
                if self.stale[s] >= self.patience:
                    self.stopped_at[s] = epoch
        return improved

    @property
    def done(self) -> bool:
        return not any(self.active(s) for s in range(len(self.stopped_at)))


def train_condition(
    image_features: Path, text_features: Path, pairs_dir: Path, n: int, spec: dict, threads: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train all seeds of one condition; return runs (row per seed) and curves (per seed per eval).

    The seeds share one optimiser step: the loss is the sum over seeds of each seed's mean
    cross-entropy, so the gradient of seed s's parameter slice is exactly the gradient of seed s's
    own loss. AdamW is elementwise (moments, bias correction, decoupled weight decay), so one AdamW
    over the stacked [S, ...] tensors is exactly S independent AdamWs. Dropout masks are drawn from
    the global RNG (seeded from the seed list), so a seed's result is independent of the others'
    only up to dropout noise and floating-point summation order.
    """
    start = time.perf_counter()
    torch.set_num_threads(threads)
    cfg, seeds = spec["training"], list(spec["seeds"])
    data = load_splits(image_features, text_features, pairs_dir, n)
    train = data["train"]
    model = SeedEnsemble(
        spec["method"], spec["head"], train.image.shape[1], train.text.shape[1], seeds
    )
    optimizer = torch.optim.AdamW(
        model.params.values(), lr=cfg["lr"], weight_decay=cfg["weight_decay"]
    )
    orders = [torch.Generator().manual_seed(seed) for seed in seeds]
    torch.manual_seed(int(np.random.SeedSequence(seeds).generate_state(1)[0]))
    max_epochs, eval_every = cfg["max_epochs"], cfg["eval_every"]
    batch_size = min(cfg["batch_size"], n)
    stopping = EarlyStopping(len(seeds), cfg["patience"])
    best, curves = model.snapshot(), []
    train_loss, seen = torch.zeros(len(seeds)), 0

    bar = tqdm(range(1, max_epochs + 1), desc=f"{spec['method']} n={n}", file=sys.stderr)
    for epoch in bar:
        model.train()
        order = torch.stack([torch.randperm(n, generator=g) for g in orders])  # [S, n]
        for i in range(0, n, batch_size):
            idx = order[:, i : i + batch_size]
            logits = model(train.image[idx], train.text[idx])
            per_pair = F.cross_entropy(logits.transpose(1, 2), train.label[idx], reduction="none")
            loss = per_pair.mean(dim=1)  # [S]: each seed's own mean loss
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimizer.step()
            train_loss += loss.detach() * idx.shape[1]
            seen += idx.shape[1]

        if epoch % eval_every and epoch != max_epochs:
            continue
        dev_logits = model.predict(data["dev"])
        dev = [metrics(dev_logits[s], data["dev"].label) for s in range(len(seeds))]
        curves += [
            {
                "seed": seed,
                "epoch": epoch,
                "train_loss": (train_loss[s] / seen).item(),
                "dev_loss": dev[s]["loss"],
                "dev_accuracy": dev[s]["accuracy"],
                "dev_auroc": dev[s]["auroc"],
            }
            for s, seed in enumerate(seeds)
            if stopping.active(s)
        ]
        train_loss, seen = torch.zeros(len(seeds)), 0
        model.keep_where(best, stopping.update(epoch, dev))
        bar.set_postfix(dev_acc=f"{max(m['accuracy'] for m in dev):.3f}")
        if stopping.done:
            break
    bar.close()

    model.load(best)
    test_logits = model.predict(data["test"])
    wall = time.perf_counter() - start
    runs = []
    for s, seed in enumerate(seeds):
        test = metrics(test_logits[s], data["test"].label)
        runs.append(
            {
                "seed": seed,
                "n_train": n,
                "test_accuracy": test["accuracy"],
                "test_auroc": test["auroc"],
                "test_loss": test["loss"],
                "best_dev_accuracy": stopping.best_accuracy[s],
                "best_epoch": stopping.best_epoch[s],
                "epochs": stopping.stopped_at[s] or epoch,
                "params": model.n_params,
                "wall_s": wall,
                "seeds_trained_together": len(seeds),
            }
        )
    return pd.DataFrame(runs), pd.DataFrame(curves)
