"""Training throughput, end to end with data loading: zoo's SimCLR and BYOL steps next to
lightly's default set-up, same backbone, batch, resolution and data, in one run.

    python benchmarks/train_throughput.py [--steps 8] [--batch 256] [--threads 1] [--out ...json]

lightly is installed in the benchmark's own environment, not zoo's (it pulls Lightning and
Hydra), with zoo and torch visible from it, e.g.::

    python -m venv /tmp/lv && SITE=/tmp/lv/lib/python3.11/site-packages
    # "0-" sorts before "__editable__...pth", whose finder module lives in zoo's venv
    echo "$PWD/.venv/lib/python3.11/site-packages" > $SITE/0-zoo-venv.pth   # torch + zoo's deps
    cp .venv/lib/python3.11/site-packages/__editable__.zoo_ssl-*.pth $SITE/  # zoo itself
    /tmp/lv/bin/pip install lightly     # check first: --dry-run must not list torch
    /tmp/lv/bin/python benchmarks/train_throughput.py

Both sides train the quarter-width CIFAR ResNet-18 (``resnet18_cifar_quarter``) on real
CIFAR-10 train images at 32 px with batch 256 and plain SGD, one process with
``--threads`` threads:

* lightly, as its docs and CIFAR-10 benchmark set it up: ``torchvision.datasets.ImageFolder``
  + lightly's ``SimCLRTransform`` / ``BYOLTransform`` (PIL, per sample, JPEG decoded every
  step) in a ``DataLoader`` (``--lightly-workers``, default 0: one process, the same budget),
  lightly's heads and losses, fp32, contiguous layout;
* zoo: the split decoded once into memory, views made by ``BatchedViews``, the method from
  ``zoo.training.methods``, bf16 autocast where it pays (``--precision auto``, the recipes'
  ``train.precision: auto``: CPUs with AVX-512 BF16 or AMX; fp32 elsewhere), channels-last and
  ``torch.compile`` where it pays (``--compile auto``, the recipes' ``train.compile: auto``: GPUs
  and CPUs with AMX tiles), as ``zoo train`` runs the CIFAR recipes.

Reported: views/s (median over ``--steps`` timed steps after 3 warm-up steps, each step
including its data; zoo's and lightly's steps alternate, so both see the same machine load)
and zoo / lightly ratios. Without lightly installed only zoo is measured.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe

from zoo.folder import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10" / "train"
ARCH = "resnet18_cifar_quarter"


class Setup(NamedTuple):
    """One side of a comparison: ``step(views)`` trains on one batch of views, ``batches``
    yields batches of views forever."""

    step: Callable[[list[torch.Tensor]], None]
    batches: Iterator[list[torch.Tensor]]
    backbone: torch.nn.Module
    optimizer: torch.optim.Optimizer


def _time_interleaved(setups: dict[str, Setup], steps: int, warmup: int = 3) -> dict[str, float]:
    """Median views/s of each set-up's ``step(batch)``, data loading included, timing the
    set-ups in turn step by step, so that on a shared machine every side sees the same load
    (comparing back-to-back runs there mostly measures the neighbours)."""
    rates: dict[str, list[float]] = {name: [] for name in setups}
    for i in range(warmup + steps):
        for name, setup in setups.items():
            start = time.perf_counter()
            views = next(setup.batches)
            setup.step(views)
            if i >= warmup:  # warm-up: compilation, first-call allocations, kernel selection
                rates[name].append(sum(len(v) for v in views) / (time.perf_counter() - start))
    return {name: statistics.median(r) for name, r in rates.items()}


def zoo_setup(method_name: str, batch: int, use_compile: bool = True, bf16: bool = True) -> Setup:
    """zoo's set-up (see the module docstring)."""
    from zoo.training.augment import BatchedViews, byol_views, simclr_views
    from zoo.training.data import EpochBatches, load_split
    from zoo.training.methods import get_method

    import zoo

    images, labels, _ = load_split(DATA, 32)
    cls = get_method(method_name)
    if method_name == "simclr":
        config, views = (
            cls.Config(proj_hidden_dim=512, proj_out_dim=128),
            simclr_views(32, blur=False, strength=0.5),
        )
    else:
        config = cls.Config(proj_hidden_dim=1024, proj_out_dim=256, pred_hidden_dim=1024, base_momentum=0.99)
        views = byol_views(32, blur=False)
    torch.manual_seed(0)
    method = cls(zoo.create_model(ARCH).backbone, 128, config).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD([p for g in method.param_groups() for p in g["params"]], lr=0.06, momentum=0.9)
    augment = BatchedViews(views)

    def batches():
        for epoch in itertools.count():
            data = EpochBatches(images, labels, augment, batch_size=batch, epoch=epoch, seed=0)
            for i in range(len(data)):
                yield [v.contiguous(memory_format=torch.channels_last) for v in data[i][0]]

    model = torch.compile(method) if use_compile else method

    def step(views: list[torch.Tensor]) -> None:
        method.schedule(0, 1000, 1)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(views)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        method.before_optimizer_step(1)
        opt.step()
        method.after_optimizer_step()

    return Setup(step, batches(), method.backbone, opt)


