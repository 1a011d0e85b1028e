"""Training-grid benchmark: per-job overhead, achieved FLOP/s against the matmul peak, peak memory.

Runs a small grid of `alignfuse train` jobs, each as its own process exactly as the workflow's
train rule runs it, on Flickr8k-sized cached features (8,091 images, 40,455 captions, 512-d,
synthetic by default so it runs offline). For every job it reports:

- wall: the subprocess end to end; overhead: interpreter start, imports, CLI and writing outputs
  (wall - the job's own wall_s) plus reading pairs and features (load_s), as a share of wall;
- achieved FLOP/s over the training loop (train_s: optimiser steps and dev evaluations), with
  the steps' and evaluations' FLOPs counted by torch.utils.flop_counter on one step of the same
  seed-stacked head, against the float32 matmul peak measured in this run at the same threads;
- peak RSS of the job's process.

A job ``METHOD:N:tokens`` trains the head with ``token_source: encoder`` on token files of
Flickr8k's shape (49 image tokens, ragged captions of about 16 tokens, 512-d, float16 on disk).

    python benchmarks/train_grid.py                       # 3 jobs, 1 thread: ~3-5 min on 2 cores
    python benchmarks/train_grid.py --threads 2 --jobs concat:2048,concat:16384
    python benchmarks/train_grid.py --jobs xattn_txt2img:16384:tokens --max-epochs 1
    python benchmarks/train_grid.py --features-dir DIR --pairs-dir results/pairs/flickr8k
    python benchmarks/train_grid.py --adamw --jobs concat:2048,xattn_txt2img:2048

``--adamw`` times each job's training loop in this process instead, in turn with the job's AdamW
(fused, per seed) and with torch's fused and foreach AdamW over the stacked parameters, and
reports CPU seconds per seed-epoch, and of one optimiser step alone, with their ratios.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from _common import ROOT, matmul_peak, run_measured, study_heads
from torch.utils.flop_counter import FlopCounterMode

from alignfuse.data.pairs import make_pairs
from alignfuse.data.synthetic import synthetic_captions
from alignfuse.features.synthetic import synthetic_features
from alignfuse.parquet import TokenWriter, read_embeddings, write_embeddings, write_frame
from alignfuse.train.condition import fit
from alignfuse.train.ensemble import SeedEnsemble
from alignfuse.train.optim import adamw
from alignfuse.train.splits import load_splits

# Flickr8k: 6000/1000/1000 official images per split (+91 unlisted, here in test), 5 captions each.
FLICKR8K = {"n_images": 8091, "captions_per_image": 5, "train": 6000, "dev": 1000}
# The study's heads (config.yaml); a method not listed runs with its constructor's defaults.
HEADS = study_heads("concat", "xattn_txt2img")


def synthetic_flickr8k(directory: Path, dim: int, shrink: int = 1) -> tuple[Path, Path, Path]:
    """Write Flickr8k-sized synthetic features and pairs; return (image, text, pairs dir).

    ``shrink`` divides every split's image count (a quick run's dev and test evaluations then
    cost that much less; the per-step cost of training is the same).
    """
    n, train, dev = (FLICKR8K[key] // shrink for key in ("n_images", "train", "dev"))
    cfg = {
        "n_images": n,
        "captions_per_image": FLICKR8K["captions_per_image"],
        # synthetic_split_images rounds down: nudge the fractions onto whole image counts
        "split": {
            "train": (train + 0.5) / n,
            "dev": (dev + 0.5) / n,
            "test": (n - train - dev - 1) / n,
        },
        "latent_dim": 16,
        "private_dim": 16,
        "private_scale": 1.0,
        "caption_noise": 0.5,
        "noise": 0.1,
        "d_image": dim,
        "d_text": dim,
        "seed": 0,
    }
    image_ids, image, caption_ids, text = synthetic_features(cfg, rotation=0.0)
    write_embeddings(directory / "image.parquet", "image_id", image_ids, image)
    write_embeddings(directory / "text.parquet", "caption_id", caption_ids, text)
    for split, frame in make_pairs(synthetic_captions(cfg), seed=0).items():
        write_frame(frame, directory / "pairs" / f"{split}.parquet")
    return directory / "image.parquet", directory / "text.parquet", directory / "pairs"


# Flickr8k captions through CLIP's tokenizer: about 16 tokens from start to end of text.
CAPTION_TOKENS = {"mean_words": 14, "least": 2, "most": 77}
IMAGE_TOKENS = 49  # ViT-B/32 patches at 224 px, or ResNet18's 7x7 layer4 grid


def synthetic_token_files(directory: Path, image: Path, text: Path) -> tuple[Path, Path]:
    """Token files with the ids of the pooled files: each token is its row's vector plus noise."""
    rng = np.random.default_rng(0)
    out = []
    for path, id_column in ((image, "image_id"), (text, "caption_id")):
        ids, pooled = read_embeddings(path)
        target = directory / f"{path.stem}_tokens.parquet"
        with TokenWriter(target, id_column, pooled.shape[1]) as writer:
            for start in range(0, len(ids), 1024):
                rows = pooled[start : start + 1024]
                if id_column == "image_id":
                    lengths = np.full(len(rows), IMAGE_TOKENS)
                else:
                    lengths = CAPTION_TOKENS["least"] + rng.poisson(
                        CAPTION_TOKENS["mean_words"], len(rows)
                    )
                    lengths = lengths.clip(max=CAPTION_TOKENS["most"])
                sequences = [
                    row + 0.1 * rng.standard_normal((n, len(row)), dtype=np.float32)
                    for row, n in zip(rows, lengths, strict=True)
                ]
                writer.write(ids[start : start + 1024], sequences)
        out.append(target)
    return out[0], out[1]


