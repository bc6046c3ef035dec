"""IIC: invariant information clustering (Ji, Henriques & Vedaldi 2019), https://arxiv.org/abs/1807.06653.

Heads map each image to a distribution over C clusters; the loss maximises the mutual
information between the clusters of two views of the same image (:class:`IICLoss`), which
rewards confident, balanced and view-invariant assignments without any reconstruction or
negatives. As the paper: a main head with C = the number of classes and an
over-clustering head (C = 70 on CIFAR-10) that helps learn finer features, each with 5
sub-heads (independent linear + softmax layers); the main sub-head with the lowest running
loss is the clusterer, scored by Hungarian accuracy (:func:`cluster_accuracy`; the paper's
table 1 gives 61.7% on CIFAR-10, with a ResNet-34).

What zoo and the CIFAR recipe change: the quarter-width CIFAR ResNet-18 and zoo's SimCLR-style
view pairs with full-strength colour jitter (the paper: its own transforms on Sobel-filtered
greyscale, each pair repeated several times per batch); both heads' losses are summed every
step (the paper alternates the heads); Adam with cosine decay, at 1e-3 (the paper: 1e-4); a
hidden layer between the backbone and the heads (``proj_hidden_dim``; 0 = the paper's heads on
the backbone's features); the sub-head is chosen by its running training loss (no labels).

Adam, not SGD: at initialisation the heads' softmax outputs are near uniform, where the mutual
information is ~0 and so is its gradient (it is second order in the heads' deviation from
uniform); SGD's steps, proportional to that gradient, leave the heads there (a CIFAR recipe at
SGD 0.12 ended 78 steps at a loss of -0.0007, Hungarian accuracy 12.4%), Adam's per-parameter
steps do not (training/recipes/iic_r18q_cifar10.yaml has the numbers).

``python -m zoo.training.methods.iic RUN_DIR [--json FILE]`` prints a run's Hungarian accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from zoo.training.distributed import gather_with_grad
from zoo.training.losses.iic import IICLoss
from zoo.training.methods.base import Method, MethodConfig, TaskEvaluation, forward_crops, register_method
from zoo.training.precision import full_precision

if TYPE_CHECKING:
    from zoo.training.loop import Trainer

if __name__ == "__main__":
    # `python -m zoo.training.methods.iic RUN_DIR`: importing the package already ran (and
    # registered) this module, so run that copy's main() rather than define IIC a second time.
    from zoo.training.methods.iic import main as _main

    raise SystemExit(_main())

#: Table 1 of the paper: unsupervised clustering accuracy (%) on CIFAR-10 (ResNet-34, Sobel input).
PAPER_ACCURACY = 61.7


@dataclass(frozen=True)
class IICConfig(MethodConfig):
    #: Clusters of the main head (CIFAR-10: 10).
    num_clusters: int = 10
    #: Clusters of the over-clustering head (CIFAR-10: 70; 0 = none).
    overcluster: int = 70
    num_subheads: int = 5
    lamb: float = 1.0
    #: Momentum of each main sub-head's running loss (selects the clusterer).
    loss_momentum: float = 0.99
    #: Width of a hidden layer (linear, BatchNorm, ReLU) between the backbone and the heads;
    #: 0 = the paper's heads on the backbone's features.
    proj_hidden_dim: int = 0


@register_method
class IIC(Method):
    """Mutual information between the two views' cluster assignments, main + over-clustering
    heads with sub-heads."""

    name = "iic"
    Config = IICConfig

    subhead_loss: torch.Tensor

    @classmethod
    def evaluate_task(cls, run_dir: Path, run_name: str, data: str) -> list[TaskEvaluation]:
        result = run_cluster_accuracy(run_dir, data=data)
        return [
            TaskEvaluation(
                protocol="cluster-accuracy",
                split=None,
                value=result["hungarian_accuracy"],
                how=f"unsupervised clustering accuracy (%) of the best main sub-head (of"
                f" {len(result['subhead_losses'])}, by training loss) on the {result['test_images']:,}"
                " test images, clusters matched to classes by the Hungarian algorithm (the paper:"
                f" {PAPER_ACCURACY}%)",
                command=f"python -m zoo.training.methods.iic runs/{run_name}",
            )
        ]

    def __init__(self, backbone: nn.Module, embed_dim: int, config: IICConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        c = config
        if c.num_clusters < 2 or c.overcluster == 1 or c.overcluster < 0 or c.num_subheads < 1:
            raise ValueError("num_clusters >= 2, overcluster 0 or >= 2, num_subheads >= 1 needed")
        if c.proj_hidden_dim < 0:
            raise ValueError("proj_hidden_dim must be >= 0")
        width = c.proj_hidden_dim or embed_dim
        self.proj: nn.Module = (
            nn.Sequential(nn.Linear(embed_dim, width), nn.BatchNorm1d(width), nn.ReLU())
            if c.proj_hidden_dim
            else nn.Identity()
        )
        self.main = nn.ModuleList(nn.Linear(width, c.num_clusters) for _ in range(c.num_subheads))
        self.over = nn.ModuleList(
            nn.Linear(width, c.overcluster) for _ in range(c.num_subheads if c.overcluster else 0)
        )
        self.loss = IICLoss(c.lamb)
        self.register_buffer("subhead_loss", torch.zeros(c.num_subheads))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    @full_precision
    def _head_losses(self, heads: nn.ModuleList, h0: torch.Tensor, h1: torch.Tensor) -> list[torch.Tensor]:
        # The heads too run in fp32, not just the loss: under bf16 autocast a linear head's
        # logits keep 8 mantissa bits, and near the uniform start (where IIC's gradient is
        # small) the difference between two clusters' logits is of that order. The joint
        # distribution is the global batch's (gathered with gradients, as SimCLR's negatives):
        # one rank's share of a 70-cluster head would estimate its marginals from a few rows.
        losses = []
        for head in heads:
            p0, p1 = (gather_with_grad(torch.softmax(head(h), 1)) for h in (h0, h1))
            losses.append(self.loss(p0, p1))
        return losses

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(views) != 2:
            raise ValueError(f"IIC takes 2 views, got {len(views)}")
        h0, h1 = forward_crops(self.backbone, views)
        h0, h1 = self.proj(torch.cat([h0, h1]).float()).chunk(2)
        main = self._head_losses(self.main, h0, h1)
        loss = sum(main) / len(main)
        out = {"main": loss.detach()}
        if self.over:
            over = self._head_losses(self.over, h0, h1)
            over_loss = sum(over) / len(over)
            loss = loss + over_loss
            out["overcluster"] = over_loss.detach()
        with torch.no_grad():
            current = torch.stack([m.detach() for m in main])
            # A tensor, not int(self.steps): reading a buffer's value would break the compiled graph.
            m = torch.where(self.steps > 0, self.config.loss_momentum, 0.0).to(current.dtype)
            self.subhead_loss.mul_(m).add_(current * (1 - m))
            self.steps += 1
        return {"loss": loss, **out}

    @torch.no_grad()
    def predict_clusters(self, features: torch.Tensor) -> torch.Tensor:
        """Cluster of each backbone feature row (N, D) under the best main sub-head."""
        best = int(self.subhead_loss.argmin())
        head = self.main[best]
        was_training = self.proj.training
        self.proj.eval()  # BatchNorm's running statistics, as every evaluation
        try:
            hidden = self.proj(features.to(head.weight.dtype).to(head.weight.device))
        finally:
            self.proj.train(was_training)
        return head(hidden).argmax(1).cpu()


def cluster_accuracy(clusters: np.ndarray, labels: np.ndarray) -> float:
    """Unsupervised clustering accuracy (%): the best one-to-one mapping of clusters to
    classes (Hungarian algorithm, the IIC paper's metric)."""
    from zoo.evaluate import cluster_accuracy as _accuracy

    return _accuracy(np.asarray(labels), np.asarray(clusters))


def cluster_accuracy_on_test_split(trainer: Trainer) -> float:
    """Hungarian accuracy (%) of a trained IIC run's best main sub-head on the whole test split
    (fp32 features, centre crops), the number the paper reports (61.7 on CIFAR-10)."""
    method = trainer.method
    if not isinstance(method, IIC):
        raise TypeError(f"an IIC run is needed, got {type(method).__name__}")
    images, labels = trainer.test_split()
    features = torch.from_numpy(trainer.embed(images, autocast=False))
    return cluster_accuracy(method.predict_clusters(features).numpy(), labels.numpy())


def run_cluster_accuracy(run_dir: str | Path, *, data: str | None = None) -> dict[str, Any]:
    """Hungarian accuracy of the run in ``run_dir`` (its ``recipe.yaml`` and ``checkpoint.pt``,
    finished or not), rebuilt with the trainer's own set-up and checkpoint loading (tensors
    only, ``weights_only=True``). ``data`` replaces the recipe's ``data.path``."""
    from zoo.training.loop import load_run

    trainer, progress = load_run(run_dir, IIC.name, data=data)
    recipe = trainer.recipe
    method = trainer.method
    assert isinstance(method, IIC)
    accuracy = cluster_accuracy_on_test_split(trainer)
    return {
        "run": str(run_dir),
        "recipe": recipe.name,
        "step": progress.step,
        "epoch": progress.epoch,
        "finished": progress.epoch >= recipe.train.epochs,
        "subhead": int(method.subhead_loss.argmin()),
        "subhead_losses": [round(float(v), 4) for v in method.subhead_loss],
        "test_images": len(trainer.test_split()[1]),
        "hungarian_accuracy": round(accuracy, 2),
        "paper": PAPER_ACCURACY,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m zoo.training.methods.iic RUN_DIR [--data ROOT] [--json FILE]``."""
    import argparse
    import json
    import sys

    from zoo.errors import ZooError
    from zoo.folder import atomic_write_text

    parser = argparse.ArgumentParser(
        prog="python -m zoo.training.methods.iic",
        description="Unsupervised clustering accuracy (Hungarian) of an IIC run's best main sub-head on"
        f" the test split (the IIC paper's metric: {PAPER_ACCURACY}% on CIFAR-10).",
    )
    parser.add_argument("run_dir", type=Path, help="the run.out_dir of a `zoo train` IIC run")
    parser.add_argument("--data", default=None, help="dataset root (default: the recipe's data.path)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result to this JSON file")
    args = parser.parse_args(argv)
    try:
        result = run_cluster_accuracy(args.run_dir, data=args.data)
    except ZooError as e:
        print(f"zoo: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    if args.json is not None:
        atomic_write_text(args.json, text + "\n")
    print(text)
    return 0
