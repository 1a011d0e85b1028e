"""A small matching task that needs both modalities, and a minimal loop that trains fusion heads on it.

Shared by the tests of the fusion heads (tests/test_fusion_*.py). Training goes through
:class:`alignfuse.train.ensemble.SeedEnsemble`, so every head is trained the way the workflow trains it:
seeds stacked and the head run under ``torch.func.vmap``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alignfuse.features.rows import PooledRows, TokenRows
from alignfuse.fusion.build import build_head
from alignfuse.train.ensemble import SeedEnsemble
from alignfuse.train.splits import Split

torch.set_num_threads(1)  # the tests are sized for one thread per process

D = 8
LEARNS = 0.8  # test accuracy every seed of a fusion head must beat
CHANCE = (0.42, 0.58)  # where a head that cannot see the pair must stay (400 test pairs)


def pairs_of(items: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(image row, caption row) per pair: item i's image with its own caption, then with another's.

    Each positive (i, i) has a negative (i, j) with j = next(i) along one random cycle through the
    items, so every image and every caption occurs exactly once with either label: neither
    modality alone says anything about the label, only their agreement does.
    """
    cycle = torch.randperm(items, generator=generator)
    other = torch.empty(items, dtype=torch.long)
    other[cycle] = cycle.roll(-1)
    every = torch.arange(items)
    return torch.cat([every, every]), torch.cat([every, other])


def labels(items: int) -> torch.Tensor:
    return torch.cat([torch.ones(items), torch.zeros(items)]).long()


def matching_split(items: int, generator: torch.Generator, noise: float = 0.1) -> Split:
    """Items with an image v ~ N(0, I) and a caption t = v + noise (pooled vectors)."""
    image = torch.randn(items, D, generator=generator)
    text = image + noise * torch.randn(items, D, generator=generator)
    image_row, text_row = pairs_of(items, generator)
    return Split(PooledRows(image), PooledRows(text), labels(items), image_row, text_row)


def token_matching_split(
    items: int, generator: torch.Generator, image_tokens: int = 6, noise: float = 0.1
) -> Split:
    """Images of ``image_tokens`` tokens ~ N(0, I); a caption is 2..5 of its image's tokens + noise.

    Captions are ragged. A caption matches when each of its tokens has a close key among the
    image's tokens: the question token-level cross-attention answers.
    """
    image = torch.randn(items, image_tokens, D, generator=generator)
    lengths = torch.randint(2, 6, (items,), generator=generator)
    picks = [torch.randperm(image_tokens, generator=generator)[:n] for n in lengths.tolist()]
    text = torch.cat([image[i, p] for i, p in enumerate(picks)])
    text = text + noise * torch.randn(text.shape, generator=generator)
    image_rows = TokenRows(
        image.reshape(-1, D).half(),
        torch.arange(items) * image_tokens,
        torch.full((items,), image_tokens),
    )
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
    text_rows = TokenRows(text.half(), offsets, lengths)
    image_row, text_row = pairs_of(items, generator)
    return Split(image_rows, text_rows, labels(items), image_row, text_row)


def matching_task(
    train_items: int = 400, test_items: int = 200, tokens: bool = False
) -> tuple[Split, Split]:
    generator = torch.Generator().manual_seed(0)
    make = token_matching_split if tokens else matching_split
    return make(train_items, generator), make(test_items, generator)


def matching_accuracy(
    method: str,
    config: dict,
    seeds=(0, 1),
    epochs: int = 15,
    lr: float = 3e-3,
    batch_size: int = 64,
    tokens: bool = False,
) -> list[float]:
    """Train ``method`` on the task's train split for every seed at once; test accuracy per seed.

    ``tokens``: the token-sequence task (for heads with ``token_source: encoder``).
    """
    train, test = matching_task(tokens=tokens)
    model = SeedEnsemble(method, config, D, D, list(seeds))
    optimizer = torch.optim.AdamW(model.params.values(), lr=lr, weight_decay=0.01)
    orders = [torch.Generator().manual_seed(seed) for seed in seeds]
    torch.manual_seed(0)
    for _ in range(epochs):
        model.train()
        order = torch.stack([torch.randperm(len(train), generator=g) for g in orders])
        for i in range(0, len(train), batch_size):
            idx = order[:, i : i + batch_size]
            logits = model(*train.inputs(idx))
            loss = F.cross_entropy(logits.transpose(1, 2), train.label[idx], reduction="none")
            optimizer.zero_grad(set_to_none=True)
            loss.mean(dim=1).sum().backward()
            optimizer.step()
    predictions = model.predict(test).argmax(dim=-1)
    return (predictions == test.label).double().mean(dim=1).tolist()


def assert_vmap_matches_each_seed(method: str, config: dict, d_image: int = 12, d_text: int = 10):
    """Seeds stacked and run under vmap give each seed's own head's output (eval mode)."""
    seeds = [3, 7]
    ensemble = SeedEnsemble(method, config, d_image, d_text, seeds)
    image = torch.randn(5, d_image).expand(2, 5, d_image)  # the same pairs for both seeds
    text = torch.randn(5, d_text).expand(2, 5, d_text)
    ensemble.train()
    assert ensemble(image, text).shape == (2, 5, 2)  # training mode: per-seed dropout masks
    ensemble.eval()
    stacked = ensemble(image, text)
    for s, seed in enumerate(seeds):
        torch.manual_seed(seed)
        alone = build_head(method, d_image, d_text, config).eval()
        torch.testing.assert_close(stacked[s], alone(image[s], text[s]))
    assert not torch.allclose(stacked[0], stacked[1])  # each seed has its own initialisation
