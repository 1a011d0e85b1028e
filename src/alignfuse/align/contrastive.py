"""Learned alignment: CLIP-style contrastive projections of a frozen image and text encoder pair
into one shared space.

Two unaligned encoders can carry the same information in unrelated coordinates; fitting a map per
modality with a symmetric InfoNCE loss on the train split makes matched pairs close, so the study
can ask whether fusion behaves like it does on natively aligned (CLIP) features. Only train rows
are fitted on, dev rows pick the stopping epoch, and test rows are never seen.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from alignfuse.align.pairing import check_pairing
from alignfuse.errors import AlignfuseError

MAX_LOGIT_SCALE = 100.0  # CLIP clamps exp(logit scale), i.e. 1 / temperature, at 100


@dataclass
class Tower:
    """One modality's map: standardise with train statistics, linear (or ReLU MLP), L2-normalise."""

    mean: np.ndarray
    std: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray | None]]  # (weight [in, out], bias [out] or None)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Rows of ``x`` (any split) as unit vectors [n, dim] in the shared space, float32."""
        if x.ndim != 2 or x.shape[1] != len(self.mean):
            raise AlignfuseError(
                f"projection expects rows of width {len(self.mean)}; got shape {x.shape}"
            )
        h = ((np.asarray(x, dtype=np.float64) - self.mean) / self.std).astype(np.float32)
        for i, (weight, bias) in enumerate(self.layers):
            h = h @ weight
            if bias is not None:
                h = h + bias
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0)
        return h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)


@dataclass
class Projection:
    """The fitted image and text towers, the learned logit scale and a record of the fit."""

    image: Tower
    text: Tower
    logit_scale: float
    record: dict = field(default_factory=dict)

    def project_image(self, V: np.ndarray) -> np.ndarray:
        return self.image(V)

    def project_text(self, T: np.ndarray) -> np.ndarray:
        return self.text(T)


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-coordinate mean and std (floored) of the train rows: every input scale trains alike."""
    x = np.asarray(x, dtype=np.float64)
    std = x.std(axis=0)
    return x.mean(axis=0), np.maximum(std, 1e-6 * max(float(std.mean()), 1e-30))


def make_net(d_in: int, hidden: int | None, dim: int, gen: torch.Generator) -> torch.nn.Sequential:
    """Linear d_in -> dim without bias, or d_in -> hidden (ReLU) -> dim; seeded normal init."""
    if hidden is None:
        shapes = [(d_in, dim, False)]
    else:
        shapes = [(d_in, hidden, True), (hidden, dim, False)]
    layers: list[torch.nn.Module] = []
    for i, (n_in, n_out, bias) in enumerate(shapes):
        # skip_init: the default init would draw from (and advance) torch's global generator
        linear = torch.nn.utils.skip_init(torch.nn.Linear, n_in, n_out, bias=bias)
        gain = 2.0 if i < len(shapes) - 1 else 1.0  # He init before a ReLU
        with torch.no_grad():
            linear.weight.copy_(torch.randn(n_out, n_in, generator=gen) * math.sqrt(gain / n_in))
            if bias:
                linear.bias.zero_()
        layers += [linear, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def export(net: torch.nn.Sequential, mean: np.ndarray, std: np.ndarray) -> Tower:
    """A numpy copy of the net's parameters (a snapshot: later steps do not change it)."""
    layers = [
        (
            m.weight.detach().numpy().T.copy(),
            None if m.bias is None else m.bias.detach().numpy().copy(),
        )
        for m in net
        if isinstance(m, torch.nn.Linear)
    ]
    return Tower(mean, std, layers)


