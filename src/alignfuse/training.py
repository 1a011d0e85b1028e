"""Train every seed of one fusion condition at once, vectorised across seeds with torch.func.

One process, one forward/backward and one optimiser step serve all seeds: the seeds' parameters
are stacked and the head runs under vmap, so S small heads cost one batched pass (a Linear layer
becomes one bmm over the seeds). Each seed keeps its own initialisation, data order, early
stopping and best checkpoint; a seed that has stopped leaves the stack, so it costs nothing more.
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
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap
from tqdm import tqdm

from alignfuse.datasets import SPLITS
from alignfuse.devices import describe, pick_device
from alignfuse.errors import AlignfuseError
from alignfuse.feature_rows import PooledRows, TokenRows, load_rows
from alignfuse.fusion.build import build_head

PAIR_COLUMNS = ("image_id", "caption_id", "label")
CPU = torch.device("cpu")
# Pairs x seeds per evaluation forward pass (divided by the tokens per pair of token features):
# big enough for efficient matmuls, small enough that a head's temporaries (the cross-attention
# FFN holds ~16 KB per pair) stay under glibc's 32 MiB mmap threshold; beyond it every temporary
# is page-faulted in afresh and evaluation halves speed.
EVAL_ROWS = 2048


@dataclass
class Split:
    """One split's pairs in memory: pair i is image row ``image_row[i]``, text row ``text_row[i]``.

    The rows (:mod:`alignfuse.feature_rows`) are shared by every split, so an image used by many
    pairs is held once.
    """

    image: PooledRows | TokenRows
    text: PooledRows | TokenRows
    label: torch.Tensor
    image_row: torch.Tensor
    text_row: torch.Tensor

    def __len__(self) -> int:
        return len(self.label)

    @property
    def tokens(self) -> bool:
        """Whether the features are token sequences (heads then also take their masks)."""
        return isinstance(self.image, TokenRows)

    @property
    def tokens_per_pair(self) -> float:
        return max(self.image.tokens_per_row, self.text.tokens_per_row)

    def inputs(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """A head's inputs for the pairs at ``index`` (any shape [...]).

        Pooled: (image [..., d_image], text [..., d_text]). Tokens: (image [..., Li, d_image],
        text [..., Lt, d_text], image_mask [..., Li], text_mask [..., Lt]).
        """
        image = self.image.gather(self.image_row[index])
        text = self.text.gather(self.text_row[index])
        return (image[0], text[0], *image[1:], *text[1:])


def read_pairs(path: Path, n: int | None = None) -> pd.DataFrame:
    """The pairs of one split; with ``n``, its first n rows (the nested training prefixes)."""
    if not path.exists():
        raise AlignfuseError(f"{path}: pairs file not found; run the workflow's pairs stage first")
    missing = [c for c in PAIR_COLUMNS if c not in pq.read_schema(path).names]
    if missing:
        raise AlignfuseError(
            f"{path}: missing column(s) {missing}; rebuild it with the pairs stage"
        )
    pairs = pd.read_parquet(path, columns=list(PAIR_COLUMNS))
    if n is not None:
        if n > len(pairs):
            raise AlignfuseError(
                f"{path}: {n} training pairs requested but only {len(pairs)} available; "
                "lower the scale in `scales` or build more training pairs"
            )
        pairs = pairs.iloc[:n]
    return pairs


def load_splits(
    image_features: Path,
    text_features: Path,
    pairs_dir: Path,
    n: int,
    device: torch.device = CPU,
) -> dict[str, Split]:
    """Train (first n pairs), dev and test pairs over the feature rows they use, read once and
    held on ``device``."""
    pairs = {
        s: read_pairs(Path(pairs_dir) / f"{s}.parquet", n if s == "train" else None) for s in SPLITS
    }
    every = pd.concat(pairs.values(), keys=SPLITS)
    image, image_row = load_rows(Path(image_features), every["image_id"])
    text, text_row = load_rows(Path(text_features), every["caption_id"])
    if isinstance(image, TokenRows) != isinstance(text, TokenRows):
        raise AlignfuseError(
            f"{image_features}, {text_features}: one holds token sequences and the other pooled "
            "features; pass two token files (*_tokens.parquet) or two pooled ones"
        )
    image, text = image.to(device), text.to(device)
    image_row, text_row = image_row.to(device), text_row.to(device)
    splits, start = {}, 0
    for name, frame in pairs.items():
        rows = slice(start, start + len(frame))
        splits[name] = Split(
            image=image,
            text=text,
            label=torch.tensor(frame["label"].to_numpy(), dtype=torch.long, device=device),
            image_row=image_row[rows],
            text_row=text_row[rows],
        )
        start += len(frame)
    return splits


class SeedEnsemble:
    """S copies of one head with stacked parameters [S, ...] and one vmapped functional forward.

    Seed s's copy is built right after ``torch.manual_seed(s)``, so its initialisation depends only
    on s. Train/eval mode lives on the parameter-less ``base`` module that ``functional_call``
    runs, so ``train()``/``eval()`` switch dropout for every seed at once.

    ``params`` are the leaf tensors that an optimiser updates, one row per seed. After
    :meth:`adopt_grad_layout` a leaf may hold its parameter with dimensions permuted (always
    contiguous, seeds first); :meth:`weights` gives every parameter in the head's own shape.
    """

    def __init__(
        self,
        method: str,
        head_config: dict,
        d_image: int,
        d_text: int,
        seeds: list[int],
        device: torch.device = CPU,
    ):
        models = []
        for seed in seeds:
            torch.manual_seed(seed)  # on the CPU: a seed's initialisation is the same on any device
            models.append(build_head(method, d_image, d_text, head_config))
        self.n_params = sum(p.numel() for p in models[0].parameters())
        params, buffers = stack_module_state(models)
        self.params = {k: p.detach().to(device).requires_grad_() for k, p in params.items()}
        self.buffers = {k: b.to(device) for k, b in buffers.items()}
        self.base = copy.deepcopy(models[0]).to("meta")
        self.unpermute: dict[str, list[int]] = {}  # leaf dims -> the head's dims, where permuted
        # what the head reads: "pooled" vectors, "pseudo" tokens cut from them, or "encoder" tokens
        self.token_source = getattr(models[0], "token_source", "pooled")
        self.pseudo_tokens = getattr(models[0], "pseudo_tokens", None)
        self._batched = vmap(self.forward, randomness="different")
        self._shared = vmap(self.forward, in_dims=(0, 0, None))

    def forward(self, params, buffers, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """One seed's head with the given parameters (the function that vmap maps over seeds)."""
        return functional_call(self.base, (params, buffers), inputs)

    def train(self) -> None:
        self.base.train()

    def eval(self) -> None:
        self.base.eval()

    def __len__(self) -> int:
        return len(next(iter(self.params.values())))

    def weights(self) -> dict[str, torch.Tensor]:
        """Every stacked parameter in the head's shape [S, ...] (views of ``params``)."""
        return {
            k: p.permute(self.unpermute[k]) if k in self.unpermute else p
            for k, p in self.params.items()
        }

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Per-seed batches of a split's inputs (:meth:`Split.inputs` of [S, B]) -> logits [S, B, 2]."""
        return self._batched(self.weights(), self.buffers, inputs)

    @torch.no_grad()
    def predict(self, split: Split) -> torch.Tensor:
        """Every seed on the same pairs, in eval mode: logits [S, N, 2], on the CPU."""
        self.eval()
        weights = self.weights()
        step = max(1, int(EVAL_ROWS / (len(self) * split.tokens_per_pair)))
        logits = []
        for i in range(0, len(split), step):
            index = torch.arange(i, min(i + step, len(split)), device=split.label.device)
            logits.append(self._shared(weights, self.buffers, split.inputs(index)))
        return torch.cat(logits, dim=1).cpu()

    def adopt_grad_layout(self, *inputs: torch.Tensor) -> None:
        """Store each parameter with its dimensions in the memory order of its gradient.

        Under vmap a Linear weight's gradient [S, out, in] comes out laid out as [S, in, out].
        Autograd would copy it into the parameter's layout on every step, and a fused optimiser
        runs several times slower on non-contiguous tensors; a contiguous leaf [S, in, out] that the
        forward pass reads through a permuted view avoids both. One probe backward pass (eval mode,
        so no random numbers are drawn) finds the layouts; values are unchanged.
        """
        self.eval()
        grads = torch.autograd.grad(self(*inputs).sum(), list(self.params.values()))
        for (name, p), g in zip(list(self.params.items()), grads, strict=True):
            order = [0] + sorted(range(1, g.dim()), key=lambda d: (-g.stride(d), d))
            if name in self.unpermute or order == list(range(g.dim())):
                continue
            if g.permute(order).is_contiguous():
                self.params[name] = p.detach().permute(order).contiguous().requires_grad_()
                self.unpermute[name] = [order.index(d) for d in range(g.dim())]

    def keep_seeds(self, index: torch.Tensor) -> None:
        """Keep only the seeds at positions ``index`` (new contiguous leaf tensors)."""
        index = index.to(next(iter(self.params.values())).device)
        self.params = {
            k: p.detach().index_select(0, index).requires_grad_() for k, p in self.params.items()
        }
        self.buffers = {k: b.index_select(0, index) for k, b in self.buffers.items()}

    def state(self) -> dict[str, torch.Tensor]:
        """Stacked parameter leaves and buffers by name: every seed's checkpoint, one row each."""
        return {**self.params, **self.buffers}

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.state().items()}

    @torch.no_grad()
    def save_into(self, best: dict[str, torch.Tensor], positions: torch.Tensor, mask) -> None:
        """Copy the state of the seeds in ``mask`` [S] into rows ``positions[mask]`` of ``best``."""
        mask = torch.as_tensor(mask, dtype=torch.bool)
        for k, v in self.state().items():
            where = positions[mask].to(v.device)
            best[k].index_copy_(0, where, v.detach()[mask.to(v.device)])

    def load(self, state: dict[str, torch.Tensor]) -> None:
        """Use this stacked state (e.g. every seed's best checkpoint) from now on."""
        self.params = {k: state[k] for k in self.params}
        self.buffers = {k: state[k] for k in self.buffers}


