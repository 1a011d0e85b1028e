"""S copies of one fusion head trained as one: parameters stacked per seed, a vmapped forward.

One forward/backward and one optimiser step serve all seeds, so S small heads cost one batched
pass (a Linear layer becomes one bmm over the seeds), while each seed keeps its own parameters.
"""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from alignfuse.fusion.build import build_head
from alignfuse.fusion.layers import Dropout
from alignfuse.train.splits import CPU, Split

# Pairs per evaluation forward pass (divided by the tokens per pair of token features), the same
# whatever the number of seeds, so that a seed's evaluation is computed in the same chunks in a
# study of any size. With five seeds a chunk is 2,560 rows: big enough for efficient matmuls,
# small enough that a head's temporaries (the cross-attention FFN holds ~16 KB per pair) stay
# near glibc's 32 MiB mmap threshold, beyond which every temporary is page-faulted in afresh.
EVAL_PAIRS = 512
# A seed's dropout masks come from np.random.SeedSequence([seed, DROPOUT_STREAM]).
DROPOUT_STREAM = 1


class Part(torch.nn.Module):
    """One method of a head (``encode_image``, ``encode_text`` or ``combine``) as a module, so
    that ``functional_call`` can run it with a seed's parameters (``head.``-prefixed)."""

    def __init__(self, head: torch.nn.Module, name: str):
        super().__init__()
        self.head, self.name = head, name

    def forward(self, *args):
        return getattr(self.head, self.name)(*args)