def flops_per_pair(
    spec: dict, image: Path, text: Path, pairs: Path, batch: int
) -> tuple[float, float]:
    """(training FLOPs, evaluation FLOPs) per pair and seed: one step of the stacked head, counted.

    Training is forward + backward of the seed-stacked head under vmap, as the job runs it, on a
    batch of the job's own training pairs (token batches padded as the job pads them); evaluation
    is the no-grad forward over shared dev pairs. Matmul-type operations only, as
    FlopCounterMode counts.
    """
    seeds = spec["seeds"]
    torch.manual_seed(0)
    data = load_splits(image, text, pairs, len(seeds) * batch)
    train, dev = data["train"], data["dev"]
    model = SeedEnsemble(spec["head"], spec["hparams"], train.image.dim, train.text.dim, seeds)
    index = torch.randperm(len(seeds) * batch).view(len(seeds), batch)
    model.adopt_grad_layout(*train.inputs(index))
    model.train()
    with FlopCounterMode(display=False) as counter:
        logits = model(*train.inputs(index))
        F.cross_entropy(logits.flatten(0, 1), train.label[index.flatten()]).backward()
    train_flops = counter.get_total_flops() / (len(seeds) * batch)
    dev.label, dev.image_row, dev.text_row = (
        t[:batch] for t in (dev.label, dev.image_row, dev.text_row)
    )
    with FlopCounterMode(display=False) as counter:
        model.predict(dev)
    return train_flops, counter.get_total_flops() / (len(seeds) * batch)


def job_spec(method: str, tokens: bool, args) -> dict:
    head = HEADS.get(method, {})
    return {
        "method": method,
        "head": method,
        "hparams": {**head, "token_source": "encoder"} if tokens else head,
        "training": {
            "max_epochs": args.max_epochs,
            "batch_size": args.batch_size,
            "lr": 1e-3,
            "weight_decay": 0.01,
            "patience": args.patience,
            "eval_every": 1,
        },
        "seeds": list(range(args.seeds)),
        "resample": "fixed",  # every seed on the first n pairs, as the per-run loop trains
        "scaling": args.scaling,
    }


def train_command() -> list[str]:
    """The console script the train rule calls (next to this interpreter), else the module."""
    script = Path(sys.executable).parent / "alignfuse"
    return [str(script)] if script.exists() else [sys.executable, "-m", "alignfuse.cli"]


