"""The optimiser of a seed ensemble: one fused AdamW over stacked parameters, and its surgery
when seeds stop (the survivors keep their moments)."""

from __future__ import annotations

import torch


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
