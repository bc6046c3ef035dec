"""What the memory-bank methods share (NPID, CMC, CRD): the hyper-parameters of their banks and
estimator, their validation, and the banks' warm start from the initial network."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.losses.nce import ESTIMATORS
from zoo.training.memory_bank import MemoryBank
from zoo.training.methods.base import DataInfo, Method, MethodConfig, MethodInputError, Needs

#: How the banks start: "random" unit vectors (the papers' code) or "features", the initial
#: network's embeddings of every training image (one epoch pass before the first epoch).
BANK_INITS = ("random", "features")


@dataclass(frozen=True)
class MemoryBankConfig(MethodConfig):
    #: The embedding stored in the banks ("d = 128", a linear layer on the pooled features).
    out_dim: int = 128
    #: m noise entries per anchor (NPID: "m = 4096"; CMC's and CRD's papers: 16,384).
    num_negatives: int = 4096
    temperature: float = 0.07
    #: "the memory bank ... updated with momentum 0.5".
    memory_momentum: float = 0.5
    #: Draw the m noise entries once per step for the whole batch instead of m per sample
    #: (the same estimator; the per-sample gather of N x m entries dominates a CPU step).
    shared_negatives: bool = True
    #: One of :data:`BANK_INITS`. From random vectors, every image is pulled towards a random
    #: target in the first epoch and the features get worse than at random init (NPID: kNN
    #: 18.8% after one epoch against 30% at init; CRD: 28.4 against 29.7, measured).
    #: ``features`` embeds every image once before the first step, in eval mode, so with the
    #: BatchNorm statistics of initialisation (mean 0, variance 1), not the batch statistics
    #: of the train-mode features later compared with them. Every entry is replaced within the
    #: first epoch; how much that first epoch suffers from it is not measured.
    bank_init: str = "features"
    #: "nce" (the papers' estimator, with its normalising constant Z) or "softmax": the
    #: cross-entropy over the own entry and the noise entries (the authors' ``--softmax``).
    estimator: str = "nce"
    #: NCE's normaliser Z: 0 estimates it once, on the first batch (the papers'); mu > 0
    #: follows the bank as it spreads, a moving average over steps (:class:`NCELoss`).
    normaliser_momentum: float = 0.0


class MemoryBankMethod(Method):
    """A method with banks of one entry per training image: validates the bank keys, asks the
    trainer for sample indices and, with ``bank_init: features``, for one epoch pass before
    the first epoch, whose features (its ``epoch_encoder``'s embeddings of every bank, side by
    side in the order of :meth:`banks`) fill the banks."""

    needs = Needs(indices=True, epoch_pass=True)

    def __init__(self, backbone: nn.Module, embed_dim: int, config: MemoryBankConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        problems = []
        if config.num_negatives < 1:
            problems.append(f"num_negatives must be >= 1, got {config.num_negatives}")
        if not 0 <= config.memory_momentum < 1:
            problems.append(f"memory_momentum must be in [0, 1), got {config.memory_momentum}")
        if config.temperature <= 0:
            problems.append(f"temperature must be > 0, got {config.temperature}")
        if config.bank_init not in BANK_INITS:
            problems.append(f"bank_init must be one of {BANK_INITS}, got {config.bank_init!r}")
        if config.estimator not in ESTIMATORS:
            problems.append(f"estimator must be one of {ESTIMATORS}, got {config.estimator!r}")
        if not 0 <= config.normaliser_momentum < 1:
            problems.append(f"normaliser_momentum must be in [0, 1), got {config.normaliser_momentum}")
        elif config.normaliser_momentum and config.estimator == "softmax":
            problems.append("normaliser_momentum applies to the nce estimator only (softmax has no Z)")
        if problems:
            raise ValueError(f"{self.name}: " + "; ".join(problems))

    def new_bank(self, info: DataInfo, offset: int = 0) -> MemoryBank:
        """A bank of ``info.num_samples`` entries (seeded from the run's seed + ``offset``, so
        two banks of one method start different)."""
        if info.num_samples < 2:
            raise MethodInputError(f"{self.name} needs at least 2 training images, got {info.num_samples}")
        c = self.config
        return MemoryBank(info.num_samples, c.out_dim, c.memory_momentum, seed=info.seed + offset)

    def banks(self) -> tuple[MemoryBank, ...]:
        """The method's banks, in the order its epoch encoder's embeddings come in."""
        raise NotImplementedError

    def epoch_pass_due(self, epoch: int) -> bool:
        return epoch == 0 and self.config.bank_init == "features"

    def on_epoch_start(self, epoch: int, features: torch.Tensor) -> None:
        for bank, part in zip(self.banks(), features.split(self.config.out_dim, dim=1), strict=True):
            bank.fill(part)