def epoch_pairs(
    caption_image: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Every image once, in random order, with one of its captions drawn at random.

    An epoch is a pass over images, not captions: a batch never holds two captions of one image
    (which InfoNCE would count as a false negative), and across epochs every caption is used.
    """
    counts = np.bincount(caption_image)
    by_image = np.argsort(caption_image, kind="stable")
    starts = np.cumsum(counts) - counts
    images = rng.permutation(np.flatnonzero(counts))
    pick = np.minimum(
        (rng.random(len(images)) * counts[images]).astype(np.int64), counts[images] - 1
    )
    return images, by_image[starts[images] + pick]


def info_nce(zv: torch.Tensor, zt: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of a batch of matched (image, caption) rows of distinct images."""
    logits = logit_scale.clamp(max=math.log(MAX_LOGIT_SCALE)).exp() * zv @ zt.T
    target = torch.arange(len(zv))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def text_to_image_r1(zv: torch.Tensor, zt: torch.Tensor, caption_image: torch.Tensor) -> float:
    """Share of captions whose own image scores highest: the early-stopping metric, in float32
    torch on the training threads (exact ties, which ``metrics`` breaks at random, have
    probability zero for learned continuous features)."""
    best = torch.cat([(block @ zv.T).argmax(dim=1) for block in zt.split(4096)])
    return float((best == caption_image).double().mean())


def check_fit_inputs(V_train, T_train, V_dev, T_dev, **settings) -> None:
    """Raise AlignfuseError, naming the setting, for widths or settings that cannot be fitted."""
    if V_train.shape[1] != V_dev.shape[1] or T_train.shape[1] != T_dev.shape[1]:
        raise AlignfuseError(
            f"train and dev features differ in width (image {V_train.shape[1]} vs "
            f"{V_dev.shape[1]}, text {T_train.shape[1]} vs {T_dev.shape[1]}): "
            "use one encoder's features for every split"
        )
    for name, least in (("dim", 1), ("epochs", 1), ("batch_size", 2), ("patience", 1)):
        if int(settings[name]) < least:
            raise AlignfuseError(f"contrastive '{name}' is {settings[name]}; use {least} or more")
    if settings["hidden"] is not None and int(settings["hidden"]) < 1:
        raise AlignfuseError(f"contrastive 'hidden' is {settings['hidden']}; use null or >= 1")
    if not 1 / MAX_LOGIT_SCALE <= settings["temperature_init"] <= 1:
        raise AlignfuseError(
            f"contrastive 'temperature_init' is {settings['temperature_init']}; "
            f"use a value in [{1 / MAX_LOGIT_SCALE}, 1] (CLIP starts at 0.07)"
        )
    if not settings["lr"] > 0:
        raise AlignfuseError(f"contrastive 'lr' is {settings['lr']}; use a positive rate")
    if not settings["weight_decay"] >= 0:
        raise AlignfuseError(
            f"contrastive 'weight_decay' is {settings['weight_decay']}; use 0 or more"
        )


def fit_projections(
    V_train: np.ndarray,
    T_train: np.ndarray,
    caption_image_train: np.ndarray,
    V_dev: np.ndarray,
    T_dev: np.ndarray,
    caption_image_dev: np.ndarray,
    dim: int = 256,
    hidden: int | None = None,
    epochs: int = 100,
    batch_size: int = 512,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    temperature_init: float = 0.07,
    patience: int = 5,
    min_delta: float = 1e-3,
    seed: int = 0,
    threads: int = 1,
) -> Projection:
    """Fit the two towers on train pairs; keep the epoch with the best dev text->image R@1.

    An epoch visits every train image once, paired with a random one of its captions. Training
    stops after ``patience`` epochs without a dev R@1 above the best by more than ``min_delta``,
    and the towers of the best epoch are kept. The record holds per epoch the mean train loss,
    the dev R@1 and the temperature (1 / logit scale); then the best epoch (1-based), the
    temperature of that epoch (``final_temperature``), the epochs run and the seconds taken.
    """
    check_fit_inputs(
        V_train,
        T_train,
        V_dev,
        T_dev,
        dim=dim,
        hidden=hidden,
        epochs=epochs,
        batch_size=batch_size,
        patience=patience,
        temperature_init=temperature_init,
        lr=lr,
        weight_decay=weight_decay,
    )
    caption_image_train = check_pairing(V_train, T_train, caption_image_train)
    caption_image_dev = check_pairing(V_dev, T_dev, caption_image_dev)
    started = time.perf_counter()
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        stats_v, stats_t = standardiser(V_train), standardiser(T_train)

        def inputs(x, stats):
            return torch.from_numpy(
                ((np.asarray(x, np.float64) - stats[0]) / stats[1]).astype(np.float32)
            )

        xv, xt = inputs(V_train, stats_v), inputs(T_train, stats_t)
        dev_v, dev_t = inputs(V_dev, stats_v), inputs(T_dev, stats_t)
        dev_image = torch.from_numpy(caption_image_dev)
        image_net = make_net(xv.shape[1], hidden, dim, gen)
        text_net = make_net(xt.shape[1], hidden, dim, gen)
        logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / temperature_init)))
        weights = [p for net in (image_net, text_net) for p in net.parameters() if p.ndim == 2]
        others = [p for net in (image_net, text_net) for p in net.parameters() if p.ndim < 2]
        optimiser = torch.optim.AdamW(
            [
                {"params": weights, "weight_decay": weight_decay},
                {"params": [*others, logit_scale], "weight_decay": 0.0},
            ],
            lr=lr,
        )
        record = {"train_loss": [], "dev_text_to_image_R@1": [], "temperature": []}
        best_r1, best, wait = -1.0, None, 0
        n_batches = max(1, round(len(xv) / batch_size))
        for epoch in range(1, epochs + 1):
            losses = []
            images, captions = epoch_pairs(caption_image_train, rng)
            for batch in np.array_split(np.arange(len(images)), n_batches):
                image, caption = torch.from_numpy(images[batch]), torch.from_numpy(captions[batch])
                zv = F.normalize(image_net(xv[image]), dim=1)
                zt = F.normalize(text_net(xt[caption]), dim=1)
                loss = info_nce(zv, zt, logit_scale)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                with torch.no_grad():
                    logit_scale.clamp_(0.0, math.log(MAX_LOGIT_SCALE))
                losses.append(loss.item())
            with torch.no_grad():
                zv = F.normalize(image_net(dev_v), dim=1)
                zt = F.normalize(text_net(dev_t), dim=1)
            r1 = text_to_image_r1(zv, zt, dev_image)
            record["train_loss"].append(float(np.mean(losses)))
            record["dev_text_to_image_R@1"].append(r1)
            record["temperature"].append(math.exp(-logit_scale.item()))
            if r1 > best_r1 + min_delta:
                best_r1, wait = r1, 0
                best = (
                    export(image_net, *stats_v),
                    export(text_net, *stats_t),
                    math.exp(logit_scale.item()),
                    epoch,
                )
            else:
                wait += 1
                if wait >= patience:
                    break
    finally:
        torch.set_num_threads(threads_before)
    image_tower, text_tower, scale, best_epoch = best
    record.update(
        best_epoch=best_epoch,
        epochs=len(record["train_loss"]),
        final_temperature=1 / scale,
        seconds=time.perf_counter() - started,
    )
    return Projection(image_tower, text_tower, scale, record)
