"""Noise-contrastive estimation for NPID's non-parametric softmax, and its softmax cross-entropy form."""

from __future__ import annotations

import torch
from torch import nn
from zoo.training.distributed import all_reduce_mean
from zoo.training.precision import full_precision


class NCELoss(nn.Module):
    """NPID's NCE objective (Wu, Xiong, Yu & Lin 2018, sec. 3.2, eq. 3-6).

    The non-parametric softmax ``P(i | v) = exp(v_i^T v / tau) / Z`` over all n training
    images is approximated by noise-contrastive estimation with m noise samples drawn
    uniformly (``P_n = 1 / n``): "the posterior probability of sample i with feature v being
    from the data distribution is ``h(i, v) = P(i | v) / (P(i | v) + m P_n(i))``" and

        "J_NCE(theta) = -E_{P_d}[log h(i, v)] - m E_{P_n}[log(1 - h(i, v'))]"

    ``Z`` is "treated as a constant and estimated via Monte Carlo approximation,
    ``Z ~ n E_j[exp(v_j^T f_i / tau)]``" on the first batch, then kept (a buffer, so a resumed
    run keeps it too), as their code does (with ``normaliser_momentum`` 0, the default); under
    torch.distributed the mean is over every rank's first batch, so all ranks share one Z. As
    there, the loss is summed over the 1 + m terms of each sample and averaged over the batch.

    Their bank is random at that first batch; zoo's (``bank_init: features``) holds the
    initial network's nearly parallel embeddings, so this Z comes out ~e^(c0/tau) larger
    (c0 their mean cosine) and the noise terms push little. Estimating Z against random
    entries instead (as their bank would give) was tried in session 25 at NPID's 8-epoch
    budget: with the warm bank, the parallel noise entries then dominate, the loss spiked
    to 560 and the encoder collapsed (kNN 24.9 / 18.3 / 10.0 / 10.0 after epochs 1-4,
    where this estimate reads 29.8 / 29.3 after epochs 1-2). The softmax estimator
    (:class:`SampledSoftmaxLoss`) needs no Z.

    ``normaliser_momentum`` mu > 0 re-estimates Z at every later step, as a moving average
    ``Z <- (1 - mu) Z + mu n E_j[exp(v_j^T f_i / tau)]`` with j over that step's noise entries
    (the first batch still sets Z as above; every rank's batch under torch.distributed): the
    warm bank spreads out as training goes on, so its ``E_j[exp(.)]`` falls, and a Z frozen at
    the first batch's value grows ever too large for it; the moving average follows the bank
    without assuming a random one.

    Args:
        num_data: n, the number of training images. temperature: tau (0.07).
        normaliser_momentum: mu in [0, 1); 0 (the paper's) estimates Z once.

    Shapes: ``forward(features, positives, negatives)`` with ``features`` (N, D) the current
    embeddings (normalised here), ``positives`` (N, D) their own memory-bank entries and
    ``negatives`` the noise entries: (N, m, D), m of their own for each sample as in the paper,
    or (m, D), one draw shared by the whole batch (the same estimator, each sample's noise is
    still uniform; it avoids gathering N x m entries, 537 MB a step for NPID's 256 x 4096 x 128
    on CPU, where that gather costs more than the network); returns a scalar.
    """

    normaliser: torch.Tensor

    def __init__(self, num_data: int, temperature: float = 0.07, normaliser_momentum: float = 0.0) -> None:
        super().__init__()
        if num_data < 1 or temperature <= 0:
            raise ValueError(f"num_data must be >= 1 and temperature > 0, got {num_data}, {temperature}")
        if not 0 <= normaliser_momentum < 1:
            raise ValueError(f"normaliser_momentum must be in [0, 1), got {normaliser_momentum}")
        self.num_data = num_data
        self.temperature = temperature
        self.normaliser_momentum = normaliser_momentum
        self.register_buffer("normaliser", torch.tensor(-1.0))  # Z; < 0 until the first batch

    @full_precision
    def forward(
        self, features: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        logits = _memory_logits(features, positives, negatives)  # (N, 1 + m)
        m = logits.shape[1] - 1
        p = torch.exp(logits / self.temperature)
        if float(self.normaliser) < 0:
            with torch.no_grad():
                # Every rank's first batch (equal batch sizes: the global batch's mean), so
                # that all ranks keep the same Z.
                mean = all_reduce_mean(p.mean().detach().clone())
                self.normaliser.fill_(float(mean) * self.num_data)
        elif self.normaliser_momentum:
            with torch.no_grad():
                # n E_j over the noise entries only: they are the uniform draws; the own entry,
                # near e^(1/tau) once learnt, would weigh 1/(1 + m) instead of 1/n and push Z
                # up as training goes on. Kept a tensor (lerp_), as a Python float in the
                # forward would recompile a compiled step at every new value.
                estimate = all_reduce_mean(p[:, 1:].mean().detach().clone()) * self.num_data
                self.normaliser.lerp_(estimate, self.normaliser_momentum)
        p = p / self.normaliser
        noise = m / self.num_data  # m P_n(i)
        log_h_data = torch.log(p[:, 0] / (p[:, 0] + noise))
        log_h_noise = torch.log(noise / (p[:, 1:] + noise))
        return -(log_h_data + log_h_noise.sum(1)).mean()


class SampledSoftmaxLoss(nn.Module):
    """The softmax cross-entropy form of the same memory-bank objective: the logits
    ``[v . v_i, v . v_n1, ..., v . v_nm] / tau`` with the own entry at index 0 (InfoNCE over
    the sampled entries; CMC's and InsDis's ``--softmax``, ``NCESoftmaxLoss`` in the authors'
    code, whose README reports it beating NCE: 57.1 vs 56.5 for InsDis, 75.8 for CMC where
    NCE has no number).

    Unlike :class:`NCELoss` there is no normalising constant: each sample's own entry competes
    with its noise entries directly, so a bank that starts random still gives useful negatives.

    Shapes: ``forward(features, positives, negatives)`` as :class:`NCELoss`; returns a scalar.
    """

    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    @full_precision
    def forward(
        self, features: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        logits = _memory_logits(features, positives, negatives) / self.temperature
        own = torch.zeros(len(logits), dtype=torch.long, device=logits.device)  # column 0
        return nn.functional.cross_entropy(logits, own)


def _memory_logits(features: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Cosine scores (N, 1 + m) of the normalised ``features`` with their own bank entries
    (column 0) and the noise entries (per sample (N, m, D) or shared (m, D)); bank entries are
    targets, never differentiated."""
    if features.ndim != 2 or positives.shape != features.shape or negatives.ndim not in (2, 3):
        raise ValueError(
            "expected features (N, D), positives (N, D), negatives (N, m, D) or (m, D); got"
            f" {tuple(features.shape)}, {tuple(positives.shape)}, {tuple(negatives.shape)}"
        )
    f = nn.functional.normalize(features, dim=1)
    if negatives.ndim == 3:
        noise = torch.einsum("nd,nkd->nk", f, negatives.detach())
    else:
        noise = f @ negatives.detach().T
    return torch.cat([(f * positives.detach()).sum(1, keepdim=True), noise], 1)


#: The memory-bank estimators a recipe can name (``method.estimator``).
ESTIMATORS = ("nce", "softmax")


def memory_loss(
    estimator: str, num_data: int, temperature: float, normaliser_momentum: float = 0.0
) -> nn.Module:
    """The memory-bank objective ``estimator`` (one of :data:`ESTIMATORS`) as a module with
    the ``(features, positives, negatives)`` signature (``normaliser_momentum``: NCE's, see
    :class:`NCELoss`; the softmax estimator has no normaliser and refuses one)."""
    if estimator == "nce":
        return NCELoss(num_data, temperature, normaliser_momentum)
    if estimator == "softmax":
        if normaliser_momentum:
            raise ValueError("normaliser_momentum applies to the nce estimator only (softmax has no Z)")
        return SampledSoftmaxLoss(temperature)
    raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