def seed_stream(seed: int, stream: int) -> torch.Generator:
    """A CPU generator that depends on ``seed`` and the kind of draw ``stream`` only."""
    state = np.random.SeedSequence([seed, stream]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


class SeedEnsemble:
    """S copies of one head with stacked parameters [S, ...] and one vmapped functional forward.

    Seed s's copy is built right after ``torch.manual_seed(s)``, so its initialisation depends only
    on s. Train/eval mode lives on the parameter-less ``base`` module that ``functional_call``
    runs, so ``train()``/``eval()`` switch dropout for every seed at once. In training, each
    seed's dropout masks are drawn from its own generator (:func:`seed_stream`) and passed in
    as buffers, so a seed's numbers do not depend on which other seeds train beside it.

    ``params`` are the leaf tensors that an optimiser updates, one row per seed. After
    :meth:`adopt_grad_layout` a leaf may hold its parameter with dimensions permuted (always
    contiguous, seeds first); :meth:`weights` gives every parameter in the head's own shape.
    """

    def __init__(
        self,
        head: str,
        head_config: dict,
        d_image: int,
        d_text: int,
        seeds: list[int],
        device: torch.device = CPU,
        label: str | None = None,
    ):
        models = []
        for seed in seeds:
            torch.manual_seed(seed)  # on the CPU: a seed's initialisation is the same on any device
            models.append(build_head(head, d_image, d_text, head_config, label))
        self.head = head
        self.n_params = sum(p.numel() for p in models[0].parameters())
        self.hparams = models[0].hparams  # the constructor's arguments, param_match resolved
        params, buffers = stack_module_state(models)
        self.params = {k: p.detach().to(device).requires_grad_() for k, p in params.items()}
        self.buffers = {k: b.to(device) for k, b in buffers.items()}
        self.base = copy.deepcopy(models[0]).to("meta")
        self.unpermute: dict[str, list[int]] = {}  # leaf dims -> the head's dims, where permuted
        # what the head reads: "pooled" vectors, "pseudo" tokens cut from them, or "encoder" tokens
        self.token_source = getattr(models[0], "token_source", "pooled")
        self.pseudo_tokens = getattr(models[0], "pseudo_tokens", None)
        self.dropout = {
            name: module.p
            for name, module in models[0].named_modules()
            if isinstance(module, Dropout) and module.p > 0
        }
        self.mask_shapes: dict[str, tuple[int, ...]] = {}  # per pair, as large as inputs get
        self.streams = [seed_stream(seed, DROPOUT_STREAM) for seed in seeds]
        self.device = device
        # the query and key projections: their gradients show whether attention is learning
        self.score_params = [k for k in self.params if re.search(r"\.(q|k)\.weight$", k)]
        self._batched = vmap(self.forward, randomness="different")
        self._shared = vmap(self.forward, in_dims=(0, 0, None))
        self._entropy = vmap(self.entropy_forward, in_dims=(0, 0, None))
        # heads whose pair computation splits into per-image and per-caption parts and a join
        self.factored = all(
            hasattr(self.base, m) for m in ("encode_image", "encode_text", "combine")
        )
        self._parts = {m: Part(self.base, m) for m in ("encode_image", "encode_text", "combine")}
        self._encode = {
            m: vmap(self.part_forward(m), in_dims=(0, 0, None))
            for m in ("encode_image", "encode_text")
        }
        self._combine = vmap(self.part_forward("combine"), in_dims=(0, 0, 0, 0))

    def forward(self, params, buffers, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """One seed's head with the given parameters (the function that vmap maps over seeds)."""
        return functional_call(self.base, (params, buffers), inputs)

    def part_forward(self, name: str):
        """One seed's ``name`` part of the head, with the given parameters (for vmap)."""
        part = self._parts[name]

        def run(params, buffers, *args):
            prefixed = {f"head.{k}": v for k, v in params.items()}
            prefixed |= {f"head.{k}": v for k, v in buffers.items()}
            return functional_call(part, prefixed, args)

        return run

    def entropy_forward(self, params, buffers, inputs: tuple[torch.Tensor, ...]):
        """One seed's head returning (logits, attention entropy, its ceiling) per pair."""
        return functional_call(self.base, (params, buffers), inputs, {"return_entropy": True})

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
        """Per-seed batches of a split's inputs (:meth:`Split.inputs` of [S, B]) -> logits [S, B, 2].

        In training mode every dropout site gets each seed's mask from that seed's stream.
        """
        buffers = self.buffers
        if self.base.training and self.dropout:
            if not self.mask_shapes:
                self.measure_dropout(*inputs)
            buffers = {**buffers, **self.dropout_masks(inputs[0].shape[1])}
        return self._batched(self.weights(), buffers, inputs)

    def measure_dropout(self, *inputs: torch.Tensor) -> None:
        """Record the per-pair input shape of every dropout site from one training-mode pass.

        Pass the pairs with the longest token sequences: masks are drawn at these shapes and each
        site uses the leading block that its input needs.
        """
        handles = [
            self.base.get_submodule(name).register_forward_pre_hook(
                lambda module, args, name=name: self.mask_shapes.update({name: args[0].shape[1:]})
            )
            for name in self.dropout
        ]
        mode = self.base.training
        self.train()
        try:
            with torch.no_grad():
                self._batched(self.weights(), self.buffers, inputs)
        finally:
            for handle in handles:
                handle.remove()
            self.base.train(mode)

    def dropout_masks(self, batch: int) -> dict[str, torch.Tensor]:
        """Scaled keep-masks [S, batch, ...] of every dropout site, seed s's from its own stream."""
        sizes = {name: batch * math.prod(self.mask_shapes[name]) for name in self.dropout}
        uniform = torch.empty(len(self.streams), sum(sizes.values()))
        for row, stream in zip(uniform, self.streams, strict=True):
            torch.rand(row.shape, generator=stream, out=row)
        masks, start = {}, 0
        for name, p in self.dropout.items():
            u = uniform[:, start : start + sizes[name]].view(-1, batch, *self.mask_shapes[name])
            masks[f"{name}.mask"] = ((u >= p) * (1.0 / (1.0 - p))).to(self.device)
            start += sizes[name]
        return masks

    @torch.no_grad()
    def predict(self, split: Split, factored: bool = True) -> torch.Tensor:
        """Every seed on the same pairs, in eval mode: logits [S, N, 2], on the CPU.

        Heads that split into per-image and per-caption parts (pooled features) compute each
        part once per distinct image and caption of the split and join them per pair: the same
        mathematics as the per-pair forward, with different rounding (``factored=False`` runs
        the per-pair forward).
        """
        self.eval()
        weights = self.weights()
        if factored and self.factored and not split.tokens:
            return self.predict_factored(split, weights)
        step = max(1, int(EVAL_PAIRS / split.tokens_per_pair))
        logits = []
        for i in range(0, len(split), step):
            index = torch.arange(i, min(i + step, len(split)), device=split.label.device)
            logits.append(self._shared(weights, self.buffers, split.inputs(index)))
        return torch.cat(logits, dim=1).cpu()

    def predict_factored(self, split: Split, weights: dict) -> torch.Tensor:
        """:meth:`predict` through the parts: encode each distinct row once, join per pair."""
        codes = {}
        for name, rows, index in (
            ("encode_image", split.image, split.image_row),
            ("encode_text", split.text, split.text_row),
        ):
            distinct, position = torch.unique(index, return_inverse=True)
            (values,) = rows.gather(distinct)
            codes[name] = (self._encode[name](weights, self.buffers, values), position)
        (image, image_at), (text, text_at) = codes["encode_image"], codes["encode_text"]
        logits = []
        for i in range(0, len(split), EVAL_PAIRS):
            chunk = slice(i, min(i + EVAL_PAIRS, len(split)))
            logits.append(
                self._combine(
                    weights, self.buffers, image[:, image_at[chunk]], text[:, text_at[chunk]]
                )
            )
        return torch.cat(logits, dim=1).cpu()

    @torch.no_grad()
    def attention_entropy(self, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean attention entropy per seed [S] over the split's first pairs, and its ceiling (the
        mean log number of keys), in nats, in eval mode; NaN for heads without attention."""
        if not self.score_params:
            nan = torch.full((len(self),), math.nan)
            return nan, nan
        self.eval()
        index = torch.arange(min(EVAL_PAIRS, len(split)), device=split.label.device)
        _, entropy, ceiling = self._entropy(self.weights(), self.buffers, split.inputs(index))
        return entropy.mean(dim=1).cpu(), ceiling.mean(dim=1).cpu()

    def score_grad_norm(self) -> torch.Tensor:
        """Per seed [S], the norm of the last gradient of the query and key projections (NaN for
        heads without attention): near zero while attention sits on a plateau."""
        if not self.score_params:
            return torch.full((len(self),), math.nan, device=self.device)
        squares = [self.params[k].grad.flatten(1).pow(2).sum(dim=1) for k in self.score_params]
        return torch.stack(squares).sum(dim=0).sqrt()

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
        self.streams = [self.streams[i] for i in index.tolist()]

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