def run_job(
    method: str, n: int, tokens: bool, args, image: Path, text: Path, pairs: Path, out: Path
) -> dict:
    spec = job_spec(method, tokens, args)
    name = f"{method}_n{n}{'_tokens' if tokens else ''}"
    runs_path, curves_path = out / f"{name}.parquet", out / f"{name}.curves.parquet"
    command = train_command() + [
        "train",
        f"--image-features={image}",
        f"--text-features={text}",
        f"--pairs-dir={pairs}",
        f"--n={n}",
        f"--spec={json.dumps(spec)}",
        f"--threads={args.threads}",
        "--label=dataset=bench",
        f"--out={runs_path}",
        f"--curves-out={curves_path}",
        f"--predictions-out={out / f'{name}.predictions.parquet'}",
        f"--fused-out={out / f'{name}.fused.parquet'}",
    ]
    job = run_measured(command)
    if job.returncode:
        sys.exit(f"job {method} n={n} failed ({job.returncode}):\n{job.output[-3000:]}")
    runs, curves = pd.read_parquet(runs_path), pd.read_parquet(curves_path)
    first = runs.iloc[0]
    return {
        "job": f"{method} n={n}" + (" tokens" if tokens else ""),
        "n": n,
        "spec": spec,
        "files": (image, text, pairs),
        "wall": job.wall_s,
        "cpu": job.cpu_s,
        "start": job.wall_s - first["wall_s"],  # interpreter, imports, CLI, writing outputs
        "load": first["load_s"],
        "train": first["train_s"],
        "eval": first["eval_s"],
        "seed_epochs": int(runs["epochs"].sum()),
        "accuracy": float(runs["test_accuracy"].mean()),
        "dev_evals": len(curves),
        "rss": job.max_rss,
    }


def per_run_loop(
    method: str,
    n: int,
    seed: int,
    image: Path,
    text: Path,
    pairs: Path,
    args,
    device: str = "cpu",
    heads: dict | None = None,
) -> dict:
    """One seed trained as a user would write it: per-pair tensors, a DataLoader, the head's own
    forward, AdamW, dev accuracy every epoch with early stopping; the baseline of the ratios.
    Tensors and head live on ``device``; ``heads`` replaces the study's hyper-parameters."""
    from torch.utils.data import DataLoader, TensorDataset

    from alignfuse.features.scaling import fit_scaler
    from alignfuse.fusion.build import build_head

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    image_ids, v = read_embeddings(image)
    caption_ids, t = read_embeddings(text)
    v_row, t_row = pd.Index(image_ids), pd.Index(caption_ids)

    def tensors(frame):
        return (
            torch.from_numpy(v[v_row.get_indexer(frame["image_id"])]),
            torch.from_numpy(t[t_row.get_indexer(frame["caption_id"])]),
            torch.from_numpy(frame["label"].to_numpy().astype(np.int64)),
        )

    train = tensors(pd.read_parquet(pairs / "train.parquet").iloc[:n])
    # the study's own input scaling, fitted on the training pairs' rows
    image_scaler, text_scaler = (fit_scaler(args.scaling, x) for x in train[:2])

    def scaled(data):
        return tuple(x.to(device) for x in (image_scaler(data[0]), text_scaler(data[1]), data[2]))

    train = scaled(train)
    dev = scaled(tensors(pd.read_parquet(pairs / "dev.parquet")))
    test = scaled(tensors(pd.read_parquet(pairs / "test.parquet")))
    torch.manual_seed(seed)
    head = build_head(method, v.shape[1], t.shape[1], (heads or HEADS).get(method, {}))
    head = head.to(device)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.01)
    loader = DataLoader(
        TensorDataset(*train),
        batch_size=args.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )

    @torch.no_grad()
    def accuracy(data):
        head.eval()
        hits = 0
        for i in range(0, len(data[2]), 1024):
            logits = head(data[0][i : i + 1024], data[1][i : i + 1024])
            hits += (logits.argmax(-1) == data[2][i : i + 1024]).sum().item()
        return hits / len(data[2])

    loop_started = time.perf_counter()
    best, stale, epochs, state = -1.0, 0, 0, None
    for epoch in range(1, args.max_epochs + 1):
        head.train()
        for x_v, x_t, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(head(x_v, x_t), y).backward()
            optimizer.step()
        epochs = epoch
        dev_acc = accuracy(dev)
        if dev_acc > best:
            best, stale = dev_acc, 0
            state = {k: x.clone() for k, x in head.state_dict().items()}
        else:
            stale += 1
            if stale >= args.patience:
                break
    loop = time.perf_counter() - loop_started
    head.load_state_dict(state)
    return {
        "loop_s": loop,
        "epochs": epochs,
        "test_accuracy": accuracy(test),
        "wall_s": time.perf_counter() - started,
    }


