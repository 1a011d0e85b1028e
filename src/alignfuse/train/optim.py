"""The optimiser of a seed ensemble: one fused AdamW step over every seed's slice of the stacked
parameters, and its surgery when seeds stop (the survivors keep their moments)."""

from __future__ import annotations

import torch

# torch.optim.AdamW's defaults, which the study's recipe keeps
BETAS = (0.9, 0.999)
EPS = 1e-8


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

    The step is the fused kernel that ``torch.optim.AdamW(fused=True)`` runs, called as it calls
    it (the tests hold the two equal bit for bit): constructing a ``torch.optim`` optimiser
    imports TorchDynamo, about two CPU seconds per training job, longer than a smoke job trains.
    Devices without the fused kernel get ``torch.optim.AdamW(foreach=True)``.
    """

    def __init__(self, params, cfg: dict):
        self.stacked = list(params)
        # views that share the stack's memory: the kernel updates the stack in place
        self.slices = [[p.detach()[s] for s in range(len(p))] for p in self.stacked]
        self.lr, self.weight_decay = float(cfg["lr"]), float(cfg["weight_decay"])
        self.state: dict[tuple[int, int], dict[str, torch.Tensor]] = {}
        self.foreach = None
        if not all(fused_kernel_for(p) for p in self.stacked):
            leaves = [view.requires_grad_() for views in self.slices for view in views]
            self.foreach = torch.optim.AdamW(
                leaves, lr=self.lr, weight_decay=self.weight_decay, foreach=True
            )

    def set_lr(self, lr: float) -> None:
        """Use rate ``lr`` from the next step on, for every seed and parameter alike."""
        self.lr = float(lr)
        if self.foreach is not None:
            for group in self.foreach.param_groups:
                group["lr"] = self.lr

    def zero_grad(self) -> None:
        """Drop the stack's gradients (the slices' are taken from them at each step)."""
        for p in self.stacked:
            p.grad = None

    def step(self) -> None:
        """One AdamW step of every seed from the stack's gradients."""
        if self.foreach is not None:
            for p, views in zip(self.stacked, self.slices, strict=True):
                for s, view in enumerate(views):
                    view.grad = None if p.grad is None else p.grad[s]
            self.foreach.step()
            return
        groups: dict[tuple, list[list[torch.Tensor]]] = {}
        for i, (p, views) in enumerate(zip(self.stacked, self.slices, strict=True)):
            if p.grad is None:
                continue
            for s, view in enumerate(views):
                state = self.seed_state(i, s)
                group = groups.setdefault((view.device, view.dtype), [[], [], [], [], []])
                for tensors, tensor in zip(
                    group,
                    (view, p.grad[s], state["exp_avg"], state["exp_avg_sq"], state["step"]),
                    strict=True,
                ):
                    tensors.append(tensor)
        for views, grads, exp_avgs, exp_avg_sqs, steps in groups.values():
            torch._foreach_add_(steps, 1)
            torch._fused_adamw_(
                views,
                grads,
                exp_avgs,
                exp_avg_sqs,
                [],
                steps,
                amsgrad=False,
                lr=self.lr,
                beta1=BETAS[0],
                beta2=BETAS[1],
                weight_decay=self.weight_decay,
                eps=EPS,
                maximize=False,
                grad_scale=None,
                found_inf=None,
            )

    def seed_state(self, parameter: int, position: int) -> dict:
        """The moments and step count of one seed's slice of one stacked parameter (created at
        its first step, as torch.optim creates them)."""
        view = self.slices[parameter][position]
        if self.foreach is not None:
            return self.foreach.state[view]
        if (parameter, position) not in self.state:
            self.state[parameter, position] = {
                "step": torch.zeros((), dtype=torch.float32, device=view.device),
                "exp_avg": torch.zeros_like(view, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(view, memory_format=torch.preserve_format),
            }
        return self.state[parameter, position]


def fused_kernel_for(p: torch.Tensor) -> bool:
    """Whether torch has a fused AdamW kernel for ``p`` (the check torch.optim makes)."""
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    return p.device.type in _get_fused_kernels_supported_devices() and p.is_floating_point()


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
            state = fresh.seed_state(parameter, position)
            for key, value in optimizer.seed_state(parameter, seed).items():
                state[key] = value.clone()
    return fresh
