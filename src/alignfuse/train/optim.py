"""The optimiser of a seed ensemble: one fused AdamW step over every seed's slice of the stacked
parameters, and its surgery when seeds stop (the survivors keep their moments)."""

from __future__ import annotations

import torch


class SeedAdamW:
    """AdamW over stacked parameters [S, ...] that updates each seed's slice as a tensor of its own.

    AdamW is elementwise, so an AdamW over the stack would be S independent AdamWs in exact
    arithmetic; but the fused CPU kernel takes vector or scalar paths by an element's position in
    the tensor it is given, and those round differently, so over the stack a seed's numbers would
    depend (by ~1e-7) on how many seeds train beside it. Given each seed's slice as a separate
    tensor (a view of the stack; its gradient the matching slice of the stack's), the kernel
    treats a seed the same in a stack of any size, at the fused kernel's speed (the foreach
    implementation is also exact, but slower: benchmarks/README.md). One step still serves every
    seed and parameter.
    """

    def __init__(self, params, cfg: dict):
        self.stacked = list(params)
        # leaves of their own that share the stack's memory: the optimiser updates it in place
        self.slices = [
            [p.detach()[s].requires_grad_() for s in range(len(p))] for p in self.stacked
        ]
        flat = [view for views in self.slices for view in views]
        kwargs = {"lr": cfg["lr"], "weight_decay": cfg["weight_decay"]}
        try:
            self.adamw = torch.optim.AdamW(flat, fused=True, **kwargs)
        except RuntimeError:  # no fused kernel for this device or dtype
            self.adamw = torch.optim.AdamW(flat, foreach=True, **kwargs)

    def set_lr(self, lr: float) -> None:
        """Use rate ``lr`` from the next step on, for every seed and parameter alike."""
        for group in self.adamw.param_groups:
            group["lr"] = lr

    def zero_grad(self) -> None:
        """Drop the stack's gradients (the slices' are reassigned at each step)."""
        for p in self.stacked:
            p.grad = None

    def step(self) -> None:
        """One AdamW step of every seed from the stack's gradients."""
        for p, views in zip(self.stacked, self.slices, strict=True):
            for s, view in enumerate(views):
                view.grad = None if p.grad is None else p.grad[s]
        self.adamw.step()

    def seed_state(self, parameter: int, position: int) -> dict:
        """The moments and step count of one seed's slice of one stacked parameter."""
        return self.adamw.state[self.slices[parameter][position]]


def adamw(params, cfg: dict) -> SeedAdamW:
    """AdamW with the config's lr and weight decay over stacked parameters (:class:`SeedAdamW`)."""
    return SeedAdamW(params, cfg)


def keep_optimizer_seeds(
    optimizer: SeedAdamW, new: dict, index: torch.Tensor, cfg: dict
) -> SeedAdamW:
    """A fresh optimiser over ``new`` params (the optimiser's own parameters, in the same order,
    with only the seeds at ``index`` kept) carrying those seeds' state."""
    fresh = adamw(new.values(), cfg)
    for parameter in range(len(new)):
        for position, seed in enumerate(index.tolist()):
            state = optimizer.seed_state(parameter, seed)
            fresh.adamw.state[fresh.slices[parameter][position]] = {
                key: value.clone() for key, value in state.items()
            }
    return fresh