def baseline(method: str, n: int, args, image: Path, text: Path, pairs: Path) -> dict:
    """Every seed of a condition through :func:`per_run_loop`, one process each."""
    seeds = []
    for seed in range(args.seeds):
        command = [
            sys.executable,
            __file__,
            "--per-run",
            f"{method}:{n}:{seed}",
            f"--threads={args.threads}",
            f"--batch-size={args.batch_size}",
            f"--max-epochs={args.max_epochs}",
            f"--patience={args.patience}",
            f"--scaling={args.scaling}",
            f"--heads={args.heads}",
            f"--per-run-files={image},{text},{pairs}",
        ]
        job = run_measured(command)
        if job.returncode:
            sys.exit(f"per-run loop {method} n={n} seed {seed} failed:\n{job.output[-3000:]}")
        seeds.append(json.loads(job.output.strip().splitlines()[-1]) | {"process_wall": job.wall_s})
    return {
        "loop": sum(s["loop_s"] for s in seeds),
        "seed_epochs": sum(s["epochs"] for s in seeds),
        "wall": sum(s["process_wall"] for s in seeds),
        "accuracy": float(np.mean([s["test_accuracy"] for s in seeds])),
    }


def stacked_adamw(implementation: str):
    """AdamW over the stacked parameters as one tensor each, with torch's ``implementation``."""

    def build(params, cfg: dict) -> torch.optim.AdamW:
        kwargs = {"lr": cfg["lr"], "weight_decay": cfg["weight_decay"], implementation: True}
        return torch.optim.AdamW(list(params), **kwargs)

    return build


# The job's optimiser (fused, each seed's slice a tensor of its own) and the two AdamWs over the
# stack: fused (a seed's numbers depend on the stack's size by ~1e-7) and foreach (they do not).
ADAMW = {
    "per-seed fused": adamw,
    "stack fused": stacked_adamw("fused"),
    "stack foreach": stacked_adamw("foreach"),
}


def built_job(method: str, n: int, args, image: Path, text: Path, pairs: Path):
    """A job's spec, splits and seed ensemble, built as the train stage builds them."""
    spec = job_spec(method, False, args)
    cfg, seeds = spec["training"], spec["seeds"]
    data = load_splits(image, text, pairs, n, seeds=seeds, scaling=spec["scaling"])
    train = data["train"]
    model = SeedEnsemble(
        spec["head"], spec["hparams"], train.image.dim, train.text.dim, seeds, label=method
    )
    probe = torch.arange(min(cfg["batch_size"], n)).expand(len(seeds), -1)
    model.adopt_grad_layout(*train.inputs(probe))
    model.measure_dropout(*train.inputs(train.longest().expand(len(seeds), -1)))
    return spec, data, model