def adamw(params, cfg: dict) -> torch.optim.AdamW:
    """AdamW with the config's lr and weight decay; the fused kernel where torch has one.

    AdamW is elementwise, so one AdamW over stacked [S, ...] tensors is S independent AdamWs.
    """
    params, kwargs = list(params), {"lr": cfg["lr"], "weight_decay": cfg["weight_decay"]}
    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except RuntimeError:  # no fused kernel for this device or dtype
        return torch.optim.AdamW(params, foreach=True, **kwargs)


def keep_optimizer_seeds(
    optimizer: torch.optim.Optimizer, old: dict, new: dict, index: torch.Tensor, cfg: dict
) -> torch.optim.Optimizer:
    """A fresh optimiser over ``new`` params carrying the state of the seeds at ``index``."""
    fresh = adamw(new.values(), cfg)
    for name, p in new.items():
        fresh.state[p] = {
            key: value.index_select(0, index.to(value.device)) if value.dim() else value.clone()
            for key, value in optimizer.state[old[name]].items()
        }
    return fresh


def auroc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half): the Mann-Whitney U with average ranks."""
    positives = label == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if not n_pos or not n_neg:
        return math.nan
    order = np.argsort(score, kind="stable")
    ordered = score[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(score)]
    ranks = np.empty(len(score))
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)  # 1-based, ties averaged
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def metrics(logits: torch.Tensor, label: torch.Tensor) -> dict[str, np.ndarray]:
    """Per seed: loss, accuracy and AUROC (softmax probability of class 1) of logits [S, N, 2]."""
    labels = label.expand(len(logits), -1)
    loss = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(dim=1)
    accuracy = (logits.argmax(dim=-1) == labels).double().mean(dim=1)
    prob = logits.softmax(dim=-1)[..., 1].numpy()
    y = label.numpy()
    return {
        "loss": loss.numpy().astype(np.float64),
        "accuracy": accuracy.numpy(),
        "auroc": np.array([auroc(p, y) for p in prob]),
    }


class EarlyStopping:
    """Per-seed patience on dev accuracy (ties broken by lower dev loss), counted in evaluations.

    A seed that has run out of patience is frozen: later evaluations do not change its record,
    so its result does not depend on how long the other seeds keep training. No seed stops before
    ``min_epochs``: attention heads sit at chance for a while before they find the task, and
    patience alone would stop them on that plateau.
    """

    def __init__(self, n_seeds: int, patience: int, min_epochs: int = 0):
        self.patience = patience
        self.min_epochs = min_epochs
        self.best_accuracy = [-math.inf] * n_seeds
        self.best_loss = [math.inf] * n_seeds
        self.best_epoch = [0] * n_seeds
        self.stale = [0] * n_seeds
        self.stopped_at: list[int | None] = [None] * n_seeds

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

    @property
    def done(self) -> bool:
        return not any(self.active(s) for s in range(len(self.stopped_at)))


def train_condition(
    image_features: Path,
    text_features: Path,
    pairs_dir: Path,
    n: int,
    spec: dict,
    threads: int,
    labels: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train all seeds of one condition; return runs (row per seed) and curves (per seed per eval).

    Both tables start with the condition's ``labels`` (e.g. dataset, backbone, alignment) and the
    method, so that aggregated tables can tell conditions apart.

    The seeds share one optimiser step: the loss is the sum over seeds of each seed's mean
    cross-entropy, so the gradient of seed s's parameter slice is exactly the gradient of seed s's
    own loss, and one AdamW over the stack is S independent AdamWs. Seeds that stop early leave
    the stack (parameters and optimiser state), so the rest train on alone. Dropout masks are drawn
    from the global RNG (seeded from the seed list) for the seeds still training, so a seed's
    result is independent of the others' only up to dropout noise and floating-point summation
    order. ``training.device`` (default cpu) picks where the features and heads live; data order
    and initialisation are drawn on the CPU, so only floating-point results differ by device.
    Runs record the device, ``load_s`` (reading pairs and features), ``train_s`` (the epochs, dev
    evaluations included) and ``eval_s`` (the dev evaluations alone), and what the head attended
    over: ``token_source`` and the mean tokens per image and per caption (see
    :func:`tokens_attended`).
    """
    start = time.perf_counter()
    torch.set_num_threads(threads)
    cfg, seeds = spec["training"], list(spec["seeds"])
    device = pick_device(cfg.get("device", "cpu"))
    data = load_splits(image_features, text_features, pairs_dir, n, device)
    load_s = time.perf_counter() - start
    train, dev = data["train"], data["dev"]
    batch_size = min(cfg["batch_size"], n)
    model = SeedEnsemble(
        spec["method"], spec["head"], train.image.dim, train.text.dim, seeds, device
    )
    check_token_source(spec["method"], model.token_source, train, image_features, text_features)
    probe = torch.arange(batch_size, device=device).expand(len(seeds), -1)
    model.adopt_grad_layout(*train.inputs(probe))
    optimizer = adamw(model.params.values(), cfg)
    orders = [torch.Generator().manual_seed(seed) for seed in seeds]
    torch.manual_seed(int(np.random.SeedSequence(seeds).generate_state(1)[0]))
    max_epochs, eval_every = cfg["max_epochs"], cfg["eval_every"]
    stopping = EarlyStopping(len(seeds), cfg["patience"], cfg.get("min_epochs", 0))
    best, curves = model.snapshot(), []
    active = torch.arange(len(seeds))  # positions in `seeds` of the seeds still training
    train_loss, seen, eval_s = torch.zeros(len(seeds), device=device), 0, 0.0

    train_start = time.perf_counter()
    bar = tqdm(range(1, max_epochs + 1), desc=f"{spec['method']} n={n}", file=sys.stderr)
    for epoch in bar:
        model.train()
        order = torch.stack([torch.randperm(n, generator=orders[s]) for s in active.tolist()])
        for i in range(0, n, batch_size):
            idx = order[:, i : i + batch_size].to(device)  # [S, B] positions in the train split
            logits = model(*train.inputs(idx))
            per_pair = F.cross_entropy(
                logits.flatten(0, 1), train.label[idx.flatten()], reduction="none"
            )
            loss = per_pair.view(idx.shape).sum(dim=1)  # [S]: each seed's summed loss
            optimizer.zero_grad(set_to_none=True)
            (loss.sum() / idx.shape[1]).backward()  # the sum over seeds of each seed's mean loss
            optimizer.step()
            train_loss += loss.detach()
        seen += n

        if epoch % eval_every and epoch != max_epochs:
            continue
        eval_start = time.perf_counter()
        dev_metrics = metrics(model.predict(dev), dev.label.cpu())
        eval_s += time.perf_counter() - eval_start
        for j, s in enumerate(active.tolist()):
            curves.append(
                {
                    "seed": seeds[s],
                    "epoch": epoch,
                    "train_loss": (train_loss[j] / seen).item(),
                    "dev_loss": dev_metrics["loss"][j],
                    "dev_accuracy": dev_metrics["accuracy"][j],
                    "dev_auroc": dev_metrics["auroc"][j],
                }
            )
        improved = stopping.update(
            epoch, active.tolist(), dev_metrics["accuracy"], dev_metrics["loss"]
        )
        model.save_into(best, active, improved)
        bar.set_postfix(dev_acc=f"{dev_metrics['accuracy'].max():.3f}")
        if stopping.done:
            break
        still = torch.tensor([stopping.active(s) for s in active.tolist()])
        if not still.all():
            keep = still.nonzero().flatten()
            old = model.params
            model.keep_seeds(keep)
            optimizer = keep_optimizer_seeds(optimizer, old, model.params, keep, cfg)
            active = active[keep]
        train_loss, seen = torch.zeros(len(active), device=device), 0
    bar.close()
    train_s = time.perf_counter() - train_start

    model.load(best)
    test = metrics(model.predict(data["test"]), data["test"].label.cpu())
    wall = time.perf_counter() - start
    runs = [
        {
            "seed": seed,
            "n_train": n,
            "test_accuracy": test["accuracy"][s],
            "test_auroc": test["auroc"][s],
            "test_loss": test["loss"][s],
            "best_dev_accuracy": stopping.best_accuracy[s],
            "best_epoch": stopping.best_epoch[s],
            "epochs": stopping.stopped_at[s] or epoch,
            "params": model.n_params,
            "wall_s": wall,
            "load_s": load_s,
            "train_s": train_s,
            "eval_s": eval_s,
            "seeds_trained_together": len(seeds),
            "device": describe(device),
            "token_source": model.token_source,
            **tokens_attended(model, train),
        }
        for s, seed in enumerate(seeds)
    ]
    condition = {**(labels or {}), "method": spec["method"]}
    return labelled(pd.DataFrame(runs), condition), labelled(pd.DataFrame(curves), condition)


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