def lightly_setup(
    method_name: str, batch: int, workers: int, lr: float = 0.06, weight_decay: float = 0.0
) -> Setup:
    """lightly's default set-up (see the module docstring); ``lr`` and ``weight_decay`` as
    its CIFAR-10 benchmark sets them for ``benchmarks/budget.py``."""
    import copy

    import torchvision
    from lightly.loss import NegativeCosineSimilarity, NTXentLoss
    from lightly.models.modules import (
        BYOLPredictionHead,
        BYOLProjectionHead,
        SimCLRProjectionHead,
    )
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from lightly.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform, SimCLRTransform

    import zoo

    torch.manual_seed(0)
    backbone = zoo.create_model(ARCH).backbone
    if method_name == "simclr":
        transform = SimCLRTransform(input_size=32, gaussian_blur=0.0, cj_strength=0.5)
        head = SimCLRProjectionHead(128, 512, 128)
        criterion = NTXentLoss(temperature=0.5)
        params = list(backbone.parameters()) + list(head.parameters())
    else:
        transform = BYOLTransform(
            view_1_transform=BYOLView1Transform(input_size=32, gaussian_blur=0.0),
            view_2_transform=BYOLView2Transform(input_size=32, gaussian_blur=0.0),
        )
        head = BYOLProjectionHead(128, 1024, 256)
        predictor = BYOLPredictionHead(256, 1024, 256)
        target_backbone, target_head = copy.deepcopy(backbone), copy.deepcopy(head)
        deactivate_requires_grad(target_backbone)
        deactivate_requires_grad(target_head)
        criterion = NegativeCosineSimilarity()
        params = list(backbone.parameters()) + list(head.parameters()) + list(predictor.parameters())
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    dataset = torchvision.datasets.ImageFolder(str(DATA), transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers
    )

    def batches():
        while True:
            for (x0, x1), _ in loader:
                yield [x0, x1]

    def step(views: list[torch.Tensor]) -> None:
        x0, x1 = views
        if method_name == "simclr":
            loss = criterion(head(backbone(x0)), head(backbone(x1)))
        else:
            update_momentum(backbone, target_backbone, 0.99)
            update_momentum(head, target_head, 0.99)
            p0, p1 = predictor(head(backbone(x0))), predictor(head(backbone(x1)))
            with torch.no_grad():
                t0, t1 = target_head(target_backbone(x0)), target_head(target_backbone(x1))
            loss = 0.5 * (criterion(p0, t1) + criterion(p1, t0))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return Setup(step, batches(), backbone, opt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lightly-workers", type=int, default=0)
    parser.add_argument(
        "--compile",
        choices=["auto", "on", "off"],
        default="auto",
        help="torch.compile zoo's step: auto (as zoo train: on with AMX tiles or a GPU), on, off",
    )
    parser.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="zoo's step: auto (as zoo train: bf16 where the CPU has AVX-512 BF16 or AMX, else fp32)",
    )
    parser.add_argument("--methods", nargs="+", default=["simclr", "byol"])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_throughput.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import lightly

        lightly_version = lightly.__version__
    except ImportError:
        lightly_version = None
        print("lightly is not installed here: measuring zoo only (see the module docstring)")
    from zoo.training.loop import compile_pays

    from zoo.machine import cpu_precision

    use_compile = compile_pays(torch.device("cpu")) if args.compile == "auto" else args.compile == "on"
    use_bf16 = cpu_precision(args.precision) == "bf16"
    rows = []
    for name in args.methods:
        setups = {"zoo": zoo_setup(name, args.batch, use_compile=use_compile, bf16=use_bf16)}
        if lightly_version:
            setups["lightly"] = lightly_setup(name, args.batch, args.lightly_workers)
        rates = _time_interleaved(setups, args.steps)
        row = {"method": name, "zoo_views_per_s": round(rates["zoo"], 1)}
        if lightly_version:
            row["lightly_views_per_s"] = round(rates["lightly"], 1)
            row["ratio"] = round(row["zoo_views_per_s"] / row["lightly_views_per_s"], 2)
        rows.append(row)
        print(json.dumps(row))
    result = {
        "benchmark": "train_throughput",
        "arch": ARCH,
        "resolution": 32,
        "batch": args.batch,
        "threads": args.threads,
        "lightly": lightly_version,
        "lightly_workers": args.lightly_workers,
        "zoo_compile": use_compile,
        "zoo_precision": "bf16" if use_bf16 else "fp32",
        "machine": describe(),
        "results": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"{'method':8} {'zoo views/s':>12} {'lightly views/s':>16} {'ratio':>6}")
    for r in rows:
        print(
            f"{r['method']:8} {r['zoo_views_per_s']:12.0f} {r.get('lightly_views_per_s', float('nan')):16.0f}"
            f" {r.get('ratio', float('nan')):6.2f}"
        )


if __name__ == "__main__":
    main()