def adamw_loop(method: str, n: int, variant: str, args, image: Path, text: Path, pairs: Path):
    """One job's training loop (``fit``, as the train stage runs it) with the ``variant`` AdamW:
    CPU seconds of the loop and of its steps (the loop's CPU time less the dev evaluations'
    share of its wall time), and the seed-epochs and steps it trained."""
    spec, data, model = built_job(method, n, args, image, text, pairs)
    cfg, seeds = spec["training"], spec["seeds"]
    optimizer = ADAMW[variant](model.params.values(), cfg)
    cpu, wall = time.process_time(), time.perf_counter()
    result = fit(model, optimizer, data["train"], data["dev"], cfg, seeds, f"{method} {variant}")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    steps = result.last_epoch * -(-n // min(cfg["batch_size"], n))  # no seed stopped early
    return {
        "loop": cpu,
        "steps": cpu * (1 - result.eval_s / wall),
        "seed_epochs": result.last_epoch * len(seeds),
        "n_steps": steps,
    }


def optimizer_steps(method: str, n: int, args, image: Path, text: Path, pairs: Path) -> dict:
    """CPU milliseconds of one optimiser step alone, per AdamW: the median over ``--repeats``
    rounds (the AdamWs in turn, each round 5 warm-up steps, then 30 timed) on one batch's
    gradients of the job's ensemble."""
    spec, data, model = built_job(method, n, args, image, text, pairs)
    cfg, seeds = spec["training"], spec["seeds"]
    index = torch.arange(len(seeds) * cfg["batch_size"]) % n
    logits = model(*data["train"].inputs(index.view(len(seeds), -1)))
    F.cross_entropy(logits.flatten(0, 1), data["train"].label[index]).backward()
    grads = {name: p.grad for name, p in model.params.items()}
    times = {variant: [] for variant in ADAMW}
    for round_ in range(args.repeats):
        order = list(ADAMW)[round_ % len(ADAMW) :] + list(ADAMW)[: round_ % len(ADAMW)]
        for variant in order:
            optimizer = ADAMW[variant](model.params.values(), cfg)
            for step in range(35):
                if step == 5:
                    started = time.process_time()
                for name, p in model.params.items():
                    p.grad = grads[name]
                optimizer.step()
            times[variant].append((time.process_time() - started) / 30 * 1e3)
    return {variant: float(np.median(t)) for variant, t in times.items()}


def adamw_row(first: list, cells: dict[str, str], against_stack: dict[str, str]) -> str:
    """A Markdown row: the leading cells, one cell per AdamW variant, then each variant other
    than the stacked fused one against it."""
    relative = ", ".join(f"{v}: {text}" for v, text in against_stack.items() if v != "stack fused")
    return "| " + " | ".join(map(str, [*first, *cells.values(), relative])) + " |"


def compare_adamw(jobs, args, image: Path, text: Path, pairs: Path) -> None:
    """Per job, the training loop with each AdamW of ``ADAMW`` in turn, ``--repeats`` rounds, and
    the optimiser step alone: median CPU seconds per seed-epoch (loop, and its steps alone), and
    the milliseconds of an optimiser step against those of a whole training step."""
    torch.set_num_threads(args.threads)
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])  # the first imports torch._dynamo
    args.patience = args.max_epochs  # no seed leaves the stack: every AdamW runs every step
    print(
        f"\nthreads={args.threads}, seeds={args.seeds}, batch={args.batch_size}, "
        f"max_epochs={args.max_epochs}, dim={args.dim}, heads from {args.heads.name}; "
        f"CPU time, median of {args.repeats} rounds\n"
    )
    loops, steps = [], []
    for method, n, _ in jobs:
        job = f"{method} n={n}"
        runs = {variant: [] for variant in ADAMW}
        for round_ in range(args.repeats):
            order = list(ADAMW)[round_ % len(ADAMW) :] + list(ADAMW)[: round_ % len(ADAMW)]
            for variant in order:  # each AdamW goes first in some rounds
                runs[variant].append(adamw_loop(method, n, variant, args, image, text, pairs))
        per = {
            variant: {
                part: float(np.median([r[part] / r[unit] for r in rows]))
                for part, unit in (("loop", "seed_epochs"), ("steps", "seed_epochs"))
            }
            | {"step": float(np.median([r["steps"] / r["n_steps"] for r in rows]))}
            for variant, rows in runs.items()
        }
        base = per["stack fused"]
        loops.append(
            adamw_row(
                [job, runs["stack fused"][0]["seed_epochs"]],
                {v: f"{t['loop']:.4f} ({t['steps']:.4f})" for v, t in per.items()},
                {
                    v: f"{t['loop'] / base['loop']:.3f} ({t['steps'] / base['steps']:.3f})"
                    for v, t in per.items()
                },
            )
        )
        alone = optimizer_steps(method, n, args, image, text, pairs)
        step_ms = base["step"] * 1e3  # a whole training step with the stacked fused AdamW
        steps.append(
            adamw_row(
                [job, f"{step_ms:.2f}"],
                {v: f"{ms:.3f}" for v, ms in alone.items()},
                {v: f"{(ms - alone['stack fused']) / step_ms:+.1%}" for v, ms in alone.items()},
            )
        )
    names = " | ".join(ADAMW)
    print("CPU s per seed-epoch, loop (its steps alone)\n")
    print(f"| job | seed-epochs | {names} | ÷ stack fused, loop (steps) |")
    print("|---|---|" + "---|" * (len(ADAMW) + 1))
    print("\n".join(loops))
    print("\nCPU ms of one optimiser step, against a whole training step (stack fused)\n")
    print(f"| job | training step | {names} | optimiser's extra share of a training step |")
    print("|---|---|" + "---|" * (len(ADAMW) + 1))
    print("\n".join(steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs",
        default="concat:2048,concat:16384,xattn_txt2img:2048",
        help="comma-separated METHOD:N_TRAIN[:tokens] jobs (default: %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=1, help="--threads of every job")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-epochs", type=int, default=5, help="caps each job's length")
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--dim", type=int, default=512, help="synthetic feature width")
    parser.add_argument(
        "--scaling", default="l2", help="features.scaling of every job (and of the per-run loop)"
    )
    parser.add_argument(
        "--features-dir",
        type=Path,
        help="real cached features: DIR/image.parquet, DIR/text.parquet",
    )
    parser.add_argument("--pairs-dir", type=Path, help="pairs for --features-dir (train/dev/test)")
    parser.add_argument("--work-dir", type=Path, help="keep generated features and runs here")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also run every job as a per-run loop (one process per seed) and report the ratios",
    )
    parser.add_argument(
        "--adamw",
        action="store_true",
        help="time each job's training loop in this process with the job's AdamW and with "
        "torch's fused and foreach AdamW over the stack, in turn, instead of running the jobs",
    )
    parser.add_argument("--repeats", type=int, default=3, help="--adamw: runs of each AdamW")
    parser.add_argument(
        "--heads",
        type=Path,
        default=ROOT / "config.yaml",
        help="the study whose heads the jobs train (default: %(default)s)",
    )
    parser.add_argument("--per-run", help=argparse.SUPPRESS)  # METHOD:N:SEED, one baseline seed
    parser.add_argument("--per-run-files", help=argparse.SUPPRESS)
    args = parser.parse_args()
    HEADS.update(study_heads(*HEADS, study=args.heads))
    if args.per_run:
        method, n, seed = args.per_run.split(":")
        image, text, pairs = map(Path, args.per_run_files.split(","))
        print(json.dumps(per_run_loop(method, int(n), int(seed), image, text, pairs, args)))
        return
    if bool(args.features_dir) != bool(args.pairs_dir):
        parser.error("--features-dir and --pairs-dir go together")
    jobs = []
    for job in args.jobs.split(","):
        method, n, *tokens = job.split(":")
        if tokens not in ([], ["tokens"]):
            parser.error(f"--jobs: '{job}' is not METHOD:N_TRAIN or METHOD:N_TRAIN:tokens")
        jobs.append((method, int(n), bool(tokens)))

    started = time.perf_counter()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="train_grid."))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.features_dir:
            image, text = args.features_dir / "image.parquet", args.features_dir / "text.parquet"
            pairs = args.pairs_dir
        elif (work / "pairs" / "test.parquet").exists():
            image, text, pairs = work / "image.parquet", work / "text.parquet", work / "pairs"
        else:
            print("writing Flickr8k-sized synthetic features ...", file=sys.stderr)
            image, text, pairs = synthetic_flickr8k(work, args.dim)
        tokens = {}
        if any(token_job for *_, token_job in jobs):
            tokens = {"image": work / "image_tokens.parquet", "text": work / "text_tokens.parquet"}
            if not tokens["text"].exists():
                print("writing Flickr8k-shaped token files ...", file=sys.stderr)
                synthetic_token_files(work, image, text)
        if args.adamw:
            compare_adamw(jobs, args, image, text, pairs)
            return
        n_dev = len(pd.read_parquet(pairs / "dev.parquet", columns=["label"]))

        peaks = [matmul_peak(args.threads)]
        results = []
        for method, n, token_job in jobs:
            print(f"running {method} n={n}{' on tokens' if token_job else ''} ...", file=sys.stderr)
            files = (tokens["image"], tokens["text"]) if token_job else (image, text)
            results.append(run_job(method, n, token_job, args, *files, pairs, work))
        if args.baseline:
            for r, (method, n, token_job) in zip(results, jobs, strict=True):
                if token_job:
                    continue
                print(f"running {method} n={n} as a per-run loop ...", file=sys.stderr)
                r["baseline"] = baseline(method, n, args, image, text, pairs)
        peaks.append(matmul_peak(args.threads))
        flops = [flops_per_pair(r["spec"], *r["files"], args.batch_size) for r in results]
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    peak = max(peaks)

    rows, totals = [], {"wall": 0.0, "overhead": 0.0, "flops": 0.0, "train": 0.0}
    for r, (train_pp, eval_pp) in zip(results, flops, strict=True):
        step_flops = r["seed_epochs"] * r["n"] * train_pp
        eval_flops = r["dev_evals"] * n_dev * eval_pp
        loop = (step_flops + eval_flops) / r["train"]
        steps = step_flops / max(r["train"] - r["eval"], 1e-9)
        overhead = r["start"] + r["load"]
        totals["wall"] += r["wall"]
        totals["overhead"] += overhead
        totals["flops"] += step_flops + eval_flops
        totals["train"] += r["train"]
        rows.append(
            f"| {r['job']} | {r['seed_epochs']} | {r['wall']:.1f} ({r['cpu']:.1f}) | "
            f"{r['start']:.1f} + {r['load']:.1f} | {overhead / r['wall']:.1%} | "
            f"{r['train']:.1f} ({r['eval']:.1f}) | {loop / 1e9:.1f} | {steps / 1e9:.1f} | "
            f"{eval_flops / max(r['eval'], 1e-9) / 1e9:.1f} | {peak / 1e9:.1f} | "
            f"{loop / peak:.0%} | {r['rss'] / 2**20:.0f} |"
        )
    print(
        f"\nthreads={args.threads}, seeds={args.seeds}, batch={args.batch_size}, "
        f"max_epochs={args.max_epochs}, dev pairs={n_dev}; "
        f"matmul peak {', '.join(f'{p / 1e9:.1f}' for p in peaks)} GFLOP/s (before, after)\n"
    )
    print(
        "| job | seed-epochs | wall s (cpu s) | start + load s | overhead | train s (eval s) | "
        "GFLOP/s loop | steps | evals | peak | loop/peak | peak RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    compared = [r for r in results if "baseline" in r]
    if compared:
        print(
            "\n| job | ours s per seed-epoch | per-run loop s per seed-epoch | ratio | "
            "ours accuracy | per-run accuracy |"
        )
        print("|---|---|---|---|---|---|")
        for r in compared:
            ours = r["train"] / r["seed_epochs"]
            theirs = r["baseline"]["loop"] / r["baseline"]["seed_epochs"]
            print(
                f"| {r['job']} | {ours:.3f} | {theirs:.3f} | {theirs / ours:.2f}x | "
                f"{r['accuracy']:.4f} | {r['baseline']['accuracy']:.4f} |"
            )
        ours_wall = sum(r["wall"] for r in compared)
        theirs_wall = sum(r["baseline"]["wall"] for r in compared)
        print(
            f"\nwhole grid end to end: ours {ours_wall:.1f} s in {len(compared)} job processes, "
            f"per-run loops {theirs_wall:.1f} s in {len(compared) * args.seeds} processes: "
            f"{theirs_wall / ours_wall:.2f}x"
        )
    print(
        f"\ngrid: {totals['wall']:.1f} s in jobs ({time.perf_counter() - started:.1f} s in all), "
        f"overhead {totals['overhead'] / totals['wall']:.1%} of job time, "
        f"{totals['flops'] / totals['train'] / 1e9:.1f} GFLOP/s over all training loops = "
        f"{totals['flops'] / totals['train'] / peak:.0%} of peak"
    )


if __name__ == "__main__":
    main()
